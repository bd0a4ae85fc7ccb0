"""SC-FEGAN callbacks: image panels of the edits at each validation, and the held-out report at the end of fit.

Both assume a module with ``generator`` (9 input channels) and ``complete(image, mask, sketch, colour,
noise)`` and a DataModule with ``val_dataloader()`` of face-editing dicts, as ``SCFEGAN`` and
``lit_digest.gan.FaceFolderDataModule``.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterable

import torch
import torchvision
from torch import nn

from lit_digest.core.callbacks import run_dir
from lit_digest.core.lightning import Callback, LightningModule, Trainer, pl
from lit_digest.gan.losses import masked_l1
from lit_digest.gan.scfegan.generator import compose, scfegan_input

__all__ = ["EditingPanels", "InpaintingReport", "held_out_masked_l1", "generator_fill", "mean_fill", "colour_fill",
           "PANEL_COLUMNS"]

PANEL_COLUMNS = ("input", "mask", "sketch", "colour", "output", "ground truth")


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    return ((x.float() + 1) / 2).clamp(0, 1)


def editing_panel(batch: dict[str, torch.Tensor], completed: torch.Tensor) -> torch.Tensor:
    """One row per sample, the columns of ``PANEL_COLUMNS``: ``(3, H', W')`` in [0, 1]. The input shows the erased
    region in grey; sketch and colour are shown inside the mask, where the generator sees them."""
    mask = batch["mask"].float()
    grey = torch.full_like(batch["image"], 0.5)
    columns = [
        _to_unit(batch["image"]) * (1 - mask) + grey * mask,
        mask.expand(-1, 3, -1, -1),
        (batch["sketch"] * mask).expand(-1, 3, -1, -1),
        _to_unit(batch["colour"]) * mask,
        _to_unit(completed),
        _to_unit(batch["image"]),
    ]
    tiles = torch.stack([c.cpu() for c in columns], dim=1).flatten(0, 1)  # (B * 6, 3, H, W), row-major
    return torchvision.utils.make_grid(tiles, nrow=len(columns), padding=2, pad_value=1.0)


class EditingPanels(Callback):
    """After each validation: input, mask, sketch, colour, output and ground truth side by side for the first
    ``num_images`` held-out faces (the same ones every time), saved as ``panels/epoch=N.png`` in the run folder
    and logged to W&B as the ``val/panels`` image."""

    def __init__(self, num_images: int = 4) -> None:
        self.num_images = num_images
        self.batch: dict[str, torch.Tensor] | None = None

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        if batch_idx == 0 and dataloader_idx == 0 and isinstance(batch, dict):
            self.batch = {k: v[: self.num_images].detach() for k, v in batch.items()}

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self.batch is None:
            return
        folder = run_dir(trainer) / "panels"
        if not trainer.is_global_zero:
            return
        b = self.batch
        _, completed = pl_module.complete(b["image"], b["mask"], b["sketch"], b["colour"], b["noise"])
        grid = editing_panel(b, completed)
        folder.mkdir(parents=True, exist_ok=True)
        torchvision.utils.save_image(grid, folder / f"epoch={trainer.current_epoch}.png")
        for logger in trainer.loggers:
            if isinstance(logger, pl.loggers.WandbLogger):
                logger.log_image(key="val/panels", images=[grid], caption=[" | ".join(PANEL_COLUMNS)],
                                 step=trainer.global_step)


Completion = Callable[[dict[str, torch.Tensor]], torch.Tensor]


def generator_fill(generator: nn.Module, hints: bool = True) -> Completion:
    """Completion by ``generator``; ``hints=False`` gives it nothing drawn (the demo's empty canvases: no sketch
    line, colour -1), plain inpainting."""

    def complete(b: dict[str, torch.Tensor]) -> torch.Tensor:
        sketch, colour = (b["sketch"], b["colour"]) if hints else (torch.zeros_like(b["sketch"]),
                                                                    -torch.ones_like(b["colour"]))
        return compose(generator(scfegan_input(b["image"], b["mask"], sketch, colour, b["noise"])), b["image"],
                       b["mask"])

    return complete


def mean_fill(b: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each hole filled with the mean colour of its image's known pixels."""
    image, mask = b["image"], b["mask"]
    fill = (image * (1 - mask)).sum((2, 3), keepdim=True) / (1 - mask).sum((2, 3), keepdim=True).clamp_min(1)
    return compose(fill.expand_as(image), image, mask)


