import math

import pytest
import torch

from lit_digest.core.ema import cosine_tau
from lit_digest.core.optim import LARS, Optim, lr_factor, make_optimizer, scaled_lr, split_decay_groups


def solo_learn_lars_step(w, g, buf, lr, momentum, wd, eta, clip, excluded, eps=1e-8):
    """One step of LARS as solo-learn documents it (``solo/utils/lars.py``, from lightning-bolts), written
    out from its description, scalar by scalar, not from our implementation:

    - a parameter excluded from adaptation (bias / norm, ``exclude_bias_n_norm``) takes the raw gradient;
    - otherwise, *only when both norms are non-zero*: ``lars_lr = eta ||w|| / (||g|| + wd ||w|| + eps)``,
      clipped to ``min(lars_lr / lr, 1)``, and the update is ``lars_lr * (g + wd w)``; with a zero norm the
      update is the raw gradient, without weight decay;
    - momentum without dampening, ``w -= lr * buf``.
    """
    w, g = w.tolist(), g.tolist()
    update = list(g)
    if not excluded:
        wn, gn = math.sqrt(sum(x * x for x in w)), math.sqrt(sum(x * x for x in g))
        if wn != 0 and gn != 0:
            lars_lr = eta * wn / (gn + wn * wd + eps)
            if clip:
                lars_lr = min(lars_lr / lr, 1.0)
            update = [(gi + wd * wi) * lars_lr for gi, wi in zip(g, w, strict=True)]
    buf = list(update) if buf is None else [momentum * b + u for b, u in zip(buf, update, strict=True)]
    return torch.tensor([wi - lr * b for wi, b in zip(w, buf, strict=True)], dtype=torch.float64), buf


@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("lr", [0.05, 2.0])
def test_lars_matches_solo_learns_algorithm_over_several_steps(clip, lr):
    """Ordinary tensors, a zero weight (a zero-initialised layer), a zero gradient (a frozen path) with
    weight decay on, and an excluded bias: 0.1 clipped and decayed the zero-norm cases."""
    torch.manual_seed(0)
    params = {"weight": torch.randn(20, dtype=torch.float64), "zero_weight": torch.zeros(6, dtype=torch.float64),
              "no_grad": torch.randn(5, dtype=torch.float64), "bias": torch.randn(5, dtype=torch.float64)}
    tensors = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    groups = [{"params": [tensors["weight"], tensors["zero_weight"], tensors["no_grad"]]},
              {"params": [tensors["bias"]], "weight_decay": 0.0, "lars_exclude": True}]
    opt = LARS(groups, lr=lr, momentum=0.9, weight_decay=1e-2, eta=0.02, clip_lr=clip)
    ref = {k: v.clone() for k, v in params.items()}
    bufs = dict.fromkeys(params)
    for _ in range(4):
        grads = {k: torch.randn_like(v) for k, v in params.items()}
        grads["no_grad"].zero_()
        for k, t in tensors.items():
            t.grad = grads[k].clone()
        opt.step()
        for k in params:
            wd = 0.0 if k == "bias" else 1e-2
            ref[k], bufs[k] = solo_learn_lars_step(ref[k], grads[k], bufs[k], lr, 0.9, wd, 0.02, clip, k == "bias")
            torch.testing.assert_close(tensors[k].detach(), ref[k], msg=k)
    torch.testing.assert_close(tensors["no_grad"].detach(), params["no_grad"])  # nothing moves it, not even decay


def test_lars_trust_ratio_scales_step_by_weight_to_gradient_norm():
    w = torch.full((10,), 2.0, requires_grad=True)  # ||w|| = 2 sqrt(10)
    w.grad = torch.full((10,), 0.5)  # ||g|| = 0.5 sqrt(10)
    LARS([w], lr=1.0, momentum=0.0, weight_decay=0.0, eta=0.1, clip_lr=False).step()
    # ratio = 0.1 * 4 = 0.4, so w = 2 - 0.4 * 0.5
    torch.testing.assert_close(w.detach(), torch.full((10,), 1.8))


