"""Depth callbacks: panels of the estimates side by side (a PNG in the run folder, and W&B), 16-bit PNG output.

``DepthPanels`` reads the ``panels`` dict that ``DepthMerge.validation_step`` / ``test_step`` return for
the first image of the first batch: ``image``, ``depth`` and the estimates (``low``, ``high``,
``merged``, ``boosted``), each (1, C, H, W).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision

from lit_digest.core.callbacks import run_dir
from lit_digest.core.lightning import LightningModule, Trainer, pl
from lit_digest.core.outputs import announce
from lit_digest.core.panels import PanelsCallback
from lit_digest.depth.boost.guided import normalize01
from lit_digest.depth.io import write_depth_png16

__all__ = ["DepthPanels", "DepthPNGWriter", "panel_grid"]

_ORDER = ("image", "depth", "low", "high", "merged", "boosted")


def panel_grid(panels: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[str]]:
    """One row (3, H, 6W) of the RGB image and the depth maps (near bright), and the names in order."""
    names = [n for n in _ORDER if n in panels]
    tiles = []
    for name in names:
        x = panels[name].detach().float().cpu()[:1]
        if name != "image":
            x = (1 - normalize01(x)).repeat(1, 3, 1, 1)  # depth: near is bright
        tiles.append(x)
    size = tiles[0].shape[-2:]
    tiles = [torch.nn.functional.interpolate(t, size=size, mode="bilinear", align_corners=False) for t in tiles]
    return torchvision.utils.make_grid(torch.cat(tiles).clamp(0, 1), nrow=len(tiles), padding=2), names


class DepthPanels(PanelsCallback):
    """Saves ``depth_panels/<stage>_epoch<e>.png`` in the run folder (image | true depth | low | high | merged
    [| boosted]) at each validation and test, and logs it to W&B (``val/panels``, ``test/panels``)."""

    def grid(self, panels: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[str]]:
        return panel_grid(panels)

    def path(self, trainer: Trainer, stage: str) -> Path:
        return run_dir(trainer) / "depth_panels" / f"{stage}_epoch{trainer.current_epoch}.png"


class DepthPNGWriter(pl.callbacks.BasePredictionWriter):
    """Writes every predicted ``depth`` as ``<output_dir>/<name>.png``, 16-bit, min-max normalised (the official
    ``write_depth(bits=2)``: the estimator's convention, e.g. near = 0 for depth, near = 65535 for disparity), and
    says where when ``predict`` ends (``lit_digest: wrote 64 depth maps to runs/.../depth``).

    Args:
        output_dir: where the PNGs go; ``None``: ``<run folder>/depth``.
    """

    def __init__(self, output_dir: str | None = None) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = output_dir
        self.root: Path | None = None
        self.count = 0

    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.root = Path(self.output_dir) if self.output_dir else run_dir(trainer) / "depth"
        self.count = 0

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx=0) -> None:
        for depth, name in zip(prediction["depth"], prediction["name"]):
            write_depth_png16(self.root / name, depth)
            self.count += 1

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.count and trainer.is_global_zero:
            announce(self.root, self.count, "depth maps")
