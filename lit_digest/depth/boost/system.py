"""``DepthMerge``: the merge network of Miangoleh et al. (arXiv 2105.14021) trained around a frozen depth
estimator, and the whole boosting pipeline at validation, test and predict time."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from lit_digest.core.checkpoints import load_encoder_weights
from lit_digest.core.lightning import LightningModule, modules_in_hparams
from lit_digest.core.optim import Optim, lr_factor, make_optimizer, steps_per_epoch
from lit_digest.depth.boost.guided import merge_training_pair, normalize01, official_radius
from lit_digest.depth.boost.losses import discriminator_loss, generator_loss
from lit_digest.depth.boost.nets import MergeUNet, PatchDiscriminator
from lit_digest.depth.boost.pipeline import BoostSettings, boost, estimate, merge_estimates, resize, resolution_search
from lit_digest.depth.metrics import depth_metrics, sample_means
from lit_digest.depth.nets import SmallDepthNet

__all__ = ["DepthMerge", "estimator_receptive_field", "linear_decay"]


def estimator_receptive_field(estimator: nn.Module, multiple_of: int) -> int:
    """The estimator's theoretical receptive field (``lit_digest.tools.shapes``), rounded up to ``multiple_of``."""
    from lit_digest.tools.shapes import ShapeError, receptive_field

    try:
        field = receptive_field(estimator, (3, 512, 512))
    except ShapeError as err:
        raise ValueError(f"cannot compute the receptive field of {type(estimator).__name__} ({err}): set "
                         "model.init_args.receptive_field (MiDaS v2: 384, its training size)") from err
    if field.is_global:
        raise ValueError(f"{type(estimator).__name__} sees the whole image (a global layer): set "
                         "model.init_args.receptive_field to its training resolution")
    return int(math.ceil(max(field.size) / multiple_of) * multiple_of)


def linear_decay(step: int, total: float, fraction: float) -> float:
    """pix2pix's ``lr_policy='linear'`` per step: constant, then linear to zero over the last ``fraction`` of the
    run (``n_epochs = n_epochs_decay = 100``: the second half)."""
    if fraction <= 0 or math.isinf(total):
        return 1.0
    start = (1.0 - fraction) * total
    return 1.0 - max(0.0, step - start) / (fraction * total + 1)