def test_decay_groups_exclude_bias_and_norm():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    decay, no_decay = split_decay_groups([net])
    assert {p.ndim for p in decay["params"]} == {2}
    assert len(no_decay["params"]) == 4 and no_decay["weight_decay"] == 0.0 and no_decay["lars_exclude"]
    opt = make_optimizer(Optim(name="sgd", lr=0.1, weight_decay=1e-4), [decay, no_decay])
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-4, 0.0]


def test_warmup_cosine_values_at_chosen_steps():
    optim = Optim(lr=2.0, warmup_steps=100)

    def lr(step: int) -> float:
        return 2.0 * lr_factor(step, optim, base_lr=2.0, total_steps=1100, epoch_steps=None)

    assert lr(0) == 0.0
    assert lr(50) == pytest.approx(1.0)  # half-way through the warmup
    assert lr(100) == pytest.approx(2.0)  # peak
    assert lr(600) == pytest.approx(1.0)  # half-way through the cosine
    assert lr(1100) == pytest.approx(0.0, abs=1e-12)
    assert lr(350) == pytest.approx(1.0 + math.cos(math.pi / 4))


def test_cosine_tau_schedule():
    assert cosine_tau(0, 1000, 0.99, 1.0) == pytest.approx(0.99)
    assert cosine_tau(500, 1000, 0.99, 1.0) == pytest.approx(0.995)
    assert cosine_tau(1000, 1000, 0.99, 1.0) == pytest.approx(1.0)
    assert cosine_tau(250, 1000, 0.996, 1.0) == pytest.approx(1 - 0.004 * (math.cos(math.pi / 4) + 1) / 2)


def test_linear_lr_scaling_rule():
    assert scaled_lr(1.0, 256) == 1.0
    assert scaled_lr(0.2, 4096) == pytest.approx(3.2)  # BYOL's ImageNet setting


def test_settings_dataclasses_in_hparams_pass_lightnings_yaml_writer(tmp_path):
    """With omegaconf installed, Lightning's hparams.yaml writer (CSV and TensorBoard loggers) walks the
    hyperparameters with apply_to_collection, which refused the frozen Optim and GPTJConfig: every CSVLogger run
    of a lit_digest method crashed before its first step."""
    from lightning_utilities.core.apply_func import apply_to_collection

    from lit_digest.core.lightning import submodule
    from lit_digest.core.optim import Optim
    from lit_digest.text.gptj import GPTJConfig

    hparams = {"optim": Optim(name="adamw", lr=1e-3), "config": GPTJConfig.preset("small")}
    assert apply_to_collection(hparams, dict, lambda x: x) == hparams
    submodule("core.saving").save_hparams_to_yaml(tmp_path / "hparams.yaml", hparams)
    assert "adamw" in (tmp_path / "hparams.yaml").read_text()


def test_the_exponential_schedule_decays_geometrically_to_the_final_ratio():
    """NeRF (arXiv 2003.08934 section 5.3): the rate "decays exponentially" from lr to 0.1 lr over the run."""
    optim = Optim(name="adam", lr=5e-4, schedule="exponential", final_lr_ratio=0.1, warmup_steps=10)
    total = 1010
    factors = [lr_factor(s, optim, 5e-4, total, None) for s in (10, 510, 1010, 2000)]
    assert factors == pytest.approx([1.0, 0.1**0.5, 0.1, 0.1])
    assert lr_factor(5, optim, 5e-4, total, None) == pytest.approx(0.5)  # the warmup comes first
    assert lr_factor(500, optim, 5e-4, math.inf, None) == 1.0  # no last step: no decay
    with pytest.raises(ValueError, match="final_lr_ratio > 0"):
        Optim(schedule="exponential", final_lr_ratio=0.0)
