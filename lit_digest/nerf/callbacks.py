"""NeRF callbacks: panels of a held-out view (a PNG in the run folder, and W&B), and the writer of ``predict``
(PNG frames per style, a GIF or MP4, 16-bit depth PNGs)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

from lit_digest.core.callbacks import run_dir
from lit_digest.core.lightning import LightningModule, Trainer, pl
from lit_digest.core.outputs import announce
from lit_digest.core.panels import PanelsCallback
from lit_digest.nerf.images import write_depth_png16, write_gif, write_png

__all__ = ["NeRFPanels", "RenderWriter", "panel_grid"]


def _tile(x: torch.Tensor, size: tuple[int, int], lo: float, hi: float) -> torch.Tensor:
    x = x.detach().float().cpu()
    if x.ndim == 2:  # depth or opacity: near / dense is bright, nothing (inf) is black
        x = torch.where(torch.isfinite(x), 1 - (x - lo) / max(hi - lo, 1e-8), torch.zeros_like(x)) if hi > lo else x
        x = x[None].expand(3, -1, -1)
    return F.interpolate(x[None].clamp(0, 1), size=size, mode="nearest")[0]


def panel_grid(panels: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[str]]:
    """One row ``(3, H, n W)`` of the images ``(3, H, W)`` and maps ``(H, W)`` of ``panels``, in order; depth
    maps share the range of the finite true depth (or of the rendered depth), near bright."""
    size = next(iter(panels.values())).shape[-2:]
    depths = [v for k, v in panels.items() if "depth" in k]
    finite = torch.cat([d[torch.isfinite(d)].flatten().float().cpu() for d in depths]) if depths else torch.zeros(0)
    lo, hi = (float(finite.min()), float(finite.max())) if finite.numel() else (0.0, 1.0)
    tiles = [_tile(v, size, lo, hi) if "depth" in k else _tile(v, size, 1.0, 0.0) for k, v in panels.items()]
    return torchvision.utils.make_grid(torch.stack(tiles), nrow=len(tiles), padding=2), list(panels)


class NeRFPanels(PanelsCallback):
    """Saves ``panels/<stage>_step<N>.png`` in the run folder (held-out view | rendering | depth | opacity | true
    depth; for ``StyleNeRF``: view | stage-1 rendering | each style and its stylised rendering) at each
    validation and test, and logs it to W&B (``val/panels``, ``test/panels``)."""

    def grid(self, panels: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[str]]:
        return panel_grid(panels)

    def path(self, trainer: Trainer, stage: str) -> Path:
        return run_dir(trainer) / "panels" / f"{stage}_step{trainer.global_step}.png"


class RenderWriter(pl.callbacks.BasePredictionWriter):
    """Writes what ``predict`` renders into ``<run folder>/render/``: ``<style>/<frame>.png`` for the scene's own
    colours and each style, ``depth/<frame>.png`` (16-bit, ``depth = png / 65535 x max_depth``, ``max_depth``
    in ``depth/scale.json``), and one animation (``render.gif``, or ``.mp4`` with ``fmt: mp4``) whose frames
    show the styles side by side; then announces the animation.

    Args:
        fmt: ``"gif"`` or ``"mp4"`` (needs ``imageio-ffmpeg``).
        fps: frames per second of the animation.
        output_dir: where to write; None: ``<run folder>/render``.
    """

    def __init__(self, fmt: str = "gif", fps: float = 10.0, output_dir: str | None = None) -> None:
        super().__init__(write_interval="batch")
        if fmt not in ("gif", "mp4"):
            raise ValueError(f"RenderWriter fmt must be 'gif' or 'mp4', got {fmt!r}")
        self.fmt, self.fps, self.output_dir = fmt, fps, output_dir
        self.frames: list[tuple[int, torch.Tensor, torch.Tensor, list[str]]] = []

    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.frames = []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx=0) -> None:
        self.frames.append((prediction["index"], prediction["rgb"].cpu(), prediction["depth"].cpu(),
                            list(prediction["style_names"])))

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.frames or not trainer.is_global_zero:
            return
        root = Path(self.output_dir) if self.output_dir else run_dir(trainer) / "render"
        self.frames.sort(key=lambda f: f[0])
        depths = torch.stack([f[2] for f in self.frames])
        finite = depths[torch.isfinite(depths)]
        max_depth = float(finite.max()) if finite.numel() else 1.0
        strips = []
        for index, rgb, depth, names in self.frames:
            for name, image in zip(names, rgb):
                write_png(root / name / f"{index:04d}.png", image)
            write_depth_png16(root / "depth" / f"{index:04d}.png", depth, max_depth)
            strips.append(torch.cat(list(rgb), -1))  # the styles side by side
        (root / "depth" / "scale.json").write_text(json.dumps({"max_depth": max_depth}))
        animation = write_gif(root / f"render.{self.fmt}", strips, self.fps)
        announce(animation, len(strips), "frames")
