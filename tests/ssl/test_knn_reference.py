"""kNN voting and the linear probe with their defaults, against plain loops written here (`make mutate` found the
defaults k = 200, T = 0.1 and the probe's standardisation unchecked)."""

import math

import pytest
import torch

from lit_digest.ssl.knn import knn_accuracy, knn_predict, linear_probe_accuracy


def _naive_scores(query, bank, labels, num_classes, k, t):
    def unit(v):
        n = math.sqrt(sum(x * x for x in v))
        return [x / n for x in v]

    bank = [unit(b) for b in bank]
    out = []
    for q in query:
        q = unit(q)
        sims = sorted(((sum(a * b for a, b in zip(q, row)), i) for i, row in enumerate(bank)), reverse=True)[:k]
        votes = [0.0] * num_classes
        for s, i in sims:
            votes[labels[i]] += math.exp(s / t)
        out.append(votes)
    return out


def test_the_default_vote_is_k_200_at_temperature_0_1_over_cosine_similarities():
    g = torch.Generator().manual_seed(0)
    bank = torch.randn(260, 6, generator=g) * torch.rand(260, 1, generator=g) * 5  # rows of different norms
    labels = torch.randint(0, 4, (260,), generator=g)
    query = torch.randn(7, 6, generator=g) * 3
    expected = _naive_scores(query.tolist(), bank.tolist(), labels.tolist(), 4, 200, 0.1)
    got = knn_predict(query, bank, labels, 4)
    for row, want in zip(got.tolist(), expected):
        assert row == pytest.approx(want, rel=1e-4)
    truth = torch.tensor([max(range(4), key=lambda c: r[c]) for r in expected])
    assert knn_accuracy(query, truth, bank, labels, 4) == 1.0
    assert knn_accuracy(query, (truth + 1) % 4, bank, labels, 4) == 0.0


def test_the_linear_probe_does_not_see_a_per_feature_scale_or_shift():
    """The probe standardises each feature with the training mean and std: features rescaled by 0.01 ... 100 and
    shifted give the same probe, to the float's rounding."""
    g = torch.Generator().manual_seed(1)
    centres = torch.randn(3, 5, generator=g) * 2
    train_y, test_y = torch.randint(0, 3, (90,), generator=g), torch.randint(0, 3, (60,), generator=g)
    train_x = centres[train_y] + torch.randn(90, 5, generator=g) * 1.5
    test_x = centres[test_y] + torch.randn(60, 5, generator=g) * 1.5
    scale, shift = torch.tensor([0.01, 0.3, 1.0, 7.0, 100.0]), torch.tensor([5.0, -3.0, 0.0, 40.0, -200.0])
    plain = linear_probe_accuracy(train_x, train_y, test_x, test_y, 3, steps=40)
    moved = linear_probe_accuracy(train_x * scale + shift, train_y, test_x * scale + shift, test_y, 3, steps=40)
    assert plain == moved and plain > 0.5
