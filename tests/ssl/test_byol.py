"""BYOL system properties: stop-gradient, exact EMA, probe isolation, checkpoints, resume, NaN guard."""


import pytest
import torch

from lit_digest import BYOL, BYOLViews, SmallConvNet, SyntheticImageDataModule
from lit_digest.core.ema import cosine_tau
from lit_digest.core.lightning import Callback, Trainer, seed_everything
from lit_digest.core.optim import Optim


def tiny_byol(**kw) -> BYOL:
    args = dict(proj_hidden_dim=32, proj_dim=16, pred_hidden_dim=32, num_classes=4,
                optim=Optim(name="sgd", lr=0.5, scale_lr_by_batch=True))
    args.update(kw)
    return BYOL(backbone=SmallConvNet(in_channels=3, width=4), **args)


def tiny_data(**kw) -> SyntheticImageDataModule:
    args = dict(num_train=64, num_test=16, image_size=16, classes=4, batch_size=16, num_workers=0,
                views=BYOLViews(crop_size=16))
    args.update(kw)
    return SyntheticImageDataModule(**args)


def trainer(tmp_path, **kw) -> Trainer:
    args = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0)
    args.update(kw)
    return Trainer(**args)


def params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


class Snapshots(Callback):
    """Online and target weights before every training batch and at the end."""

    def __init__(self):
        self.online, self.target, self.grads = [], [], []

    def _snap(self, m):
        self.online.append(params(m.backbone) + params(m.projector))
        self.target.append(params(m.target_backbone) + params(m.target_projector))

    def on_train_batch_start(self, trainer, m, batch, batch_idx):
        self._snap(m)

    def on_train_end(self, trainer, m):
        self._snap(m)

    def on_after_backward(self, trainer, m):
        self.grads.append({name: p.grad for name, p in m.named_parameters()})


def test_target_gets_no_gradient_and_online_parts_do(tmp_path):
    seed_everything(0)
    model, snaps = tiny_byol(), Snapshots()
    trainer(tmp_path, max_steps=1, callbacks=[snaps], limit_val_batches=0).fit(model, tiny_data())
    grads = snaps.grads[0]
    for name, grad in grads.items():
        if name.startswith("target_"):
            assert grad is None, name
        else:
            assert grad is not None and grad.abs().sum() > 0, name
    assert not any(p.requires_grad for p in model.target_backbone.parameters())


def test_probe_loss_reaches_only_the_probe():
    model = tiny_byol()
    x, y = torch.randn(8, 3, 16, 16), torch.randint(0, 4, (8,))
    model.probe.loss(model.backbone(x), y).backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is not None for p in model.probe.linear.parameters())


def test_target_follows_the_ema_formula_exactly(tmp_path):
    seed_everything(0)
    model, snaps = tiny_byol(base_tau=0.9, final_tau=1.0), Snapshots()
    steps = 4
    trainer(tmp_path, max_steps=steps, callbacks=[snaps], limit_val_batches=0).fit(model, tiny_data())
    assert len(snaps.online) == steps + 1
    # Initially the target is a copy of the online network.
    for o, t in zip(snaps.online[0], snaps.target[0]):
        torch.testing.assert_close(o, t, atol=0, rtol=0)
    for k in range(steps):
        tau = cosine_tau(k, steps, 0.9, 1.0)
        for t_old, t_new, o_new in zip(snaps.target[k], snaps.target[k + 1], snaps.online[k + 1]):
            torch.testing.assert_close(t_new, tau * t_old + (1 - tau) * o_new, atol=1e-7, rtol=1e-6)
        # and the online network did move, so the check is not vacuous
        assert any((a - b).abs().max() > 1e-6 for a, b in zip(snaps.online[k], snaps.online[k + 1]))
    assert cosine_tau(0, steps, 0.9, 1.0) == pytest.approx(0.9)


def test_gradient_accumulation_updates_target_once_per_optimizer_step(tmp_path, monkeypatch):
    """4 batches, 2 optimiser steps: the target moves after batches 2 and 4 only, once each."""
    import lit_digest.ssl.byol as byol_module

    calls = []
    real = byol_module.update_ema
    monkeypatch.setattr(byol_module, "update_ema", lambda online, target, tau: (calls.append(tau), real(online,
                                                                                                        target, tau)))
    seed_everything(0)
    model, snaps = tiny_byol(), Snapshots()
    trainer(tmp_path, max_steps=2, accumulate_grad_batches=2, limit_val_batches=0, callbacks=[snaps]).fit(
        model, tiny_data())
    assert len(calls) == 2 * 2  # backbone and projector, at each of the 2 optimiser steps
    moved = [any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
             for before, after in zip(snaps.target[:-1], snaps.target[1:], strict=True)]
    assert moved == [False, True, False, True]  # before batches 2, 3, 4 and at the end


def test_load_from_checkpoint_gives_back_the_trained_encoder(tmp_path):
    seed_everything(0)
    model = tiny_byol()
    t = trainer(tmp_path, max_steps=2, limit_val_batches=0)
    t.fit(model, tiny_data())
    path = tmp_path / "byol.ckpt"
    t.save_checkpoint(path)
    loaded = BYOL.load_from_checkpoint(path, weights_only=False)
    x = torch.randn(4, 3, 16, 16)
    model.eval(), loaded.eval()
    torch.testing.assert_close(loaded(x), model(x))
    assert loaded.hparams.proj_dim == 16


def test_wrong_num_classes_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="num_classes=3 .* 4 classes"):
        trainer(tmp_path, max_steps=1).fit(tiny_byol(num_classes=3), tiny_data())
