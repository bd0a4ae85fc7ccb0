"""kNN voting and the linear probe with their defaults, against plain loops written here (`make mutate` found the
defaults k = 200, T = 0.1 and the probe's standardisation unchecked)."""

import math

import pytest
import torch

from lit_digest.ssl.knn import FeatureBank, knn_accuracy, knn_predict, linear_probe_accuracy


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


def _reference_probe(train_x, train_y, num_classes):
    """The documented probe written out: standardise with the training mean and std (floor 1e-6), weights
    N(0, 0.01^2) from a CPU generator seeded 0, zero bias, 300 full-batch Adam steps (lr 0.1, weight decay 1e-4)
    on the cross-entropy. Returns its class predictions as a function."""
    mean, std = train_x.mean(0, keepdim=True), train_x.std(0, keepdim=True).clamp_min(1e-6)
    g = torch.Generator().manual_seed(0)
    weight = (torch.randn(train_x.shape[1], num_classes, generator=g) * 0.01).requires_grad_()
    bias = torch.zeros(num_classes, requires_grad=True)
    opt = torch.optim.Adam([weight, bias], lr=0.1, weight_decay=1e-4)
    x = (train_x - mean) / std
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(x @ weight + bias, train_y).backward()
        opt.step()
    return lambda t: (((t - mean) / std) @ weight + bias).argmax(1)


def test_the_default_probe_draws_the_reference_probes_boundaries_to_a_fine_grid():
    """Test points on two dense lines across the class boundaries, labelled by the reference probe: the probe with
    its defaults must agree on every one (an accuracy of exactly 1). One more step, another seed, learning rate,
    decay, initial scale, std floor or an untrained bias moves a boundary across some of the 400k points."""
    g = torch.Generator().manual_seed(5)
    train_y = torch.tensor([0] * 6 + [1] * 4 + [2] * 2)  # unbalanced: the bias matters
    train_x = torch.randn(12, 2, generator=g) * 0.3 + torch.tensor([[0.0, 0.0], [1.0, 0.2], [0.3, 1.0]])[train_y]
    train_x = train_x * torch.tensor([0.05, 3.0]) + 7  # one feature's std under 1, both off centre
    t = torch.linspace(-1, 1, 200001)[:, None]
    centre = train_x.mean(0)
    test_x = torch.cat([centre + t * torch.tensor([0.1, 0.0]), centre + t * torch.tensor([0.0, 4.0])])
    truth = _reference_probe(train_x, train_y, 3)(test_x)
    assert truth.bincount(minlength=3).min() > 50_000  # every class owns a stretch of the lines
    assert linear_probe_accuracy(train_x, train_y, test_x, truth, 3) == 1.0


def test_the_default_k_is_200_in_the_vote_and_the_accuracy():
    """201 bank entries: 100 of class 0 at cosine 0.9 to the query, 100 of class 1 at 0.8999 and one more of class 1
    at 0.89. The 200 nearest vote class 0; a 201st neighbour would tip the vote to class 1."""

    def at(cos):
        return [cos, math.sqrt(1 - cos * cos)]

    bank = torch.tensor([at(0.9)] * 100 + [at(0.8999)] * 100 + [at(0.89)])
    labels = torch.tensor([0] * 100 + [1] * 101)
    query = torch.tensor([[1.0, 0.0]])
    assert knn_accuracy(query, torch.tensor([0]), bank, labels, 2) == 1.0
    assert knn_predict(query, bank, labels, 2).argmax().item() == 0  # the vote's own default too
    assert knn_accuracy(query, torch.tensor([1]), bank, labels, 2, k=201) == 1.0  # the construction tips at 201


