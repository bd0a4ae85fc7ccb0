"""Callbacks: kNN monitor, non-finite loss guard, view grids, a frozen-encoder report.

Methods expose their encoder as ``module.backbone`` and return ``{"features": (B, D)}``
from ``validation_step``; that is all these callbacks assume.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import torch
import torchvision
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info
from torchmetrics.functional.classification import multiclass_accuracy

from lit_digest.evaluation import extract_features, knn_accuracy, knn_predict, linear_probe_accuracy
from lit_digest.transforms import to_unit_float

__all__ = ["KNNMonitor", "FiniteLossGuard", "CheckpointOnException", "LogAugmentedViews", "EncoderReport",
           "ChannelsLast"]


def _run_dir(trainer: Trainer) -> Path:
    """The run's log folder. ``trainer.log_dir`` is a broadcast under DDP: call on every rank."""
    return Path(trainer.log_dir or trainer.default_root_dir)


class KNNMonitor(Callback):
    """Weighted kNN accuracy of the encoder on the validation split, with the labeled training
    images (the DataModule's second validation loader) as the memory bank.

    Cosine similarity, ``k`` neighbours, votes weighted by ``exp(sim / temperature)``
    (Wu et al. 1805.01978; k=200, T=0.1 as there and in solo-learn's monitor). Logs
    ``val/knn_acc``. Features are all-gathered across ranks before the vote.
    """

    def __init__(self, k: int = 200, temperature: float = 0.1) -> None:
        self.k, self.temperature = k, temperature
        self._feats: dict[int, list[torch.Tensor]] = {}
        self._labels: dict[int, list[torch.Tensor]] = {}

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._feats, self._labels = {}, {}

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not isinstance(outputs, dict) or "features" not in outputs:
            return
        self._feats.setdefault(dataloader_idx, []).append(outputs["features"].detach().float())
        self._labels.setdefault(dataloader_idx, []).append(batch[1].detach())

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or 0 not in self._feats or 1 not in self._feats:
            return
        gathered = []
        for idx in (0, 1):
            feats = pl_module.all_gather(torch.cat(self._feats[idx])).flatten(0, -2)  # (N, D)
            labels = pl_module.all_gather(torch.cat(self._labels[idx])).flatten()  # (N,)
            gathered += [feats, labels]
        query, query_labels, bank, bank_labels = gathered
        num_classes = int(max(bank_labels.max(), query_labels.max())) + 1
        scores = knn_predict(query, bank, bank_labels, num_classes, self.k, self.temperature)
        acc = multiclass_accuracy(scores, query_labels, num_classes=num_classes, average="micro")
        pl_module.log("val/knn_acc", acc, prog_bar=True, sync_dist=False, rank_zero_only=False)
        self._feats, self._labels = {}, {}


class FiniteLossGuard(Callback):
    """Stops the run at the first non-finite loss, before its backward pass can corrupt the
    weights: saves a checkpoint of the last good state and raises with a message.

    All ranks agree on the decision, so DDP runs stop together.
    """

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor) -> None:
        bad = not bool(torch.isfinite(loss.detach()).all())
        if not trainer.strategy.reduce_boolean_decision(bad, all=False):
            return
        step = trainer.global_step
        path = _run_dir(trainer) / "checkpoints" / f"nonfinite-step={step}.ckpt"
        trainer.save_checkpoint(path)
        raise FloatingPointError(
            f"The training loss became non-finite ({loss.item()}) at epoch {trainer.current_epoch}, step {step}. "
            f"The weights before this step are saved in {path}. Usual fixes: lower model.init_args.lr, add "
            "gradient clipping (--trainer.gradient_clip_val 1.0), use bf16-mixed rather than 16-mixed, or check "
            f"the data for NaNs; then resume with --ckpt_path {path}."
        )


class CheckpointOnException(Callback):
    """Saves ``interrupted-step=N.ckpt`` beside the run's checkpoints when training stops on an
    exception (Ctrl-C, out of memory, a crash), so no progress is lost; resume with
    ``--ckpt_path <that file>``.

    Lightning's ``OnExceptionCheckpoint`` does the same, but its mere presence makes every
    ``fit`` without ``--ckpt_path`` resume from ``last`` (Lightning 2.x), which silently
    continues an older run; this one changes nothing about resuming.
    """

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if isinstance(exception, FloatingPointError):
            return  # FiniteLossGuard already saved the last good weights
        ckpt = trainer.checkpoint_callback
        folder = Path(ckpt.dirpath) if ckpt is not None and ckpt.dirpath else Path(trainer.default_root_dir)
        path = folder / f"interrupted-step={trainer.global_step}.ckpt"
        trainer.save_checkpoint(path)
        rank_zero_info(f"Training stopped by {type(exception).__name__}; checkpoint saved to {path}")


