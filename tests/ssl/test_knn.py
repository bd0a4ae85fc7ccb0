"""The weighted kNN vote (Wu et al. 1805.01978 eq. 7) against a plain loop over queries and neighbours."""

from __future__ import annotations

import math
import types

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


class _TwoRanks:
    """``all_gather`` as two ranks: this rank's tensor and the other rank's (``other``), stacked (W, ...)."""

    def __init__(self, other):
        self.other = other

    def all_gather(self, t):
        return torch.stack([t, self.other[t.dtype]])


def test_gathered_features_are_back_in_data_set_order_without_the_samplers_padding():
    # 5 samples on 2 ranks: DistributedSampler gives rank 0 samples 0, 2, 4 and rank 1 samples 1, 3, 0 (padding)
    feats = torch.arange(5.0)[:, None].repeat(1, 2)  # (5, 2): sample i's features are i
    rank0, rank1 = torch.tensor([0, 2, 4]), torch.tensor([1, 3, 0])
    fb = FeatureBank()
    fb.add(0, feats[rank0], rank0 * 10)
    module = _TwoRanks({feats.dtype: feats[rank1], torch.int64: rank1 * 10})
    all_feats, all_labels = fb._gathered(module, 0, total=5)
    torch.testing.assert_close(all_feats, feats)
    assert all_labels.tolist() == [0, 10, 20, 30, 40]
    padded, _ = fb._gathered(module, 0, total=None)
    assert padded[:, 0].tolist() == [0, 1, 2, 3, 4, 0]


def test_dataset_lengths_of_the_validation_loaders():
    from torch.utils.data import DataLoader

    from lit_digest.ssl.knn import dataset_lengths

    loaders = [DataLoader(torch.zeros(7, 1)), DataLoader(torch.zeros(3, 1))]
    assert dataset_lengths(types.SimpleNamespace(val_dataloaders=loaders)) == (7, 3)
    assert dataset_lengths(types.SimpleNamespace(val_dataloaders=loaders[0])) == (7,)
    assert dataset_lengths(types.SimpleNamespace(val_dataloaders=[types.SimpleNamespace(dataset=iter([]))])) == (None,)


def test_extract_features_runs_the_encoder_in_eval_mode_on_transformed_batches():
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from lit_digest.ssl.knn import extract_features

    encoder = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.9)).train()
    x, y = torch.randn(10, 3), torch.arange(10)
    feats, labels = extract_features(encoder, DataLoader(TensorDataset(x, y), batch_size=4), "cpu",
                                     transform=lambda b: b * 2)
    torch.testing.assert_close(feats, encoder[0](x * 2).detach())  # no dropout: eval mode
    assert labels.tolist() == list(range(10)) and encoder.training  # the mode is restored


def test_linear_probe_agrees_with_a_plain_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    from lit_digest.ssl.knn import linear_probe_accuracy

    g = torch.Generator().manual_seed(4)
    centers = torch.randn(3, 6, generator=g) * 2
    train_y, test_y = torch.randint(0, 3, (120,), generator=g), torch.randint(0, 3, (60,), generator=g)
    train_x = centers[train_y] * 1.5 + 40 + torch.randn(120, 6, generator=g) * 3  # unstandardised, overlapping
    test_x = centers[test_y] * 1.5 + 40 + torch.randn(60, 6, generator=g) * 3
    reference = LogisticRegression(max_iter=2000).fit(
        ((train_x - train_x.mean(0)) / train_x.std(0)).numpy(), train_y.numpy())
    expected = float((torch.from_numpy(reference.predict(((test_x - train_x.mean(0)) / train_x.std(0)).numpy()))
                      == test_y).float().mean())
    got = linear_probe_accuracy(train_x, train_y, test_x, test_y, 3)
    assert abs(got - expected) <= 2 / 60 and 0.6 < got < 1.0
    assert got == linear_probe_accuracy(train_x, train_y, test_x, test_y, 3)  # deterministic
