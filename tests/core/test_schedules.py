"""The learning-rate schedule follows the run's real length, whatever bounds it (epochs, steps or time)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lit_digest.core.lightning import Callback, LightningModule, Trainer
from lit_digest.core.optim import Optim, configure_optim, lr_factor
from lit_digest.ssl import BYOL, BYOLViews, SimCLR, SimCLRViews, SmallConvNet, SyntheticImageDataModule


class Tiny(LightningModule):
    def __init__(self, optim: Optim) -> None:
        super().__init__()
        self.layer, self.optim = nn.Linear(4, 1), optim

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return configure_optim(self, [{"params": list(self.parameters())}], self.optim)


class LRs(Callback):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def fit(module, callbacks, **limits) -> Trainer:
    data = DataLoader(TensorDataset(torch.randn(64, 4)), batch_size=8)  # 8 batches per epoch
    trainer = Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, callbacks=callbacks, **limits)
    trainer.fit(module, data)
    return trainer


def test_warmup_counts_epochs_of_the_real_data_when_steps_bound_the_run():
    """max_steps=20 with max_epochs=-1: 1 warmup epoch is 8 steps of this data, then a cosine to step 20.
    (0.1 took warmup_epochs x total steps: the rate reached 0.475 of its peak at the end of such a run.)"""
    optim, record = Optim(name="sgd", lr=2.0, warmup_epochs=1), LRs()
    fit(Tiny(optim), [record], max_epochs=-1, max_steps=20)
    lrs = record.lrs
    expected = [2.0 * lr_factor(step, optim, 2.0, total_steps=20, epoch_steps=8) for step in range(20)]
    assert lrs == pytest.approx(expected)
    assert lrs[8] == pytest.approx(2.0) and lrs[4] == pytest.approx(1.0)  # the peak after one epoch


def test_warmup_and_cosine_under_an_epoch_budget():
    optim, record = Optim(name="sgd", lr=1.0, warmup_epochs=0.5, final_lr_ratio=0.1), LRs()
    fit(Tiny(optim), [record], max_epochs=3)  # 24 steps, warmup 4
    lrs = record.lrs
    assert lrs[4] == pytest.approx(1.0) and lrs[0] == 0.0
    assert lrs[-1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 19 / 20)))


def test_a_time_bounded_run_holds_the_peak_after_warmup_and_says_so():
    optim, record = Optim(name="sgd", lr=1.0, warmup_steps=3), LRs()
    with pytest.warns(UserWarning, match="bounded by time only"):
        fit(Tiny(optim), [record], max_epochs=-1, max_steps=-1, max_time={"seconds": 1.5})
    lrs = record.lrs
    assert lrs[:4] == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0]) and set(lrs[3:]) == {1.0}


@pytest.mark.parametrize("method", ["byol", "simclr"])
def test_warmup_cosine_methods_run_when_bounded_by_time_only(method):
    """0.1 crashed here: OverflowError: cannot convert float infinity to integer."""
    data = SyntheticImageDataModule(num_train=32, num_test=8, image_size=16, batch_size=8, num_workers=0,
                                    views=(BYOLViews if method == "byol" else SimCLRViews)(crop_size=16))
    optim = Optim(name="sgd", lr=0.1, warmup_epochs=1)
    model = (BYOL(SmallConvNet(width=4), proj_hidden_dim=16, proj_dim=8, pred_hidden_dim=16, base_tau=0.99,
                  optim=optim) if method == "byol"
             else SimCLR(SmallConvNet(width=4), proj_hidden_dim=16, proj_dim=8, optim=optim))
    with pytest.warns(UserWarning, match="bounded by time only"):
        trainer = Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                          enable_model_summary=False, max_epochs=-1, max_steps=-1, max_time={"seconds": 2},
                          limit_val_batches=0)
        trainer.fit(model, data)
    assert trainer.global_step > 0
    if method == "byol":
        assert model.tau == 0.99  # no last step: the target's decay stays at base_tau
