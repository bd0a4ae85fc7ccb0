"""HyperparameterControl changes only what it claims, at exactly the configured number of points, on a toy module
and on BYOL; it logs every decision and survives a resume."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_digest.core.lightning import Callback, LightningModule, pl
from lit_digest.core.optim import Optim, configure_optim
from lit_digest.lr_control import (
    ACTION_SCALES,
    HYPERPARAMETERS,
    Controller,
    HyperparameterControl,
    PlateauController,
    decision_steps,
)
from lit_digest.lr_control.actions import NO_CHANGE
from lit_digest.lr_control.features import Observation


class Toy(LightningModule):
    """A two-layer regression with the house optimiser: AdamW (or SGD) and a per-step warmup-cosine LambdaLR."""

    def __init__(self, optim: Optim = Optim(name="adamw", lr=1e-2, weight_decay=0.1, warmup_steps=3),
                 loss_scale: float = 1.0) -> None:
        super().__init__()
        self.optim, self.loss_scale = optim, loss_scale
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_scale * nn.functional.mse_loss(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val/loss", self.loss_scale * nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        decay = [p for p in self.parameters() if p.ndim > 1]
        no_decay = [p for p in self.parameters() if p.ndim <= 1]
        return configure_optim(self, [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}], self.optim)


def _loader(n: int = 64, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True).sin()), batch_size=8, shuffle=False)


class Scripted(Controller):
    """Replays a fixed cycle of actions (a different factor per decision), so every kind of change is exercised."""

    def __init__(self, cycle: list[dict[str, int]] | None = None) -> None:
        self.cycle = cycle or [{"lr": 6, "weight_decay": 2, "momentum": 0}, {"lr": 0, "weight_decay": 0, "momentum": 2},
                               {"lr": 4, "weight_decay": 1, "momentum": 1}]
        self.seen: list[Observation] = []

    def reset(self) -> None:
        self.seen = []

    def decide(self, obs: Observation) -> dict[str, int]:
        self.seen.append(obs)
        return dict(self.cycle[(len(self.seen) - 1) % len(self.cycle)])


class Recorder(Callback):
    """Every optimiser step's hyperparameters, read after HyperparameterControl acted (it comes first in the list)."""

    def __init__(self) -> None:
        self.groups: list[list[dict]] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.groups.append([{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups])


class Capture(pl.loggers.Logger):
    name, version = "capture", 0

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[int, dict]] = []

    @property
    def experiment(self):
        return None

    def log_metrics(self, metrics, step=None):
        self.rows.append((step, dict(metrics)))

    def log_hyperparams(self, params, *args, **kwargs):
        pass


def _fit(quiet_trainer, module, callbacks, max_steps, train=None, **kwargs):
    trainer = quiet_trainer(max_steps=max_steps, callbacks=callbacks, val_check_interval=4,
                            check_val_every_n_epoch=None, **kwargs)
    trainer.fit(module, train or _loader(), _loader(16, seed=1))
    return trainer


def _expected_scale(history: list[dict], name: str, step: int) -> float:
    return math.prod(r[f"{name}_factor"] for r in history if r["step"] <= step)


def _check_only_claimed_changes(plain: list[list[dict]], controlled: list[list[dict]], history: list[dict]) -> None:
    """Step by step: lr x the product of lr factors so far, weight decay x its factors, 1 - beta1 (or 1 - momentum)
    x its factors, every other optimiser setting untouched."""
    assert len(plain) == len(controlled)
    for step, (groups_a, groups_b) in enumerate(zip(plain, controlled)):
        lr, wd, mom = (_expected_scale(history, n, step) for n in HYPERPARAMETERS)
        for a, b in zip(groups_a, groups_b):
            assert set(a) == set(b)
            for key in a:
                if key in ("lr", "initial_lr"):
                    assert b[key] == pytest.approx(a[key] * lr, rel=1e-12, abs=0), (step, key)
                elif key == "weight_decay":
                    assert b[key] == pytest.approx(a[key] * wd, rel=1e-12, abs=0), (step, key)
                elif key == "betas":
                    assert 1 - b[key][0] == pytest.approx((1 - a[key][0]) * mom, rel=1e-9), step
                    assert b[key][1] == a[key][1]
                elif key == "momentum" and a[key]:
                    assert 1 - b[key] == pytest.approx((1 - a[key]) * mom, rel=1e-9), step
                else:
                    assert b[key] == a[key], (step, key)


