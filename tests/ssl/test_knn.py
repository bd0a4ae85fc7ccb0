"""The weighted kNN vote (Wu et al. 1805.01978 eq. 7) against a plain loop over queries and neighbours."""

from __future__ import annotations

import math

import pytest
import torch

from lit_digest.ssl.knn import FeatureBank, knn_accuracy, knn_predict


def naive_knn_scores(query, bank, labels, num_classes, k, temperature):
    """For every query: cosine similarity to every bank entry, the k most similar, each voting
    ``exp(s / temperature)`` for its class."""
    scores = torch.zeros(len(query), num_classes, dtype=torch.float64)
    for q in range(len(query)):
        sims = []
        for n in range(len(bank)):
            a, b = query[q].double(), bank[n].double()
            sims.append((float(a @ b) / (float(a.norm()) * float(b.norm())), int(labels[n])))
        sims.sort(key=lambda pair: -pair[0])
        for s, label in sims[:k]:
            scores[q, label] += math.exp(s / temperature)
    return scores


@pytest.mark.parametrize("k, temperature, chunk", [(5, 0.1, 1024), (3, 0.5, 2), (40, 0.07, 3)])
def test_knn_scores_are_the_temperature_weighted_votes_of_the_nearest_neighbours(k, temperature, chunk):
    g = torch.Generator().manual_seed(0)
    query = torch.randn(7, 6, generator=g) * 3  # unnormalised: the vote uses cosine similarities
    bank = torch.randn(30, 6, generator=g) * torch.rand(30, 1, generator=g)
    labels = torch.randint(0, 4, (30,), generator=g)
    got = knn_predict(query, bank, labels, 4, k=k, temperature=temperature, chunk_size=chunk)
    expected = naive_knn_scores(query, bank, labels, 4, min(k, 30), temperature)
    assert got.shape == (7, 4)
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-5)


def test_knn_accuracy_is_the_share_of_queries_whose_top_vote_is_their_label():
    g = torch.Generator().manual_seed(1)
    query, bank = torch.randn(12, 5, generator=g), torch.randn(25, 5, generator=g)
    bank_labels, query_labels = torch.randint(0, 3, (25,), generator=g), torch.randint(0, 3, (12,), generator=g)
    expected = naive_knn_scores(query, bank, bank_labels, 3, 4, 0.2).argmax(1)
    acc = knn_accuracy(query, query_labels, bank, bank_labels, 3, k=4, temperature=0.2)
    assert acc == pytest.approx(float((expected == query_labels).float().mean()))


class _OneProcess:
    @staticmethod
    def all_gather(t):
        return t  # one rank: no leading world dimension


def test_feature_bank_scores_the_naive_vote_and_leaves_unlabeled_entries_out():
    g = torch.Generator().manual_seed(2)
    query, bank = torch.randn(9, 4, generator=g), torch.randn(20, 4, generator=g)
    query_labels, bank_labels = torch.randint(0, 3, (9,), generator=g), torch.randint(0, 3, (20,), generator=g)
    bank_labels[::4] = -1  # unlabeled
    fb = FeatureBank()
    fb.add(0, query[:5], query_labels[:5])
    fb.add(0, query[5:], query_labels[5:])
    fb.add(1, bank, bank_labels)
    assert fb.ready
    out = fb.score(_OneProcess(), ks=(3,), temperature=0.1)
    keep = bank_labels >= 0
    expected = naive_knn_scores(query, bank[keep], bank_labels[keep], 3, 3, 0.1).argmax(1)
    assert float(out[3]) == pytest.approx(float((expected == query_labels).float().mean()))
    fb.clear()
    assert not fb.ready