class DepthMerge(LightningModule):
    """pix2pix merge network (``MergeUNet`` + ``PatchDiscriminator``) trained on crops of RGB-D batches, the frozen
    ``estimator`` making its inputs on the fly (``lit_digest.depth.boost.guided``).

    Per training crop (a random square, ``crop_min`` to 1 of the shorter side): ``outer`` = the crop of the
    whole image's estimate at the receptive-field size, ``inner`` = the crop's own estimate at
    ``high_factor x RF`` (672 / 384 px for MiDaS in the official data), the reference = the crop of the whole
    image's estimate at that same higher resolution (``reference='estimate'``, the paper: no ground truth
    needed) or the exact depth (``'depth'``); all resized to ``merge_size``, then the guided-filter
    construction. One step: D on ``(x, G(x))`` detached and ``(x, y)``, then G with ``GAN + 1000 L1``; Adam
    (0.5, 0.999) at 1e-4 (G) and 2e-6 (D), constant then linear to zero over the last half
    (``pix2pix4depth_model.py``, ``train_options.py``).

    Validation and test, per image: the estimate at the receptive field ("low"), at ``R_x`` ("high") and
    their merge ("merged"; with ``patches_in_test`` the test adds the whole method, "boosted"), with
    RMSE, AbsRel and depth-edge F1 (``val/rmse_low`` ...). ``predict`` runs the whole method.

    The defaults are the sizes of the measured experiment (``python -m lit_digest.depth.experiment``: around
    ``SmallDepthNet()``, a 48-px receptive field, merge input 128 px, 7 down-samplings, 16 filters, R_max 384,
    sides multiple of 4; ``configs/depth/boost/procedural.yaml`` has 64 filters), which train in seconds
    on a CPU; the paper's (around MiDaS: RF 384, merge input 1024 px, 10 down-samplings, R_max 3000, multiples of
    32) are in ``configs/depth/boost/{ibims1,middlebury2014}.yaml``.

    Args:
        estimator: any depth network ``(B, 3, H, W)`` in [0, 1] -> ``(B, 1, H, W)``, frozen; None:
            ``SmallDepthNet()`` (train it with ``DepthEstimation`` and pass its ``estimator_checkpoint``).
        estimator_checkpoint: its weights (a lit_digest ``.ckpt`` or a state_dict), under ``estimator_prefix``.
        estimator_output: ``depth`` or ``disparity`` (MiDaS): how its output relates to depth.
        receptive_field: ``RF`` in px; ``None`` computes it from the estimator (``lit_digest.tools.shapes``).
        merge_size, num_downs, ngf, ndf, d_layers: network sizes (paper: 1024, 10, 64, 64, 3; defaults 128, 7, 16,
            16, 3).
        lambda_l1, guided_radius (``None``: 64 px scaled from 672 px), guided_eps: the objective and targets.
        context_threshold, max_size, max_upscale, multiple_of: ``BoostSettings`` (x of R_x, R_max, ...).
        optim_g, optim_d, decay_fraction: the two optimisers and pix2pix's linear decay.
    """

    def __init__(
        self,
        estimator: nn.Module | None = None,
        estimator_checkpoint: str | None = None,
        estimator_prefix: str = "net.",
        estimator_output: Literal["depth", "disparity"] = "depth",
        receptive_field: int | None = None,
        merge_size: int = 128,
        num_downs: int = 7,
        ngf: int = 16,
        ndf: int = 16,
        d_layers: int = 3,
        lambda_l1: float = 1000.0,
        reference: Literal["estimate", "depth"] = "estimate",
        high_factor: float = 1.75,
        crop_min: float = 0.5,
        guided_radius: int | None = None,
        guided_eps: float = 1e-8,
        context_threshold: float = 0.2,
        max_size: int = 384,
        max_upscale: float = 3.0,
        multiple_of: int = 4,
        patches_in_test: bool = True,
        optim_g: Optim = Optim(name="adam", lr=1e-4, betas=(0.5, 0.999), schedule="constant"),
        optim_d: Optim = Optim(name="adam", lr=2e-6, betas=(0.5, 0.999), schedule="constant"),
        decay_fraction: float = 0.5,
    ) -> None:
        super().__init__()
        if merge_size % 2**num_downs:
            raise ValueError(f"merge_size {merge_size} must be a multiple of 2 ** num_downs = {2 ** num_downs}")
        if not 0 < crop_min <= 1:
            raise ValueError(f"crop_min must be in (0, 1], got {crop_min}")
        with modules_in_hparams():
            self.save_hyperparameters()
        self.optim_g, self.optim_d = optim_g, optim_d
        self.automatic_optimization = False
        estimator = SmallDepthNet() if estimator is None else estimator
        self.estimator = estimator.requires_grad_(False)  # frozen; ``estimate`` runs it in inference mode
        self.generator = MergeUNet(2, 1, num_downs, ngf)
        self.discriminator = PatchDiscriminator(3, ndf, d_layers)
        rf = receptive_field or estimator_receptive_field(estimator, multiple_of)
        self.settings = BoostSettings(rf, merge_size, context_threshold, max_size, max_upscale,
                                      multiple_of=multiple_of)
        self._estimator_loaded = estimator_checkpoint is None
        names = [f"{k}_{name}" for name in ("low", "high", "merged", "boosted") for k in ("rmse", "absrel", "f1")]
        self.metrics = nn.ModuleDict({stage: sample_means([*names, "resolution"], f"{stage}/")
                                      for stage in ("val", "test")})

    def setup(self, stage: str) -> None:
        path = self.hparams.estimator_checkpoint
        if self._estimator_loaded:
            return
        if Path(path).is_file() or stage == "fit":
            load_encoder_weights(self.estimator, path, prefix=self.hparams.estimator_prefix)
        else:
            warnings.warn(f"estimator_checkpoint {path} not found: the estimator keeps the weights of the "
                          "checkpoint being loaded", stacklevel=2)
        self._estimator_loaded = True

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """Merged estimate (B, 1, s, s) in [0, 1] of a low- and a high-resolution estimate (B, 1, s, s)."""
        return merge_estimates(self.generator, low, high)

    # -- training -------------------------------------------------------------------------------------
    def _depth_space(self, depth: torch.Tensor) -> torch.Tensor:
        if self.hparams.estimator_output == "depth":
            return depth
        return torch.where(depth > 0, 1.0 / depth.clamp_min(1e-6), torch.zeros_like(depth))

    @torch.no_grad()
    def training_pairs(self, image: torch.Tensor, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Generator input (B, 2, s, s) and target (B, 1, s, s) in [-1, 1] for a batch of whole images."""
        hp, rf, s = self.hparams, self.settings.receptive_field, self.settings.merge_size
        high = int(round(hp.high_factor * rf))
        outer_whole = estimate(self.estimator, image, rf, hp.multiple_of)  # (B, 1, H, W)
        if hp.reference == "estimate":
            reference_whole = estimate(self.estimator, image, high, hp.multiple_of)
        else:
            reference_whole = self._depth_space(depth)
        h, w = image.shape[-2:]
        inputs, targets = [], []
        for b in range(image.shape[0]):
            side = int(min(h, w) * (hp.crop_min + (1 - hp.crop_min) * float(torch.rand(()))))
            y0, x0 = (int(torch.randint(0, n - side + 1, ())) for n in (h, w))
            window = (..., slice(y0, y0 + side), slice(x0, x0 + side))
            inner = estimate(self.estimator, image[b: b + 1][window], high, hp.multiple_of)
            outer, reference = outer_whole[b: b + 1][window], reference_whole[b: b + 1][window]
            maps = [resize(m, (s, s)) for m in (outer, inner, reference)]
            x, y = merge_training_pair(*maps, hp.guided_radius or official_radius(s), hp.guided_eps)
            inputs.append(x)
            targets.append(y)
        return torch.cat(inputs), torch.cat(targets)

    def training_step(self, batch, batch_idx: int) -> None:
        x, y = self.training_pairs(*batch)
        opt_g, opt_d = self.optimizers()
        fake = self.generator(x)  # (B, 1, s, s)

        self.toggle_optimizer(opt_d)
        loss_d = discriminator_loss(self.discriminator(torch.cat([x, y], 1)),
                                    self.discriminator(torch.cat([x, fake.detach()], 1)))
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        self.toggle_optimizer(opt_g)
        loss_gan, loss_l1 = generator_loss(self.discriminator(torch.cat([x, fake], 1)), fake, y, self.hparams.lambda_l1)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_gan + loss_l1)
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        for scheduler in self.lr_schedulers():
            scheduler.step()
        self.log_dict({"train/loss_d": loss_d, "train/loss_g_gan": loss_gan, "train/loss_g_l1": loss_l1,
                       "train/loss_g": loss_gan + loss_l1}, batch_size=x.shape[0])

    # -- evaluation -----------------------------------------------------------------------------------
    @torch.no_grad()
    def estimates(self, image: torch.Tensor, with_boost: bool = False) -> dict[str, torch.Tensor | int]:
        """For one image (1, 3, H, W): ``low``, ``high`` (at ``R_x``), ``merged`` (and ``boosted``), each
        (1, 1, H, W) in [0, 1], and ``resolution`` (``R_x``)."""
        h, w = image.shape[-2:]
        rf, size = self.settings.receptive_field, (self.settings.merge_size,) * 2
        r_x, _ = resolution_search(image, self.settings)
        low = estimate(self.estimator, image, rf, self.settings.multiple_of)
        high = estimate(self.estimator, image, r_x, self.settings.multiple_of)
        merged = normalize01(resize(merge_estimates(self.generator, resize(low, size), resize(high, size)), (h, w)))
        out = {"low": low, "high": high, "merged": merged, "resolution": r_x}
        if with_boost:
            out["boosted"] = boost(self.estimator, self.generator, image, self.settings)["depth"]
        return out

    def _evaluate(self, batch, prefix: str, with_boost: bool) -> dict:
        image, depth = batch
        panels = {}
        means = self.metrics[prefix]
        for b in range(image.shape[0]):
            out = self.estimates(image[b: b + 1], with_boost)
            target = self._depth_space(depth[b: b + 1])
            valid = torch.isfinite(target) & (target > 0)
            for name in ("low", "high", "merged", "boosted"):
                if name in out:
                    metrics = depth_metrics(out[name], target, mask=valid)
                    for k in ("rmse", "absrel", "f1"):
                        means[f"{k}_{name}"].update(metrics[k])
            means["resolution"].update(float(out["resolution"]))
            if b == 0:
                panels = {"image": image[:1], "depth": target, **{k: v for k, v in out.items() if k != "resolution"}}
        # only what was updated: "boosted" exists in the test with patches_in_test alone
        self.log_dict({key: metric for key, metric in means.items() if metric.update_count})
        return {"panels": panels}

    def validation_step(self, batch, batch_idx: int) -> dict:
        return self._evaluate(batch, "val", with_boost=False)

    def test_step(self, batch, batch_idx: int) -> dict:
        return self._evaluate(batch, "test", with_boost=self.hparams.patches_in_test)

    def predict_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> dict:
        image, names = batch
        result = boost(self.estimator, self.generator, image, self.settings)
        return {"depth": result["depth"], "name": list(names), "resolution": result["resolution"]}

    def configure_optimizers(self):
        """Adam for G and for D (``make_optimizer``), each scheduled per training batch by ``lr_factor`` times
        pix2pix's linear decay. Lightning counts both optimisers' steps in ``max_steps`` (two per batch)."""
        trainer = self.trainer
        _ = trainer.estimated_stepping_batches  # loads the training data, so that its length is known
        epoch_steps = steps_per_epoch(trainer)
        by_epochs = math.inf
        if epoch_steps and trainer.max_epochs not in (None, -1):
            by_epochs = epoch_steps * trainer.max_epochs
        total = min(by_epochs, trainer.max_steps / 2 if trainer.max_steps not in (None, -1) else math.inf)
        optimizers, schedulers = [], []
        fraction = self.hparams.decay_fraction
        for optim, module in ((self.optim_g, self.generator), (self.optim_d, self.discriminator)):
            opt = make_optimizer(optim, [{"params": list(module.parameters())}])

            def factor(step: int, o: Optim = optim) -> float:
                return lr_factor(step, o, o.lr, total, epoch_steps) * linear_decay(step, total, fraction)

            optimizers.append(opt)
            schedulers.append({"scheduler": LambdaLR(opt, factor), "interval": "step"})
        return optimizers, schedulers