@pytest.mark.parametrize(("steps", "decisions"), [(16, 16), (37, 5), (100, 16)])
def test_decisions_happen_at_exactly_the_configured_points(quiet_trainer, steps, decisions):
    control = HyperparameterControl(Scripted(), decisions=decisions)
    _fit(quiet_trainer, Toy(), [control], steps)
    assert [r["step"] for r in control.history] == decision_steps(steps, decisions)
    assert len(control.history) == decisions == len(control.controller.seen)
    assert [o.decision for o in control.controller.seen] == list(range(decisions))
    assert control.controller.seen[-1].progress == pytest.approx(decision_steps(steps, decisions)[-1] / steps)


def test_too_short_a_run_is_a_clear_error(quiet_trainer):
    with pytest.raises(ValueError, match="need a run of at least 16"):
        _fit(quiet_trainer, Toy(), [HyperparameterControl(decisions=16)], 10)


@pytest.mark.parametrize("optim", [Optim(name="adamw", lr=1e-2, weight_decay=0.1, warmup_steps=3),
                                   Optim(name="sgd", lr=0.05, momentum=0.9, weight_decay=1e-3, schedule="constant")])
def test_the_callback_changes_only_what_it_claims_on_a_toy_module(quiet_trainer, optim):
    torch.manual_seed(0)
    plain, controlled = Recorder(), Recorder()
    _fit(quiet_trainer, Toy(optim), [plain], 30)
    control = HyperparameterControl(Scripted(), decisions=6)
    torch.manual_seed(0)
    _fit(quiet_trainer, Toy(optim), [control, controlled], 30)
    assert len(control.history) == 6
    assert any(r["lr_factor"] != 1 for r in control.history) and any(r["momentum_factor"] != 1 for r in control.history)
    _check_only_claimed_changes(plain.groups, controlled.groups, control.history)
    for record in control.history:  # the logged learning rate is the one the step used
        assert record["lr"] == controlled.groups[record["step"]][0]["lr"]


def test_a_controller_that_changes_nothing_leaves_the_run_bit_identical(quiet_trainer):
    torch.manual_seed(0)
    plain = Toy()
    _fit(quiet_trainer, plain, [], 24)
    torch.manual_seed(0)
    controlled = Toy()
    control = HyperparameterControl(Scripted([dict(NO_CHANGE)]), decisions=8)
    _fit(quiet_trainer, controlled, [control], 24)
    assert len(control.history) == 8
    for a, b in zip(plain.state_dict().values(), controlled.state_dict().values()):
        assert torch.equal(a, b)


def test_only_the_listed_hyperparameters_move_and_bounds_hold(quiet_trainer):
    control = HyperparameterControl(Scripted([{"lr": 6, "weight_decay": 2, "momentum": 2}]), decisions=16,
                                    hyperparameters=["lr"])
    _fit(quiet_trainer, Toy(), [control], 32)
    assert all(r["weight_decay_factor"] == 1 and r["momentum_factor"] == 1 for r in control.history)
    assert control.scales["lr"] == pytest.approx(1e3)  # 2 ** 16 asked, capped at SCALE_BOUNDS["lr"]
    assert control.history[-1]["lr_factor"] == pytest.approx(1.0)


def test_every_decision_is_logged(quiet_trainer):
    logger = Capture()
    control = HyperparameterControl(Scripted(), decisions=4, log_features=True)
    _fit(quiet_trainer, Toy(), [control], 20, logger=logger, log_every_n_steps=1000)
    rows = [(step, m) for step, m in logger.rows if "lr_control/decision" in m]
    assert [step for step, _ in rows] == [r["step"] for r in control.history]
    for (_, metrics), record in zip(rows, control.history):
        for name in HYPERPARAMETERS:
            assert metrics[f"lr_control/{name}_factor"] == record[f"{name}_factor"]
            assert metrics[f"lr_control/{name}_scale"] == record[f"{name}_scale"]
        assert metrics["lr_control/lr"] == record["lr"]
        assert sum(k.startswith("lr_control/feature/") for k in metrics) > 30


def test_features_are_unitless_and_see_fresh_validation(quiet_trainer):
    """The loss in other units (x 1000) under Adam, which is scale-free: the policy sees the same features."""
    observations = []
    for scale in (1.0, 1000.0):
        control = HyperparameterControl(Scripted([dict(NO_CHANGE)]), decisions=4)
        torch.manual_seed(0)
        _fit(quiet_trainer, Toy(Optim(name="adam", lr=1e-2, schedule="constant"), loss_scale=scale), [control], 16)
        observations.append(control.controller.seen)
    for a, b in zip(*observations):
        assert torch.allclose(a.vector, b.vector, atol=1e-3), (a.vector - b.vector).abs().max()
        assert a.train_loss * 1000 == pytest.approx(b.train_loss, rel=1e-3)
        assert a.vector.abs().max() <= 1.0
    assert [o.val_fresh for o in observations[0]] == [False, True, True, True]


class StopAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            trainer.should_stop = True


