"""SSL callbacks: the kNN monitor, a grid of the augmented views, a frozen-encoder report.

Methods expose their encoder as ``module.backbone`` and return ``{"features": (B, D)}``
from ``validation_step``; that is all these callbacks assume.
"""

from __future__ import annotations

import copy
import json
import math

import torch
import torchvision

from lit_digest.core.callbacks import run_dir
from lit_digest.core.lightning import Callback, LightningModule, Trainer, pl
from lit_digest.ssl.knn import FeatureBank, dataset_lengths, extract_features, knn_accuracy, linear_probe_accuracy
from lit_digest.ssl.views import to_unit_float

__all__ = ["KNNMonitor", "LogAugmentedViews", "EncoderReport"]


class KNNMonitor(Callback):
    """Weighted kNN accuracy of the encoder on the validation split, with the labeled training
    images (the DataModule's second validation loader) as the memory bank.

    Cosine similarity, ``k`` neighbours, votes weighted by ``exp(sim / temperature)`` (Wu et al.,
    arXiv 1805.01978, eq. 7). Defaults k = 20, T = 0.07: solo-learn's ``WeightedKNNClassifier``, the
    evaluation behind the numbers we quote from it; Wu et al.'s own setting is k = 200, T = 0.1. Logs
    ``val/knn_acc``. Features are all-gathered across ranks (the DistributedSampler's padding removed)
    before the vote.
    """

    def __init__(self, k: int = 20, temperature: float = 0.07) -> None:
        self.k, self.temperature = k, temperature
        self.bank = FeatureBank()

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.bank.clear()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if isinstance(outputs, dict) and "features" in outputs:
            self.bank.add(dataloader_idx, outputs["features"], batch[1])

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not self.bank.ready:
            return
        acc = self.bank.score(pl_module, [self.k], self.temperature, dataset_lengths(trainer))[self.k]
        # once, not under each validation loader; identical on every rank (all-gathered inputs)
        pl_module.log("val/knn_acc", acc, prog_bar=True, sync_dist=False, rank_zero_only=False,
                      add_dataloader_idx=False)
        self.bank.clear()


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
        path = run_dir(trainer) / "views.png"
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
            if isinstance(logger, pl.loggers.WandbLogger):
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
        out = run_dir(trainer) / "report.json"
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
            "",
        ]
        if online is not None:  # no validation ran (limit_val_batches=0): no online probe number
            lines.insert(-1, f"{'online probe accuracy':28s}{float(online):10.4f}{'-':>14s}")
        print("\n".join(lines), flush=True)
        pl.utilities.rank_zero_info(f"EncoderReport: results in {out}")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.results, indent=2))
        for logger in trainer.loggers:
            logger.log_metrics({f"report/{k}": v for k, v in self.results.items()}, step=trainer.global_step)
