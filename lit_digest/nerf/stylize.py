"""``StyleNeRF``: stage 2 of Chiang et al. (arXiv 2105.13016 section 3.2): the stage-1 field's density is kept
frozen, and its colour layers are replaced by those a hypernetwork predicts from a style image's features,
trained on patches of rays with content and style losses so that one model renders the scene in any style.

Official code (ztex08010518/Stylizing-3D-Scene, ``ddp_train_nerf.py`` and ``configs/train_family_second.txt``):
every stage-1 parameter it loads is frozen; Adam at 1e-3 (no decay within the run); one style image and one
67 x 81 sub-sampled patch per step; ``L = L_content + 15 L_style + ||C - C_gt||^2``, the style term only from
step 2000 on. The coarse network's colours play no part in the stylised rendering, so here only the fine
networks' colour layers are predicted (the official code also trains a hypernetwork per cascade level).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from lit_digest.core.checkpoints import CheckpointMismatchError, expect_checkpoint, load_encoder_weights
from lit_digest.core.lightning import LightningModule, modules_in_hparams, pl
from lit_digest.core.optim import Optim, configure_optim
from lit_digest.nerf.features import load_style_features
from lit_digest.nerf.field import LayerParams, RadianceField
from lit_digest.nerf.hyper import StyleHyperNetwork, feature_statistics
from lit_digest.nerf.losses import content_loss, psnr, style_loss
from lit_digest.nerf.system import NeRF, check_unbounded, image_of, render_rays

__all__ = ["StyleNeRF"]


class StyleNeRF(LightningModule):
    """Stage 2: a radiance field whose colour comes from a style image.

    Validation renders the held-out views in each evaluation style (the DataModule's ``eval_styles``) and logs
    the content and style losses (``val/style_loss`` ...), the PSNR of the stage-1 colours, and the largest
    depth change between the stylised and the stage-1 rendering (``val/depth_change``: 0 when the geometry is
    untouched). ``predict`` renders every view in every evaluation style.

    Args:
        field: the same ``RadianceField`` sizes as the stage-1 ``NeRF``; its weights come from ``nerf_checkpoint``.
        nerf_checkpoint: the stage-1 ``NeRF`` checkpoint (read when a fit starts, not when one resumes). None: an
            untrained geometry, for a smoke run only.
        features: ``"trained"`` (``StyleFeatureNet``, shipped weights, offline) or ``"vgg16"`` (torchvision's
            ImageNet VGG-16 at relu1_1 ... relu4_1; the paper used VGG-19).
        feature_weights: the feature network's file (default: the shipped one / torchvision's cache).
        download_vgg: download VGG-16's weights (528 MB) when absent.
        latent_dim, encoder_width, hyper_hidden, hyper_layers: the hypernetwork (official: 512, 1024, 64, 1).
        content_weight, style_weight, rgb_weight: the loss weights (official: 1, 15, 1).
        style_start_step: steps on the content and colour terms alone before the style term joins (official 2000).
        chunk: rays rendered at once at evaluation.
        optim: Adam 1e-3, constant (official ``lrate = 0.001``, decay 0.1 per 50 M steps).
    """

    def __init__(self, field: RadianceField | None = None, nerf_checkpoint: str | None = None,
                 features: Literal["trained", "vgg16"] = "trained", feature_weights: str | None = None,
                 download_vgg: bool = False, latent_dim: int = 64, encoder_width: int = 128, hyper_hidden: int = 64,
                 hyper_layers: int = 1, content_weight: float = 1.0, style_weight: float = 15.0,
                 rgb_weight: float = 1.0, style_start_step: int = 2000, chunk: int = 4096,
                 optim: Optim = Optim(name="adam", lr=1e-3, schedule="constant")) -> None:
        super().__init__()
        if min(content_weight, style_weight, rgb_weight) < 0 or style_start_step < 0:
            raise ValueError("StyleNeRF loss weights and style_start_step must be >= 0")
        with modules_in_hparams():
            self.save_hyperparameters()
        self.optim = optim
        self.field = field if field is not None else RadianceField()
        self.field.requires_grad_(False)
        # frozen and kept out of the state_dict: a checkpoint stays small and names its feature network instead
        self.__dict__["features"] = load_style_features(features, feature_weights, download_vgg)
        branches = {"fg": self.field.fine.color_shapes()}
        if self.field.unbounded:
            branches["bg"] = self.field.bg_fine.color_shapes()
        self.hyper = StyleHyperNetwork(2 * self.features.channels[-1], branches, latent_dim, encoder_width,
                                       hyper_hidden, hyper_layers)

    def setup(self, stage: str) -> None:
        if stage != "fit" or self.trainer.ckpt_path is not None:
            return
        path = self.hparams.nerf_checkpoint
        if path is None:
            pl.utilities.rank_zero_warn("StyleNeRF without nerf_checkpoint: the geometry is untrained (a smoke run). "
                                        "Fit a NeRF first and pass its checkpoint as model.init_args.nerf_checkpoint.")
            return
        expect_checkpoint(path, NeRF)
        try:
            load_encoder_weights(self.field, path, prefix="field.")
        except CheckpointMismatchError as err:
            raise ValueError(f"The stage-1 checkpoint '{path}' holds another field than this StyleNeRF's: give "
                             f"model.init_args.field the sizes of the NeRF that wrote it ({err})") from err

    def style_params(self, style: torch.Tensor) -> dict[str, LayerParams]:
        """The colour layers for one style image ``(3, S, S)`` in [0, 1]."""
        features = self._features(style[None])
        return self.hyper(feature_statistics(features[-1])[0])

    def forward(self, batch: dict, style: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Render the rays of ``batch`` in ``style`` ``(3, S, S)`` (None: the stage-1 colours)."""
        params = self.style_params(style) if style is not None else None
        return render_rays(self.field, batch, self.hparams.chunk, params)

    def _features(self, images: torch.Tensor) -> list[torch.Tensor]:
        self.features.to(images.device)
        return self.features(images)

    def losses(self, rendered: torch.Tensor, content: torch.Tensor, style: torch.Tensor) -> dict[str, torch.Tensor]:
        """Content, style and colour terms of renderings ``(B, 3, H, W)`` against the content images and one
        style image ``(1, 3, S, S)``."""
        out = self._features(rendered)
        with torch.no_grad():
            target, style_features = self._features(content), self._features(style)
        return {"content_loss": content_loss(out, target), "style_loss": style_loss(out, style_features),
                "rgb_loss": F.mse_loss(rendered, content)}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if "style" not in batch:
            raise ValueError("StyleNeRF trains on patches of rays with a style image: set data.init_args.batches "
                             "patches")
        check_unbounded(self.field, batch["rays_o"])
        side = int(round(batch["rgb"].shape[0] ** 0.5))
        params = self.style_params(batch["style"])
        out = self.field.render(batch["rays_o"], batch["rays_d"], batch["near"], batch["far"], perturb=True,
                                color_params=params, coarse_color=False)
        rendered = out["rgb"].view(1, side, side, 3).permute(0, 3, 1, 2)  # (1, 3, P, P)
        content = batch["rgb"].view(1, side, side, 3).permute(0, 3, 1, 2)
        terms = self.losses(rendered, content, batch["style"][None])
        hp = self.hparams
        style_on = float(self.global_step >= hp.style_start_step)
        loss = (hp.content_weight * terms["content_loss"] + style_on * hp.style_weight * terms["style_loss"]
                + hp.rgb_weight * terms["rgb_loss"])
        self.log_dict({"train/loss": loss, **{f"train/{k}": v for k, v in terms.items()}}, batch_size=1)
        return loss

    def _evaluate(self, batch: dict, batch_idx: int, prefix: str) -> dict:
        size = batch["size"]
        plain = self(batch)
        image = batch["image"].permute(2, 0, 1)[None]  # (1, 3, H, W)
        rendered = image_of(plain["rgb"], size).clamp(0, 1)[None]
        metrics = {"psnr": psnr(rendered, image)}
        panels = {"image": image[0], "render": rendered[0]}
        styles = batch.get("styles")
        for k in range(0 if styles is None else len(styles)):
            out = self(batch, styles[k])
            stylised = image_of(out["rgb"], size).clamp(0, 1)[None]
            for key, value in self.losses(stylised, rendered, styles[k][None]).items():
                metrics[key] = metrics.get(key, 0.0) + value / len(styles)
            change = (out["depth"] - plain["depth"]).abs().max()
            metrics["depth_change"] = torch.maximum(metrics.get("depth_change", change), change)
            panels[f"style {k}"], panels[f"stylised {k}"] = styles[k], stylised[0]
        self.log_dict({f"{prefix}/{k}": v for k, v in metrics.items()}, batch_size=1)
        return {"panels": panels} if batch_idx == 0 else {}

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        return self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: dict, batch_idx: int) -> dict:
        return self._evaluate(batch, batch_idx, "test")

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict:
        size, styles = batch["size"], batch.get("styles")
        plain = self(batch)
        frames, names = [image_of(plain["rgb"], size)], ["scene"]
        for k in range(0 if styles is None else len(styles)):
            frames.append(image_of(self(batch, styles[k])["rgb"], size))
            names.append(batch["style_names"][k])
        return {"rgb": torch.stack(frames).clamp(0, 1), "depth": image_of(plain["depth"], size),
                "index": int(batch["index"]), "style_names": names}

    def configure_optimizers(self):
        return configure_optim(self, [{"params": list(self.hyper.parameters())}], self.optim)
