"""``NeRF``: stage 1, a radiance field fitted to posed images (Mildenhall et al., arXiv 2003.08934), with
NeRF++'s parameterisation for unbounded scenes (Zhang et al., arXiv 2010.07492) as the stylisation paper
(arXiv 2105.13016 section 3.1) uses it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lit_digest.core.lightning import LightningModule, modules_in_hparams
from lit_digest.core.optim import Optim, configure_optim
from lit_digest.nerf.field import LayerParams, RadianceField
from lit_digest.nerf.losses import depth_errors, psnr

__all__ = ["NeRF", "render_rays", "image_of"]


def render_rays(field: RadianceField, batch: dict, chunk: int, color_params: dict[str, LayerParams] | None = None,
                viewdirs: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Deterministic rendering of every ray of ``batch`` in chunks of ``chunk`` rays (bmild/nerf ``batchify_rays``);
    ``viewdirs``: one direction ``(3,)`` for the colours of every ray (``RadianceField.render``)."""
    keys = ("rays_o", "rays_d", "near", "far")
    parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, batch["rays_o"].shape[0], chunk):
        out = field.render(*(batch[k][start:start + chunk] for k in keys), color_params=color_params,
                           viewdirs=viewdirs)
        for key, value in out.items():
            parts.setdefault(key, []).append(value)
    return {key: torch.cat(values) for key, values in parts.items()}


def image_of(values: torch.Tensor, size: torch.Tensor | tuple[int, int]) -> torch.Tensor:
    """Per-ray values ``(H W, C)`` or ``(H W,)`` of a whole view -> ``(C, H, W)`` or ``(H, W)``."""
    h, w = (int(s) for s in size)
    return values.view(h, w, -1).permute(2, 0, 1) if values.ndim == 2 else values.view(h, w)


class NeRF(LightningModule):
    """Stage 1: ``L = ||C_coarse - C||^2 + ||C_fine - C||^2`` on random rays (arXiv 2003.08934 eq. 6), stratified
    samples and the density noise ``noise_std`` during training, deterministic samples at evaluation.

    Validation and test render whole held-out views: ``val/psnr`` and, where the true depth is known, the depth
    error over the surface pixels (``val/depth_mae``, ``val/depth_absrel``); the first view's panels go to the
    ``NeRFPanels`` callback. ``predict`` returns each view's ``rgb`` and ``depth`` (``RenderWriter`` writes them).

    Args:
        field: the scene's networks and sampling (``RadianceField``: small defaults, the paper sizes there).
        noise_std: std of the noise added to the raw density while training (bmild/nerf ``raw_noise_std``: 1.0
            for LLFF, 0 for the synthetic scenes).
        chunk: rays rendered at once at evaluation (memory, not results).
        optim: Adam, 5e-4 decaying exponentially to 5e-5 over the run (arXiv 2003.08934 section 5.3).
    """

    def __init__(self, field: RadianceField | None = None, noise_std: float = 0.0, chunk: int = 4096,
                 optim: Optim = Optim(name="adam", lr=5e-4, schedule="exponential", final_lr_ratio=0.1)) -> None:
        super().__init__()
        if noise_std < 0 or chunk < 1:
            raise ValueError(f"NeRF needs noise_std >= 0 and chunk >= 1, got {noise_std} and {chunk}")
        with modules_in_hparams():
            self.save_hyperparameters()
        self.optim = optim
        self.field = field if field is not None else RadianceField()

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        """Render the rays of ``batch`` (``rays_o``, ``rays_d``, ``near``, ``far``), deterministically."""
        return render_rays(self.field, batch, self.hparams.chunk)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        check_unbounded(self.field, batch["rays_o"])
        out = self.field.render(batch["rays_o"], batch["rays_d"], batch["near"], batch["far"], perturb=True,
                                noise_std=self.hparams.noise_std)
        fine, coarse = F.mse_loss(out["rgb"], batch["rgb"]), F.mse_loss(out["rgb_coarse"], batch["rgb"])
        loss = fine + coarse
        self.log_dict({"train/loss": loss, "train/psnr": psnr(out["rgb"], batch["rgb"]),
                       "train/psnr_coarse": psnr(out["rgb_coarse"], batch["rgb"])}, batch_size=batch["rgb"].shape[0])
        return loss

    def _evaluate(self, batch: dict, batch_idx: int, prefix: str) -> dict:
        out = self(batch)
        image = batch["image"]  # (H, W, 3)
        rgb = out["rgb"].view_as(image).clamp(0, 1)
        metrics = {"psnr": psnr(rgb, image)}
        depth = image_of(out["depth"], batch["size"])
        if "true_depth" in batch:
            metrics.update(depth_errors(depth, batch["true_depth"]))
        self.log_dict({f"{prefix}/{k}": v for k, v in metrics.items()}, batch_size=1)
        if batch_idx != 0:
            return {}
        panels = {"image": image.permute(2, 0, 1), "render": rgb.permute(2, 0, 1), "depth": depth,
                  "opacity": image_of(out["opacity"], batch["size"])}
        if "true_depth" in batch:
            panels["true depth"] = batch["true_depth"]
        return {"panels": panels}

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        return self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: dict, batch_idx: int) -> dict:
        return self._evaluate(batch, batch_idx, "test")

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        out = self(batch)
        return {"rgb": image_of(out["rgb"], batch["size"]).clamp(0, 1)[None], "depth": image_of(out["depth"],
                batch["size"]), "index": int(batch["index"]), "style_names": ["scene"]}

    def configure_optimizers(self):
        return configure_optim(self, [{"params": list(self.field.parameters())}], self.optim)


def check_unbounded(field: RadianceField, rays_o: torch.Tensor) -> None:
    """NeRF++ models the inside of the unit sphere as the foreground: every camera must be in it."""
    if field.unbounded:
        farthest = float(rays_o.norm(dim=-1).max())
        if farthest >= 1.0:
            raise ValueError(f"RadianceField(unbounded=True) needs every camera inside the unit sphere (NeRF++), "
                             f"but one is at distance {farthest:.3g} from the origin: normalise the poses into it, or "
                             "set model.init_args.field.init_args.unbounded false for a bounded scene")