def test_knn_keeps_its_tensors_on_the_inputs_device():
    """Under another default device (meta here; CUDA inputs with a CPU default in practice), the votes follow the
    inputs, and extract_features puts features and labels on the device it is given."""
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from lit_digest.ssl.knn import extract_features

    g = torch.Generator().manual_seed(3)
    query, bank, labels = torch.randn(4, 3, generator=g), torch.randn(9, 3, generator=g), torch.arange(9) % 3
    loader = DataLoader(TensorDataset(torch.randn(6, 2, 2), torch.arange(6)), batch_size=4)
    with torch.device("meta"):
        assert knn_predict(query, bank, labels, 3, k=4).device.type == "cpu"
    feats, ys = extract_features(nn.Flatten(), loader, "meta")
    assert feats.shape == (6, 4) and feats.device.type == "meta" and ys.device.type == "meta"


def test_dataset_lengths_of_loaders_without_a_data_set():
    import types

    from lit_digest.ssl.knn import dataset_lengths

    assert dataset_lengths(types.SimpleNamespace(val_dataloaders=[[1, 2, 3]])) == (None,)  # a plain iterable


class _Ranks:
    """``all_gather`` of two ranks: this rank's tensor stacked with the other rank's next one (``others``, in the
    order the features and labels are gathered)."""

    def __init__(self, others):
        self.others = list(others)

    def all_gather(self, t):
        return torch.stack([t, self.others.pop(0)])


def test_feature_bank_drops_both_samplers_paddings_and_uses_its_temperature():
    """3 queries and 5 bank images on 2 ranks; the DistributedSampler repeats query 0 and bank image 0 on rank 1.
    On a circle: bank 0 (class 0) at 0 deg, 1 and 2 (class 1) at 10 and 40 deg, 3 and 4 (class 2) at 180 and
    170 deg; queries at 1 deg (class 1), 175 deg (class 2), 45 deg (class 0). With k = 3 and T = 1 the first two
    are right (2/3). Keeping the repeated query would score 3/4, the repeated bank image 1/3, T = 0.1 1/3."""

    def at(deg):
        return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]

    bank, bank_y = torch.tensor([at(0), at(10), at(40), at(180), at(170)]), torch.tensor([0, 1, 1, 2, 2])
    query, query_y = torch.tensor([at(1), at(175), at(45)]), torch.tensor([1, 2, 0])
    fb = FeatureBank()
    fb.add(0, query[[0, 2]], query_y[[0, 2]])  # rank 0: samples 0, 2
    fb.add(1, bank[[0, 2, 4]], bank_y[[0, 2, 4]])  # rank 0: samples 0, 2, 4
    others = [query[[1, 0]], query_y[[1, 0]], bank[[1, 3, 0]], bank_y[[1, 3, 0]]]  # rank 1, padded
    out = fb.score(_Ranks(others), ks=(3,), temperature=1.0, totals=(3, 5))
    assert float(out[3]) == pytest.approx(2 / 3)
    fb_cold = FeatureBank()
    fb_cold.add(0, query[[0, 2]], query_y[[0, 2]])
    fb_cold.add(1, bank[[0, 2, 4]], bank_y[[0, 2, 4]])
    cold = fb_cold.score(_Ranks(others), ks=(3,), temperature=0.1, totals=(3, 5))
    assert float(cold[3]) == pytest.approx(1 / 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device: CUDA")
def test_the_probe_on_gpu_features_equals_the_cpu_probe():
    g = torch.Generator().manual_seed(6)
    centres = torch.randn(3, 4, generator=g) * 2
    train_y, test_y = torch.randint(0, 3, (60,), generator=g), torch.randint(0, 3, (30,), generator=g)
    train_x = centres[train_y] + torch.randn(60, 4, generator=g)
    test_x = centres[test_y] + torch.randn(30, 4, generator=g)
    cpu = linear_probe_accuracy(train_x, train_y, test_x, test_y, 3, steps=50)
    gpu = linear_probe_accuracy(train_x.cuda(), train_y.cuda(), test_x.cuda(), test_y.cuda(), 3, steps=50)
    assert gpu == pytest.approx(cpu, abs=2 / 30)  # the same probe up to GPU rounding on 30 test points
