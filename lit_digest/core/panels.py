"""A callback that keeps one validation (and test) batch's panels and writes them as one PNG row per epoch into
the run folder, logged to W&B: the shell shared by the depth and NeRF panels (each domain draws its own grid)."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision

from lit_digest.core.callbacks import run_dir
from lit_digest.core.lightning import Callback, LightningModule, Trainer, pl

__all__ = ["PanelsCallback"]


class PanelsCallback(Callback):
    """Keeps the ``"panels"`` dict of the first validation/test batch output that has one; at the epoch's end
    rank 0 writes ``grid(panels)`` to ``path(trainer, stage)`` and logs it to W&B as ``<stage>/panels``.
    Subclasses define ``grid`` (panels -> ``(3, H, W)`` image and the names in order) and ``path``."""

    def __init__(self) -> None:
        self.pending: dict | None = None

    def grid(self, panels: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[str]]:
        raise NotImplementedError

    def path(self, trainer: Trainer, stage: str) -> Path:
        return run_dir(trainer) / "panels" / f"{stage}_step{trainer.global_step}.png"

    def _keep(self, outputs) -> None:
        if self.pending is None and isinstance(outputs, dict) and outputs.get("panels"):
            self.pending = outputs["panels"]

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._keep(outputs)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._keep(outputs)

    def _write(self, trainer: Trainer, stage: str) -> None:
        panels, self.pending = self.pending, None
        if panels is None or trainer.sanity_checking or not trainer.is_global_zero:
            return
        grid, names = self.grid(panels)
        path = self.path(trainer, stage)
        path.parent.mkdir(parents=True, exist_ok=True)
        torchvision.utils.save_image(grid, path)
        for logger in trainer.loggers:
            if isinstance(logger, pl.loggers.WandbLogger):
                logger.log_image(key=f"{stage}/panels", images=[grid], caption=[" | ".join(names)])

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, "val")

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, "test")