def colour_fill(b: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each hole filled with the colour map given as the user's colour input (what copying the hint scores)."""
    return compose(b["colour"], b["image"], b["mask"])


@torch.no_grad()
def held_out_masked_l1(complete: Completion, batches: Iterable[dict[str, torch.Tensor]],
                       device: torch.device | str = "cpu") -> float:
    """Mean absolute error over every erased pixel (and channel) of ``batches``, images in [-1, 1], of the
    completions ``complete(batch)`` (``generator_fill``, ``mean_fill``, ``colour_fill``)."""
    total, count = 0.0, 0.0
    for batch in batches:
        b = {k: v.to(device) for k, v in batch.items()}
        n = b["mask"].sum().item() * b["image"].shape[1]
        total += masked_l1(complete(b), b["image"], b["mask"]).item() * n
        count += n
    return total / max(count, 1.0)


class InpaintingReport(Callback):
    """At the end of ``fit``: the held-out masked L1 (``held_out_masked_l1``, [-1, 1] images) of the trained
    generator (with the sketch and colour hints, and without), of the same generator at its initialisation,
    of copying the colour hint into the hole and of mean-colour filling, printed with the run's wall time and
    written to ``report.json`` in the run folder (and to the loggers under ``report/``)."""

    def __init__(self) -> None:
        self.initial: nn.Module | None = None
        self.start = 0.0
        self.results: dict[str, float] = {}

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # setup runs before a checkpoint is restored: these are the initial (random) weights
        if stage == "fit" and self.initial is None:
            self.initial = copy.deepcopy(pl_module.generator).cpu()

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.start = time.perf_counter()

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        out = run_dir(trainer) / "report.json"
        if not trainer.is_global_zero or self.initial is None:
            return
        wall = time.perf_counter() - self.start
        device = pl_module.device
        loader = trainer.datamodule.val_dataloader()
        trained, initial = pl_module.generator, self.initial.to(device)
        modes = trained.training
        trained.eval()
        initial.eval()
        rows = {
            "trained": generator_fill(trained),
            "trained_without_hints": generator_fill(trained, hints=False),
            "untrained": generator_fill(initial),
            "colour_fill": colour_fill,
            "mean_fill": mean_fill,
        }
        self.results = {f"{k}/masked_l1": held_out_masked_l1(fill, loader, device) for k, fill in rows.items()}
        trained.train(modes)
        self.results.update(fit_wall_s=wall, batches=float(trainer.fit_loop.epoch_loop.batch_progress.total.ready),
                            held_out_images=float(len(loader.dataset)))
        r = self.results
        labels = {"trained": "trained generator", "trained_without_hints": "  the same, no sketch or colour",
                  "untrained": "untrained generator", "colour_fill": "colour-map fill (the hint copied)",
                  "mean_fill": "mean-colour fill"}
        lines = ["", f"SC-FEGAN on {int(r['held_out_images'])} held-out faces: masked L1 (mean |error| over erased "
                 f"pixels, images in [-1, 1]) after {int(r['batches'])} batches, fit wall time {wall:.0f} s"]
        lines += [f"  {labels[k]:36s}{r[f'{k}/masked_l1']:.4f}" for k in rows]
        print("\n".join([*lines, ""]), flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.results, indent=2))
        for logger in trainer.loggers:
            logger.log_metrics({f"report/{k}": v for k, v in self.results.items()}, step=trainer.global_step)
