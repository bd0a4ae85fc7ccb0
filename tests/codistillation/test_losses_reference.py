"""The codistillation losses against plain loops written here, at a temperature other than 1 and 2 and with the
defaults (what `make mutate` found unchecked: the default kind and temperature, T * 2 for T ** 2, the churn's
argmax axis, the error messages)."""

import math

import pytest
import torch

from lit_digest.codistillation.losses import (
    distillation_loss,
    kl_to_targets,
    mean_pairwise_churn,
    prediction_churn,
    soft_cross_entropy,
    teacher_mean_probs,
)


def _softmax(row, t):
    e = [math.exp(v / t) for v in row]
    return [x / sum(e) for x in e]


def _naive_ce(student, target, t):  # mean over rows of -sum_c p_c log q_c, times T^2
    rows = [-sum(p * math.log(q) for p, q in zip(prow, _softmax(srow, t))) for srow, prow in zip(student, target)]
    return sum(rows) / len(rows) * t * t


def _naive_kl(student, target, t):
    rows = [sum(p * (math.log(p) - math.log(q)) for p, q in zip(prow, _softmax(srow, t)))
            for srow, prow in zip(student, target)]
    return sum(rows) / len(rows) * t * t


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(3)
    return torch.randn(5, 4, generator=g, dtype=torch.float64) * 2, torch.randn(3, 5, 4, generator=g) * 2


def test_distillation_losses_equal_plain_loops_at_temperature_3_and_with_the_defaults(logits):
    student, teachers = logits
    for t in (1.0, 3.0):
        target = [[sum(_softmax(teachers[k, n].tolist(), t)[c] for k in range(3)) / 3 for c in range(4)]
                  for n in range(5)]
        torch.testing.assert_close(teacher_mean_probs(teachers, t), torch.tensor(target, dtype=torch.float32))
        ce, kl = _naive_ce(student.tolist(), target, t), _naive_kl(student.tolist(), target, t)
        assert soft_cross_entropy(student, torch.tensor(target), t).item() == pytest.approx(ce, rel=1e-5)
        assert kl_to_targets(student, torch.tensor(target), t).item() == pytest.approx(kl, rel=1e-5)
        assert distillation_loss(student, teachers, t, "cross_entropy").item() == pytest.approx(ce, rel=1e-5)
        assert distillation_loss(student, teachers, t, "kl").item() == pytest.approx(kl, rel=1e-5)
    # the defaults: cross-entropy at T = 1 (the paper's Algorithm 1)
    target1 = teacher_mean_probs(teachers)
    assert distillation_loss(student, teachers).item() == pytest.approx(
        _naive_ce(student.tolist(), target1.tolist(), 1.0), rel=1e-5)
    assert soft_cross_entropy(student, target1).item() == pytest.approx(distillation_loss(student, teachers).item())
    assert kl_to_targets(student, target1).item() == pytest.approx(distillation_loss(student, teachers, kind="kl")
                                                                   .item())
    with pytest.raises(ValueError, match="unknown distillation loss kind 'mse'"):
        distillation_loss(student, teachers, kind="mse")
    with pytest.raises(ValueError, match=r"teacher_logits must be \(K, N, C\), got shape \(5, 4\)"):
        teacher_mean_probs(student)


def test_churn_of_logits_takes_each_rows_top_class_and_one_model_has_none():
    a = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0], [0.0, 0.0, 5.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # (5, 3)
    b = torch.tensor([1, 2, 2, 0, 0])
    assert prediction_churn(a, b).item() == pytest.approx(2 / 5)  # rows' top classes 1, 0, 2, 0, 1
    assert prediction_churn(b, a).item() == pytest.approx(2 / 5)
    assert prediction_churn(a, a.clone()).item() == 0.0
    one = mean_pairwise_churn(torch.tensor([[1, 2, 3]]))
    assert one.item() == 0.0 and one.shape == () and one.dtype == torch.float
    assert mean_pairwise_churn(torch.tensor([[0, 1, 2, 3], [0, 1, 0, 0]])).item() == pytest.approx(2 / 4)
    three = torch.tensor([[0, 1, 2, 3], [0, 1, 2, 0], [1, 1, 0, 0]])
    assert mean_pairwise_churn(three).item() == pytest.approx((1 / 4 + 3 / 4 + 2 / 4) / 3)
