"""FiniteLossGuard saves the last finite state and the documented recovery works; CheckpointOnException only
keeps runs that trained."""

from __future__ import annotations

import math

import pytest
import torch

from lit_digest.core.callbacks import CheckpointOnException, FiniteLossGuard
from lit_digest.core.lightning import Callback, Trainer, seed_everything
from lit_digest.core.optim import Optim, lr_factor
from lit_digest.ssl import BYOL, BYOLViews, SmallConvNet, SyntheticImageDataModule

OPTIM = Optim(name="sgd", lr=0.5, warmup_steps=2)


def data() -> SyntheticImageDataModule:
    return SyntheticImageDataModule(num_train=64, num_test=16, image_size=16, classes=4, batch_size=16,
                                    num_workers=0, views=BYOLViews(crop_size=16))


def byol(optim: Optim = OPTIM) -> BYOL:
    return BYOL(SmallConvNet(in_channels=3, width=4), num_classes=4, proj_hidden_dim=16, proj_dim=8,
                pred_hidden_dim=16, optim=optim)


def trainer(tmp_path, callbacks, **kw) -> Trainer:
    return Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path,
                   callbacks=callbacks, **kw)


class PoisonBatch(Callback):
    """NaN pixels in the batch of step 2: the forward pass writes NaN into BatchNorm's statistics."""

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == 2:
            batch[0][0][0, 0, 0, 0] = math.nan


class InfiniteGradient(Callback):
    """A finite loss at step 2 whose gradient is infinite (an overflow in a custom op, say)."""

    def on_after_backward(self, trainer, module):
        if trainer.global_step == 2:
            next(module.backbone.parameters()).grad.fill_(math.inf)


def finite(state: dict) -> bool:
    return all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


@pytest.mark.parametrize("poison", [PoisonBatch, InfiniteGradient])
def test_the_guard_saves_finite_weights_and_statistics(tmp_path, poison):
    """0.1 saved the state after the bad batch: NaN BatchNorm statistics, and with an infinite gradient the
    weights it had already taken (caught only at the next, NaN, loss)."""
    seed_everything(0)
    model = byol()
    with pytest.raises(FloatingPointError, match=r"non-finite.* at epoch 0, step 2"):
        trainer(tmp_path, [poison(), FiniteLossGuard()], max_steps=6).fit(model, data())
    state = torch.load(tmp_path / "checkpoints" / "nonfinite-step=2.ckpt", weights_only=False)
    assert state["global_step"] == 2 and finite(state)
    assert finite({"state_dict": model.state_dict()})  # the live model was put back too


def test_resuming_from_the_guards_checkpoint_with_a_lower_rate_uses_it(tmp_path):
    seed_everything(0)
    with pytest.raises(FloatingPointError):
        trainer(tmp_path, [PoisonBatch(), FiniteLossGuard()], max_steps=6).fit(byol(), data())
    path = tmp_path / "checkpoints" / "nonfinite-step=2.ckpt"
    lower = Optim(name="sgd", lr=0.05, warmup_steps=2)
    seen = []

    class Rates(Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            seen.append((trainer.global_step, trainer.optimizers[0].param_groups[0]["lr"]))

    trainer(tmp_path, [Rates(), FiniteLossGuard()], max_steps=6).fit(byol(lower), data(), ckpt_path=path,
                                                                      weights_only=False)  # a pickled backbone
    total = 6
    assert [step for step, _ in seen] == [2, 3, 4, 5]
    for step, lr in seen:  # the new peak on the old schedule, from the step the run stopped at
        assert lr == pytest.approx(0.05 * lr_factor(step, lower, 0.05, total, epoch_steps=4)), (step, lr)


def test_a_run_that_fails_before_training_leaves_no_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="num_classes=3"):
        trainer(tmp_path, [CheckpointOnException()], max_steps=2).fit(
            BYOL(SmallConvNet(width=4), num_classes=3, proj_hidden_dim=16, proj_dim=8, pred_hidden_dim=16), data())
    assert not list(tmp_path.rglob("*.ckpt"))


def test_a_run_that_crashes_after_training_keeps_its_progress(tmp_path):
    class Crash(Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if trainer.global_step == 3:
                raise RuntimeError("simulated crash")

    seed_everything(0)
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainer(tmp_path, [Crash(), CheckpointOnException()], max_steps=10).fit(byol(), data())
    state = torch.load(tmp_path / "interrupted-step=3.ckpt", weights_only=False)
    assert state["global_step"] == 3


def test_progress_is_quiet_for_short_loops_and_reports_long_ones(capsys, monkeypatch):
    import lit_digest.core.progress as progress

    clock = iter([0.0, 1.0, 2.0])  # start, update, close: a short loop
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    short = progress.Progress(10, "short")
    short.update(5)
    short.close()
    assert capsys.readouterr().err == ""
    clock = iter([0.0, 11.0, 15.0, 30.0])
    long = progress.Progress(200, "CSLS", "rows")
    long.update(80)  # 11 s in: printed
    long.update(120)  # 4 s later: not yet
    long.close()
    assert capsys.readouterr().err.splitlines() == ["CSLS: 40% (80/200 rows), 11 s", "CSLS: done in 30 s"]
