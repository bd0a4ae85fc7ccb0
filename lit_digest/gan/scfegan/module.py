"""SC-FEGAN: face editing from the user's mask, sketch and colour (Jo & Park, arXiv 1902.06838).

The generator (a U-net of gated convolutions) fills the erased region of a face from the sketch and
colour strokes drawn in it; an SN-PatchGAN critic judges the completed image with the mask, sketch and
colour. Training follows section 3.3 of the paper:

    L_G = L_per-pixel + sigma L_percept + beta L_G_SN + gamma (L_style(I_gen) + L_style(I_comp)) + upsilon L_tv
    L_D = E[1 - D(I_gt)] + E[1 + D(I_comp)] + theta L_GP + epsilon E[D(I_gt)^2]

with sigma = 0.05, beta = 0.001, gamma = 120, upsilon = 0.1, theta = 10 and the per-pixel loss weighting
the hole by 1.5; ``I_comp = I_gen * M + I_gt * (1 - M)``. docs/gan.md discusses each choice.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lit_digest.core.lightning import LightningModule, modules_in_hparams
from lit_digest.core.optim import Optim
from lit_digest.core.vgg import VGG16Features, load_vgg16_features
from lit_digest.gan.losses import (
    generator_adversarial_loss,
    gradient_penalty,
    masked_l1,
    per_pixel_loss,
    perceptual_loss,
    real_score_penalty,
    scfegan_d_loss,
    style_loss,
    total_variation_loss,
)
from lit_digest.gan.optim import player_optimizers
from lit_digest.gan.patchgan import SNPatchGAN
from lit_digest.gan.scfegan.generator import SCFEGANGenerator, compose, scfegan_input

__all__ = ["SCFEGAN"]

ADAM = Optim(name="adam", lr=1e-4, betas=(0.5, 0.999), schedule="constant")


class SCFEGAN(LightningModule):
    """The SC-FEGAN system: generator, SN-PatchGAN critic, their losses and two Adam optimisers, trained with
    Lightning's manual optimisation (one critic step, then one generator step, per batch).

    Batches are dicts ``image, mask, sketch, colour, noise`` (``lit_digest.gan.FaceFolderDataModule``).
    ``forward`` completes images; ``self.generator`` is the network to keep.

    ``predict`` returns ``{"images": edited faces in [0, 1]}``, which ``lit_digest.core.images.ImageWriter``
    writes as PNG files (``configs/scfegan/*.yaml``: ``<run folder>/edited/<index>.png``).

    The defaults train on a CPU in seconds (``SCFEGAN()`` with ``SyntheticFaceDataModule()``): the 5-level
    generator and critic of ``configs/scfegan/att_faces.yaml`` (64 px and up, any multiple of 32), no VGG terms.
    The paper's 512-px networks and its perceptual and style terms are in ``configs/scfegan/celeba_hq.yaml``:
    ``SCFEGANGenerator()``, ``SNPatchGAN(in_channels=8, widths=(64, 128, 256, 256, 256, 256), kernel_size=3)``,
    ``perceptual_style=True``.

    Args:
        generator: default ``SCFEGANGenerator(widths=(32, 64, 128, 128, 128), kernels=(7, 5, 5, 3, 3),
            dilations=(2, 4))`` (the paper's has 7 levels of 64 to 512 channels: ``SCFEGANGenerator()``).
        discriminator: default ``SNPatchGAN(in_channels=8, widths=(32, 64, 128, 128, 128), kernel_size=3)``
            (SN-PatchGAN with SC-FEGAN's 3x3 kernels, on image + mask + sketch + colour).
        hole_weight, known_weight: per-pixel L1 inside and outside the mask. The paper's eq. 1 writes its factor
            ``alpha = 1.5`` on the ``(1 - M)`` term while its text gives it "more weight to the loss on the
            erased part"; we weight the erased part, as the text and PConv (hole 6, valid 1) do.
        perceptual_weight: sigma, on ``L_percept`` of ``I_gen`` and of ``I_comp`` (0.05).
        style_weight: gamma, on ``L_style(I_gen) + L_style(I_comp)`` (120).
        adversarial_weight: beta, on ``-E[D(I_comp)]`` (0.001).
        tv_weight: upsilon, on the total variation of ``I_comp`` (0.1).
        gp_weight: theta, on the gradient penalty restricted to the mask (10).
        real_score_weight: epsilon, on ``E[D(I_gt)^2]`` in the critic's loss (0.001).
        perceptual_style: compute the perceptual and style terms (VGG-16 pool1-3, ImageNet weights, a 528 MB
            download: off by default so that the defaults train offline; the paper has them).
        vgg_weights: the VGG-16 weights file; None: torchvision's cache (``$TORCH_HOME/hub/checkpoints``).
        download_vgg: download the weights when the file is absent.
        optim_g, optim_d: Adam, lr 1e-4, betas (0.5, 0.999), constant: DeepFill v2's official training
            (JiahuiYu/generative_inpainting ``train.py``), whose SN-PatchGAN setup SC-FEGAN follows.
    """

    def __init__(
        self,
        generator: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        hole_weight: float = 1.5,
        known_weight: float = 1.0,
        perceptual_weight: float = 0.05,
        style_weight: float = 120.0,
        adversarial_weight: float = 0.001,
        tv_weight: float = 0.1,
        gp_weight: float = 10.0,
        real_score_weight: float = 0.001,
        perceptual_style: bool = False,
        vgg_weights: str | None = None,
        download_vgg: bool = False,
        optim_g: Optim = ADAM,
        optim_d: Optim = ADAM,
    ) -> None:
        super().__init__()
        weights = dict(hole_weight=hole_weight, known_weight=known_weight, perceptual_weight=perceptual_weight,
                       style_weight=style_weight, adversarial_weight=adversarial_weight, tv_weight=tv_weight,
                       gp_weight=gp_weight, real_score_weight=real_score_weight)
        negative = [k for k, v in weights.items() if v < 0]
        if negative:
            shown = ", ".join(f"{k}={weights[k]}" for k in negative)
            raise ValueError(f"SCFEGAN loss weights must be >= 0, got {shown}")
        with modules_in_hparams():
            self.save_hyperparameters()
        self.optim_g, self.optim_d = optim_g, optim_d
        self.automatic_optimization = False
        self.generator = generator if generator is not None else SCFEGANGenerator(
            widths=(32, 64, 128, 128, 128), kernels=(7, 5, 5, 3, 3), dilations=(2, 4))
        self.discriminator = discriminator if discriminator is not None else SNPatchGAN(
            in_channels=8, widths=(32, 64, 128, 128, 128), kernel_size=3)
        # The frozen loss network is not part of the model: it is built for fit only and kept out of the
        # state_dict (hence out of checkpoints), so editing and resuming never need its 528 MB of weights.
        self.__dict__["vgg"] = None

    # -- inference ---------------------------------------------------------------------------------------
    def forward(self, image: torch.Tensor, mask: torch.Tensor, sketch: torch.Tensor, colour: torch.Tensor,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        """The edited images ``(B, 3, H, W)`` in [-1, 1]: generated inside ``mask``, ``image`` exactly outside."""
        return self.complete(image, mask, sketch, colour, noise)[1]

    def complete(self, image: torch.Tensor, mask: torch.Tensor, sketch: torch.Tensor, colour: torch.Tensor,
                 noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(I_gen, I_comp)`` for a batch; ``noise`` defaults to the demo's (1 where N(0, 1) >= 1)."""
        if noise is None:
            noise = (torch.randn_like(mask) >= 1).to(mask.dtype)
        generated = self.generator(scfegan_input(image, mask, sketch, colour, noise))
        return generated, compose(generated, image, mask)

    def critic(self, image: torch.Tensor, mask: torch.Tensor, sketch: torch.Tensor, colour: torch.Tensor
               ) -> torch.Tensor:
        """Patch scores of ``image`` with the user's inputs as the generator sees them (inside the mask)."""
        return self.discriminator(torch.cat([image, mask, sketch * mask, colour * mask], dim=1))

    # -- losses ------------------------------------------------------------------------------------------
    def discriminator_loss(self, batch: dict[str, torch.Tensor], completed: torch.Tensor, step: int
                           ) -> dict[str, torch.Tensor]:
        """``L_D`` and its terms. ``step`` seeds the interpolation of the gradient penalty (a resumed run draws
        the same)."""
        hp = self.hparams
        image, mask, sketch, colour = batch["image"], batch["mask"], batch["sketch"], batch["colour"]
        real = self.critic(image, mask, sketch, colour)
        fake = self.critic(completed.detach(), mask, sketch, colour)
        t = torch.rand(image.shape[0], generator=torch.Generator().manual_seed(step)).to(image.device)
        penalty = gradient_penalty(lambda u: self.critic(u, mask, sketch, colour), image, completed, t, mask=mask)
        adversarial = scfegan_d_loss(real, fake)
        drift = real_score_penalty(real)
        loss = adversarial + hp.gp_weight * penalty + hp.real_score_weight * drift
        return {"loss": loss, "adversarial": adversarial, "gp": penalty, "real_score": drift,
                "real": real.detach().mean(), "fake": fake.detach().mean()}

    def generator_loss(self, batch: dict[str, torch.Tensor], generated: torch.Tensor, completed: torch.Tensor
                       ) -> dict[str, torch.Tensor]:
        """``L_G`` and its terms."""
        hp = self.hparams
        image, mask = batch["image"], batch["mask"]
        terms = {"per_pixel": per_pixel_loss(generated, image, mask, hp.hole_weight, hp.known_weight),
                 "adversarial": generator_adversarial_loss(self.critic(completed, mask, batch["sketch"],
                                                                       batch["colour"])),
                 "tv": total_variation_loss(completed)}
        loss = terms["per_pixel"] + hp.adversarial_weight * terms["adversarial"] + hp.tv_weight * terms["tv"]
        if self.vgg is not None:
            target = [f.detach() for f in self.vgg(image)]
            feats_gen, feats_comp = self.vgg(generated), self.vgg(completed)
            terms["perceptual"] = perceptual_loss(feats_gen, target) + perceptual_loss(feats_comp, target)
            terms["style"] = style_loss(feats_gen, target) + style_loss(feats_comp, target)
            loss = loss + hp.perceptual_weight * terms["perceptual"] + hp.style_weight * terms["style"]
        terms["loss"] = loss
        return terms

    # -- training ----------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule if self._trainer is not None else None
        size, multiple = getattr(dm, "image_size", None), getattr(self.generator, "size_multiple", 1)
        if isinstance(size, int) and size % multiple:
            fitting = max(multiple, round(size / multiple) * multiple)
            raise ValueError(f"{type(dm).__name__} gives {size}-px faces but the generator needs a multiple of "
                             f"{multiple} px ({len(self.generator.encoder)} stride-2 levels): set "
                             f"data.init_args.image_size: {fitting}, or give the generator fewer levels.")
        if stage == "fit" and self.hparams.perceptual_style and self.vgg is None:
            self.__dict__["vgg"] = load_vgg16_features(self.hparams.vgg_weights, self.hparams.download_vgg)

    def set_vgg(self, vgg: VGG16Features | None) -> None:
        """Use ``vgg`` (or none) for the perceptual and style terms, instead of loading the weights at ``fit``."""
        self.__dict__["vgg"] = vgg

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        sched_g, sched_d = self.lr_schedulers()
        step = sched_g.last_epoch  # batches trained so far, restored with the schedule on resume
        if self.vgg is not None:
            self.vgg.to(batch["image"].device)
        generated, completed = self.complete(batch["image"], batch["mask"], batch["sketch"], batch["colour"],
                                             batch["noise"])

        self.toggle_optimizer(opt_d)  # the critic first, as DeepFill v2's trainer (one step each)
        d_terms = self.discriminator_loss(batch, completed, step)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_terms["loss"])
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        self.toggle_optimizer(opt_g)
        g_terms = self.generator_loss(batch, generated, completed)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_terms["loss"])
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        lrs = {"train/lr_g": opt_g.param_groups[0]["lr"], "train/lr_d": opt_d.param_groups[0]["lr"]}
        sched_g.step()
        sched_d.step()

        with torch.no_grad():
            hole_l1 = masked_l1(completed, batch["image"], batch["mask"])
        logs = {f"train/d_{k}": v.detach() for k, v in d_terms.items() if k != "loss"}
        logs.update({f"train/g_{k}": v.detach() for k, v in g_terms.items() if k != "loss"})
        logs["train/masked_l1"] = hole_l1
        logs.update(lrs)
        n = batch["image"].shape[0]
        self.log_dict(logs, batch_size=n)
        self.log_dict({"train/d_loss": d_terms["loss"].detach(), "train/g_loss": g_terms["loss"].detach()},
                      prog_bar=True, batch_size=n)

    # -- evaluation --------------------------------------------------------------------------------------
    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        _, completed = self.complete(batch["image"], batch["mask"], batch["sketch"], batch["colour"], batch["noise"])
        n = batch["image"].shape[0]
        self.log("val/masked_l1", masked_l1(completed, batch["image"], batch["mask"]), prog_bar=True, batch_size=n)

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        """``{"images": (B, 3, H, W)}``: the edited faces in [0, 1], for ``lit_digest.core.images.ImageWriter``."""
        _, completed = self.complete(batch["image"], batch["mask"], batch["sketch"], batch["colour"],
                                     batch.get("noise"))
        return {"images": (completed.clamp(-1, 1) + 1) / 2}

    # -- optimisation ------------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        return player_optimizers(self, [(self.optim_g, self.generator.parameters()),
                                        (self.optim_d, self.discriminator.parameters())])