def test_the_callback_resumes_where_it_stopped(quiet_trainer, tmp_path):
    """Stopped after 16 of 24 steps (an epoch boundary) and resumed: the same decisions as one uninterrupted run."""
    torch.manual_seed(0)
    whole = HyperparameterControl(PlateauController(threshold=0.05), decisions=8)
    _fit(quiet_trainer, Toy(), [whole], 24)
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=16)
    torch.manual_seed(0)
    _fit(quiet_trainer, Toy(), [HyperparameterControl(PlateauController(threshold=0.05), decisions=8), ckpt,
                                StopAt(16)], 24, enable_checkpointing=True)
    second = HyperparameterControl(PlateauController(threshold=0.05), decisions=8)
    trainer = quiet_trainer(max_steps=24, callbacks=[second], val_check_interval=4, check_val_every_n_epoch=None)
    trainer.fit(Toy(), _loader(), _loader(16, seed=1), ckpt_path=str(tmp_path / "ckpt/last.ckpt"))
    assert [r["step"] for r in second.history] == [r["step"] for r in whole.history] == decision_steps(24, 8)
    assert [r["lr_scale"] for r in second.history] == pytest.approx([r["lr_scale"] for r in whole.history])
    assert any(r["lr_factor"] != 1 for r in whole.history)


def test_plateau_controller_halves_the_lr_after_patience():
    controller = PlateauController(factor=0.5, patience=2, threshold=0.01)
    lr_actions = []
    for k, loss in enumerate([1.0, 0.8, 0.799, 0.798, 0.7, 0.71, 0.72, float("nan")]):
        obs = Observation(torch.zeros(1), k, k / 8, train_loss=loss, val_loss=None, val_fresh=False)
        lr_actions.append(ACTION_SCALES["lr"][controller.decide(obs)["lr"]])
    assert lr_actions == [1, 1, 1, 0.5, 1, 1, 0.5, 0.5]


def _byol_run(quiet_trainer, callbacks, steps: int = 12):
    from lit_digest.ssl import BYOL, BYOLViews, SmallConvNet, SyntheticImageDataModule

    torch.manual_seed(0)
    model = BYOL(backbone=SmallConvNet(in_channels=3, width=4), num_classes=4, proj_hidden_dim=32, proj_dim=16,
                 pred_hidden_dim=32, optim=Optim(name="lars", lr=1.0, weight_decay=1e-5, scale_lr_by_batch=True,
                                                 warmup_steps=4))
    data = SyntheticImageDataModule(num_train=64, num_test=16, image_size=16, classes=4, batch_size=16, num_workers=0,
                                    knn_bank_size=0, views=BYOLViews(crop_size=16))
    trainer = quiet_trainer(max_steps=steps, callbacks=callbacks, num_sanity_val_steps=0, val_check_interval=4,
                            check_val_every_n_epoch=None)
    trainer.fit(model, data)
    return model


def test_the_callback_changes_only_what_it_claims_on_byol(quiet_trainer):
    """BYOL's LARS groups (weights, biases/norms without decay, the online probe at its own lr) all follow the
    controller's factors and nothing else; a no-op controller leaves BYOL's run (EMA target included) bit-identical."""
    plain, controlled = Recorder(), Recorder()
    reference = _byol_run(quiet_trainer, [plain])
    control = HyperparameterControl(Scripted(), decisions=4, monitor="val/probe_acc", mode="max")
    _byol_run(quiet_trainer, [control, controlled])
    assert [r["step"] for r in control.history] == decision_steps(12, 4)
    fresh = [o for o in control.controller.seen if o.val_fresh]  # BYOL's probe accuracy, seen as its error
    assert fresh and all(0.0 <= o.val_loss <= 1.0 for o in fresh)
    assert len(plain.groups[0]) >= 3  # decay, no-decay, the online probe at its own lr
    _check_only_claimed_changes(plain.groups, controlled.groups, control.history)
    assert controlled.groups[-1][1]["weight_decay"] == 0.0  # no decay stays no decay

    no_op = _byol_run(quiet_trainer, [HyperparameterControl(Scripted([dict(NO_CHANGE)]), decisions=4)])
    for a, b in zip(reference.state_dict().values(), no_op.state_dict().values()):
        assert torch.equal(a, b)


def test_the_shipped_policy_drives_a_run(quiet_trainer):
    from lit_digest.lr_control import LearnedController
    from lit_digest.lr_control.policy import POOL_POLICY

    if not POOL_POLICY.is_file():
        pytest.skip("no shipped policy")
    control = HyperparameterControl(LearnedController(), decisions=4)
    _fit(quiet_trainer, Toy(), [control], 16)
    assert len(control.history) == 4
    assert all(r["lr_factor"] in ACTION_SCALES["lr"] or r["lr_scale"] in (1e-3, 1e3) for r in control.history)