class LogAugmentedViews(Callback):
    """Saves (and logs to W&B) a grid of the first training batch's views: one row per view,
    ``num_images`` columns, de-normalised with the DataModule's statistics."""

    def __init__(self, num_images: int = 16) -> None:
        self.num_images = num_images
        self.done = False

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch, batch_idx: int) -> None:
        if self.done:
            return
        self.done = True
        path = _run_dir(trainer) / "views.png"
        views = batch[0]
        if not trainer.is_global_zero:
            return
        if not isinstance(views, (list, tuple)):
            return
        dm = trainer.datamodule
        rows = [v[: self.num_images].detach().float() for v in views]
        if hasattr(dm, "denormalize"):
            rows = [dm.denormalize(r) for r in rows]
        grid = torchvision.utils.make_grid(torch.cat(rows).cpu(), nrow=rows[0].shape[0], padding=1)
        path.parent.mkdir(parents=True, exist_ok=True)
        torchvision.utils.save_image(grid, path)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="train/views", images=[grid], caption=["one row per view"])


class EncoderReport(Callback):
    """At the end of ``fit``, evaluates the trained encoder and the same encoder at its random
    initialisation with one frozen-feature protocol, prints both and writes ``report.json``.

    kNN (cosine, temperature-weighted, ``k`` neighbours) and a logistic-regression probe fitted
    on the labeled training features; accuracies on the validation split. Meant for small
    data sets (the demo, tests): it encodes the whole labeled training set once per encoder.
    """

    def __init__(self, k: int = 20, temperature: float = 0.1, probe_steps: int = 300) -> None:
        self.k, self.temperature, self.probe_steps = k, temperature, probe_steps
        self.initial_encoder: torch.nn.Module | None = None
        self.results: dict[str, float] = {}

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # setup runs before a checkpoint is restored: these are the initial (random) weights.
        if stage == "fit" and self.initial_encoder is None:
            self.initial_encoder = copy.deepcopy(pl_module.backbone).cpu()

    def _evaluate(self, encoder: torch.nn.Module, trainer: Trainer, device: torch.device) -> dict[str, float]:
        dm = trainer.datamodule
        transform = getattr(dm, "prepare_images", to_unit_float)  # the DataModule's own eval path

        train_x, train_y = extract_features(encoder, dm.eval_train_dataloader(), device, transform)
        val_x, val_y = extract_features(encoder, dm.val_dataloader()[0], device, transform)
        num_classes = int(max(train_y.max(), val_y.max())) + 1
        return {
            "knn_acc": knn_accuracy(val_x, val_y, train_x, train_y, num_classes, self.k, self.temperature),
            "linear_acc": linear_probe_accuracy(train_x, train_y, val_x, val_y, num_classes, self.probe_steps),
        }

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        out = _run_dir(trainer) / "report.json"
        if not trainer.is_global_zero or self.initial_encoder is None:
            return
        device = pl_module.device
        trained = self._evaluate(pl_module.backbone, trainer, device)
        random_init = self._evaluate(self.initial_encoder.to(device), trainer, device)
        online = trainer.callback_metrics.get("val/probe_acc")
        self.results = {
            "trained/knn_acc": trained["knn_acc"], "trained/linear_acc": trained["linear_acc"],
            "random/knn_acc": random_init["knn_acc"], "random/linear_acc": random_init["linear_acc"],
            "trained/online_probe_acc": float(online) if online is not None else math.nan,
        }
        lines = [
            "",
            f"Frozen-encoder evaluation of {type(pl_module).__name__} on the validation split",
            f"{'':28s}{'trained':>10s}{'random init':>14s}",
            f"{f'kNN accuracy (k={self.k})':28s}{trained['knn_acc']:10.4f}{random_init['knn_acc']:14.4f}",
            f"{'linear probe accuracy':28s}{trained['linear_acc']:10.4f}{random_init['linear_acc']:14.4f}",
            f"{'online probe accuracy':28s}{self.results['trained/online_probe_acc']:10.4f}{'-':>14s}",
            "",
        ]
        print("\n".join(lines), flush=True)
        rank_zero_info(f"EncoderReport: results in {out}")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.results, indent=2))
        for logger in trainer.loggers:
            logger.log_metrics({f"report/{k}": v for k, v in self.results.items()}, step=trainer.global_step)


class ChannelsLast(Callback):
    """Puts the model in ``channels_last`` memory format on CUDA (faster convolutions with
    tensor cores; the DataModules already emit channels_last batches there)."""

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if pl_module.device.type == "cuda":
            pl_module.to(memory_format=torch.channels_last)
