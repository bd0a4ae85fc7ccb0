"""The optimiser block beyond training runs (``make mutate`` on ``lit_digest/core/optim.py``): every ``Optim`` field
reaches the optimiser it names, LARS's defaults and edge cases against hand-computed steps, the schedules at their
boundaries (warmup start, step milestones, a one-step decay), the batch scaling of ``configure_optim`` on a stand-in
trainer, and the messages of the settings' checks."""

from __future__ import annotations

import math
import os
import re
import types
import warnings

import pytest
import torch

from lit_digest.core.optim import LARS, Optim, Schedule, configure_optim, lr_factor, make_optimizer, steps_per_epoch


def _groups():
    a, b = torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(2))
    return [{"params": [a], "lr": 0.3}, {"params": [b], "weight_decay": 0.0, "lars_exclude": True}]


def test_make_optimizer_passes_every_setting_and_keeps_each_groups_own():
    lars = make_optimizer(Optim(name="lars", lr=0.7, momentum=0.8, weight_decay=0.01, lars_eta=0.05,
                                lars_clip_lr=False), _groups())
    assert type(lars) is LARS
    first, second = lars.param_groups
    assert (first["lr"], first["momentum"], first["weight_decay"], first["eta"], first["clip_lr"]) == (
        0.3, 0.8, 0.01, 0.05, False)
    assert (second["lr"], second["weight_decay"], second["lars_exclude"]) == (0.7, 0.0, True)

    sgd = make_optimizer(Optim(name="sgd", lr=0.7, momentum=0.8, weight_decay=0.01, nesterov=True), _groups())
    assert type(sgd) is torch.optim.SGD
    first, second = sgd.param_groups
    assert (first["lr"], first["momentum"], first["weight_decay"], first["nesterov"]) == (0.3, 0.8, 0.01, True)
    assert (second["lr"], second["weight_decay"]) == (0.7, 0.0)

    for name, cls in (("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)):
        opt = make_optimizer(Optim(name=name, lr=0.7, betas=(0.8, 0.95), weight_decay=0.01), _groups())
        assert type(opt) is cls
        first, second = opt.param_groups
        assert (first["lr"], first["betas"], first["weight_decay"]) == (0.3, (0.8, 0.95), 0.01)
        assert (second["lr"], second["weight_decay"]) == (0.7, 0.0)


def test_lars_defaults_and_learning_rate_check():
    w = torch.nn.Parameter(torch.ones(2))
    assert LARS([w], lr=0.1).defaults == dict(lr=0.1, momentum=0.9, weight_decay=0.0, eta=0.02, clip_lr=True,
                                              eps=1e-8, lars_exclude=False)
    LARS([w], lr=0.0)  # a schedule may start at 0
    with pytest.raises(ValueError, match=re.escape("LARS: invalid learning rate -0.1")):
        LARS([w], lr=-0.1)


def _lars_param(w_value=1.0, g_value=0.5, n=4):
    w = torch.nn.Parameter(torch.full((n,), w_value))  # ||w|| = 2 w_value for n = 4
    w.grad = torch.full((n,), g_value)  # ||g|| = 2 g_value
    return w


def test_lars_step_by_hand_with_eps_and_a_unit_gradient_norm():
    # ||w|| = 2, ||g|| = 1: ratio = eta ||w|| / (||g|| + wd ||w|| + eps) = 0.5 * 2 / (1 + 0.2 + 0.5) = 1 / 1.7
    w = _lars_param()
    LARS([w], lr=1.0, momentum=0.0, weight_decay=0.1, eta=0.5, clip_lr=False, eps=0.5).step()
    torch.testing.assert_close(w.detach(), torch.full((4,), 1.0 - (0.5 + 0.1) / 1.7))


def test_lars_clips_the_ratio_at_one_learning_rate():
    # ratio = 0.75 * 2 / 1 = 1.5 > lr = 1: LARC clips min(1.5 / 1, 1) = 1, the update is the raw gradient
    w = _lars_param()
    LARS([w], lr=1.0, momentum=0.0, weight_decay=0.0, eta=0.75, clip_lr=True, eps=0.0).step()
    torch.testing.assert_close(w.detach(), torch.full((4,), 0.5))


def test_lars_at_a_zero_learning_rate_keeps_the_clipped_limit_in_its_momentum():
    """A warmup from 0 makes the first step's lr exactly 0: ``min(r / lr, 1)`` is then 1 (the limit as lr -> 0, and
    what solo-learn's tensor division gives), so the momentum buffer takes ``(g + wd w)``. The weights do not move."""
    w = _lars_param()
    opt = LARS([w], lr=0.0, momentum=0.9, weight_decay=0.1, eta=0.02, clip_lr=True)
    opt.step()
    torch.testing.assert_close(w.detach(), torch.ones(4))
    torch.testing.assert_close(opt.state[w]["momentum_buffer"], torch.full((4,), 0.6))
    opt.param_groups[0]["lr"] = 0.1
    opt.step()  # ratio 0.02 * 2 / (1 + 0.2 + 1e-8) / 0.1 = 1/3: u = 0.6 / 3; buf = 0.9 * 0.6 + 0.2
    torch.testing.assert_close(w.detach(), torch.full((4,), 1.0 - 0.1 * (0.9 * 0.6 + 0.6 / 3)))


def test_lars_step_returns_the_closures_loss_and_skips_only_parameters_without_gradient():
    frozen, w = torch.nn.Parameter(torch.ones(4)), _lars_param()
    opt = LARS([frozen, w], lr=1.0, momentum=0.0, eta=0.75, eps=0.0)
    assert opt.step() is None
    torch.testing.assert_close(w.detach(), torch.full((4,), 0.5))  # updated after a parameter without gradient
    assert opt.step(lambda: torch.tensor(3.0)).item() == 3.0
    assert torch.equal(frozen.detach(), torch.ones(4))


def test_optim_accepts_every_documented_choice_and_boundary():
    for name in ("lars", "sgd", "adamw", "adam"):
        Optim(name=name)
    for schedule in ("warmup_cosine", "step", "constant"):
        Optim(schedule=schedule)
    Optim(schedule="exponential", final_lr_ratio=0.1)
    Optim(lr=0.0, final_lr_ratio=1.0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="rmsprop"), "optim.name must be 'lars', 'sgd', 'adamw' or 'adam', got 'rmsprop'"),
    (dict(schedule="linear"),
     "optim.schedule must be 'warmup_cosine', 'exponential', 'step' or 'constant', got 'linear'"),
    (dict(lr=-1.0), "optim.lr and optim.weight_decay must be >= 0, got -1.0, 0.0"),
    (dict(weight_decay=-1.0), "optim.lr and optim.weight_decay must be >= 0, got 0.1, -1.0"),
    (dict(warmup_epochs=1.0, warmup_steps=5), "set optim.warmup_epochs or optim.warmup_steps, not both"),
    (dict(warmup_epochs=-1.0), "optim.warmup_epochs and optim.warmup_steps must be >= 0"),
    (dict(warmup_steps=-1), "optim.warmup_epochs and optim.warmup_steps must be >= 0"),
    (dict(final_lr_ratio=1.5), "optim.final_lr_ratio must be in [0, 1], got 1.5"),
    (dict(final_lr_ratio=-0.1), "optim.final_lr_ratio must be in [0, 1], got -0.1"),
    (dict(schedule="exponential"),
     "optim.schedule 'exponential' decays to final_lr_ratio x lr: set final_lr_ratio > 0 (NeRF: 0.1)"),
])
def test_optim_messages(kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Optim(**kwargs)


def test_lr_factor_without_warmup_starts_at_the_peak_and_a_zero_peak_stays_zero():
    assert lr_factor(0, Optim(), 1.0, 100, None) == 1.0
    assert lr_factor(0, Optim(warmup_steps=5), 0.0, 100, None) == 0.0
    assert lr_factor(50, Optim(), 0.0, 100, None) == 0.0


def test_the_warmup_starts_at_warmup_start_lr_of_the_groups_peak():
    optim = Optim(warmup_steps=10, warmup_start_lr=0.01)
    assert lr_factor(0, optim, 0.5, 100, None) == pytest.approx(0.02)  # 0.01 / 0.5
    assert lr_factor(5, optim, 0.5, 100, None) == pytest.approx(0.02 + 0.98 * 0.5)
    assert lr_factor(0, optim, 0.005, 100, None) == pytest.approx(1.0)  # never above the peak


def test_constant_and_step_schedules():
    assert lr_factor(50, Optim(schedule="constant", warmup_steps=10), 1.0, 100, None) == 1.0
    optim = Optim(schedule="step", milestones=(2, 4), gamma=0.5, warmup_steps=20)
    factors = [lr_factor(s, optim, 1.0, 1000, 10) for s in (20, 29, 39, 40, 100)]
    assert factors == [0.5, 0.5, 0.5, 0.25, 0.25]  # the warmup ends on epoch 2, a milestone
    optim = Optim(schedule="step", milestones=(2,), gamma=0.5)
    assert [lr_factor(s, optim, 1.0, math.inf, 10) for s in (0, 19, 20)] == [1.0, 1.0, 0.5]  # time-bounded too
    with pytest.raises(ValueError, match="^" + re.escape(
            "optim.schedule 'step' counts epochs: it needs a training loader with a length") + "$"):
        lr_factor(0, optim, 1.0, 100, None)
    with pytest.raises(ValueError, match="^" + re.escape(
            "optim.warmup_epochs needs a training loader with a length: use optim.warmup_steps") + "$"):
        lr_factor(0, Optim(warmup_epochs=1.0), 1.0, 100, None)


def test_a_one_step_decay_ends_at_the_floor():
    assert lr_factor(1, Optim(), 1.0, 1, None) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(6, Optim(warmup_steps=5, final_lr_ratio=0.1), 1.0, 6, None) == pytest.approx(0.1)


def _trainer(total=100, batches=8, accumulate=1, batch_size=32, world_size=1):
    return types.SimpleNamespace(
        estimated_stepping_batches=total, train_dataloader=object(), num_training_batches=batches,
        accumulate_grad_batches=accumulate, world_size=world_size, datamodule=types.SimpleNamespace(
            batch_size=batch_size))


def test_steps_per_epoch_counts_optimizer_steps():
    assert steps_per_epoch(_trainer(batches=10, accumulate=4)) == 3
    assert steps_per_epoch(_trainer(batches=1)) == 1
    assert steps_per_epoch(_trainer(batches=math.inf)) is None
    assert steps_per_epoch(_trainer(batches=None)) is None
    loaded = []
    lazy = _trainer(batches=6)
    lazy.train_dataloader = None
    lazy.fit_loop = types.SimpleNamespace(setup_data=lambda: loaded.append(True))
    assert steps_per_epoch(lazy) == 6 and loaded == [True]


@pytest.mark.parametrize("scale", [False, True])
def test_configure_optim_scales_each_groups_peak_by_the_global_batch(scale):
    # global batch 32 x 2 ranks x 2 accumulated = 128: half the reference 256
    module = types.SimpleNamespace(trainer=_trainer(batch_size=32, world_size=2, accumulate=2))
    optim = Optim(name="sgd", lr=0.2, scale_lr_by_batch=scale)
    out = configure_optim(module, _groups(), optim)
    factor = 0.5 if scale else 1.0
    assert out["lr_scheduler"]["interval"] == "step"
    assert out["lr_scheduler"]["scheduler"].base_lrs == pytest.approx([0.3 * factor, 0.2 * factor])
    assert [g["lr"] for g in out["optimizer"].param_groups] == pytest.approx([0.3 * factor, 0.2 * factor])


@pytest.mark.parametrize("schedule", ["warmup_cosine", "exponential"])
def test_configure_optim_warns_once_when_only_time_bounds_a_decay(schedule):
    module = types.SimpleNamespace(trainer=_trainer(total=math.inf))
    optim = Optim(schedule=schedule, final_lr_ratio=0.1)
    with pytest.warns(UserWarning) as record:
        configure_optim(module, _groups(), optim)
    assert len(record) == 1 and not record[0].filename.endswith("optim.py")  # stacklevel: a caller's line
    if "MUTANT_UNDER_TEST" not in os.environ:  # mutmut's trampoline is one frame more (docs/developing.md)
        assert record[0].filename == __file__  # the line that called configure_optim, not one above it
    assert str(record[0].message) == (
        f"Training is bounded by time only, so the {schedule} schedule has no last step: the learning rate stays "
        "at its peak after the warmup. Set trainer.max_steps or max_epochs for the decay.")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        configure_optim(types.SimpleNamespace(trainer=_trainer(total=100)), _groups(), optim)  # a last step: quiet
        configure_optim(module, _groups(), Optim(schedule="constant"))  # nothing decays: quiet


def test_batch_scaling_needs_a_datamodule_with_an_int_batch_size():
    for datamodule in (types.SimpleNamespace(), types.SimpleNamespace(batch_size=None), None):
        trainer = _trainer()
        trainer.datamodule = datamodule
        with pytest.raises(ValueError, match="^" + re.escape(
                "Scaling the learning rate by the batch size needs a DataModule with an int `batch_size`; use one, "
                "or set model.init_args.optim.scale_lr_by_batch: false.") + "$"):
            configure_optim(types.SimpleNamespace(trainer=trainer), _groups(), Optim(scale_lr_by_batch=True))


def test_a_resumed_schedule_keeps_the_configured_peaks_at_the_saved_step():
    """Resuming with another optim.lr: the schedule restores its step but every group keeps its new peak."""

    def half_per_step(step):
        return 0.5**step

    old = torch.optim.SGD(_groups(), lr=0.7)  # peaks 0.3 and 0.7
    schedule = Schedule(old, [half_per_step, half_per_step])
    for _ in range(3):
        old.step()
        schedule.step()
    new_groups = _groups()
    new_groups[0]["lr"] = 0.03
    new = torch.optim.SGD(new_groups, lr=0.07)  # peaks 0.03 and 0.07
    resumed = Schedule(new, [half_per_step, half_per_step])
    new.load_state_dict(old.state_dict())  # Lightning restores the optimiser first: the old peaks come back
    assert [g["initial_lr"] for g in new.param_groups] == [0.3, 0.7]
    resumed.load_state_dict(schedule.state_dict())
    assert resumed.last_epoch == 3
    assert resumed.base_lrs == [0.03, 0.07]
    assert [g["initial_lr"] for g in new.param_groups] == [0.03, 0.07]
    assert [g["lr"] for g in new.param_groups] == pytest.approx([0.03 / 8, 0.07 / 8])
    assert resumed.get_last_lr() == pytest.approx([0.03 / 8, 0.07 / 8])
    resumed.step()
    assert [g["lr"] for g in new.param_groups] == pytest.approx([0.03 / 16, 0.07 / 16])
