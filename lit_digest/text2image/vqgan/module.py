"""VQGAN: a VQ autoencoder trained with reconstruction, perceptual, codebook and patch-adversarial losses
(Esser et al., "Taming Transformers for High-Resolution Image Synthesis", arXiv 2012.09841, section 3.1).

The autoencoder is diffusers' ``VQModel`` (the maintained VQGAN code: the same encoder, decoder and quantiser
as CompVis/taming-transformers, and the class that reads the latent-diffusion VQ weights), built here from
explicit sizes; the losses are taming's (``lit_digest.text2image.vqgan.losses``), trained with Lightning's
manual optimisation: one autoencoder step, then one discriminator step, per batch, as taming's two optimisers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch.nn import functional as F

from lit_digest.core.callbacks import run_dir
from lit_digest.core.lightning import LightningModule
from lit_digest.core.optim import Optim, make_optimizer
from lit_digest.core.outputs import announce
from lit_digest.text2image.vqgan.losses import (
    NLayerDiscriminator,
    adaptive_weight,
    adopt_weight,
    feature_distance,
    hinge_d_loss,
)

__all__ = ["VQGANModule", "build_vqmodel", "downsampling", "bicubic_baseline"]

# taming's configs: base_learning_rate 4.5e-6 times the batch (main.py scales it by batch x GPUs x accumulation),
# Adam betas (0.5, 0.9) for both optimisers (taming/models/vqgan.py configure_optimizers); here at a batch of 64
ADAM = Optim(name="adam", lr=4.5e-6 * 64, betas=(0.5, 0.9), schedule="constant")


def build_vqmodel(block_out_channels: Sequence[int] = (32, 64, 64), layers_per_block: int = 1,
                  latent_channels: int = 32, num_vq_embeddings: int = 256, vq_embed_dim: int = 32,
                  norm_num_groups: int = 16, attention_levels: Sequence[int] = (), mid_attention: bool = True,
                  in_channels: int = 3):
    """A diffusers ``VQModel``: ``len(block_out_channels) - 1`` halvings; ``attention_levels`` (0 = the first,
    full-resolution level) get self-attention in their blocks, as taming's ``attn_resolutions``."""
    from diffusers import VQModel

    levels = len(block_out_channels)
    bad = [c for c in block_out_channels if c % norm_num_groups]
    if bad:
        raise ValueError(f"VQGAN block_out_channels {list(block_out_channels)} must be multiples of norm_num_groups "
                         f"{norm_num_groups}")
    if any(not 0 <= i < levels for i in attention_levels):
        raise ValueError(f"VQGAN attention_levels {list(attention_levels)} must be in [0, {levels})")
    down = tuple("AttnDownEncoderBlock2D" if i in attention_levels else "DownEncoderBlock2D" for i in range(levels))
    # the decoder's blocks run from the coarsest level up
    up = tuple("AttnUpDecoderBlock2D" if levels - 1 - i in attention_levels else "UpDecoderBlock2D"
               for i in range(levels))
    return VQModel(in_channels=in_channels, out_channels=in_channels, down_block_types=down, up_block_types=up,
                   block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block,
                   latent_channels=latent_channels, num_vq_embeddings=num_vq_embeddings, vq_embed_dim=vq_embed_dim,
                   norm_num_groups=norm_num_groups, mid_block_add_attention=mid_attention)


def downsampling(vqmodel) -> int:
    """The side of the image patch one latent token stands for: ``2 ** (levels - 1)``."""
    return 2 ** (len(vqmodel.config.block_out_channels) - 1)


def bicubic_baseline(images: torch.Tensor, bits: float) -> tuple[torch.Tensor, int]:
    """The images bicubic-downsampled to the largest ``s x s`` RGB at 8 bits a value that fits in ``bits``
    (``24 s^2 <= bits``), stored as 8-bit values and upsampled back: ``(reconstruction, s)``."""
    side = max(1, int(math.isqrt(int(bits // 24))))
    small = F.interpolate(images, size=(side, side), mode="bicubic", antialias=True, align_corners=False)
    small = ((small.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1  # 8-bit storage
    return F.interpolate(small, size=images.shape[-2:], mode="bicubic", align_corners=False).clamp(-1, 1), side


class VQGANModule(LightningModule):
    """VQGAN training around a diffusers ``VQModel``. Batches are dicts with ``image`` ``(B, 3, H, W)`` in [-1, 1].

    Defaults are small (32-64 px scenes on a CPU); taming's ImageNet f16 model is ``block_out_channels (128, 128,
    256, 256, 512), layers_per_block 2, latent_channels 256, vq_embed_dim 256, num_vq_embeddings 1024,
    norm_num_groups 32, attention_levels [4]``.

    Args:
        block_out_channels, layers_per_block, latent_channels, num_vq_embeddings, vq_embed_dim, norm_num_groups,
            attention_levels, mid_attention: the ``VQModel`` (``build_vqmodel``).
        codebook_weight: on the VQ loss (taming 1.0).
        pixel_weight: on the L1 reconstruction (taming 1.0).
        perceptual_weight: on the perceptual distance (taming 1.0, LPIPS); used only with ``vgg_weights``.
        vgg_weights: torchvision's VGG-16 file (``vgg16-397923af.pth``) for the perceptual term; None: no perceptual
            term (the weights are not downloadable offline).
        disc_weight: scales the adaptive weight (taming 0.8 in its configs).
        disc_factor: the adversarial term's factor once the discriminator has started (taming 1.0).
        disc_start: the step the discriminator starts at (taming's custom_vqgan.yaml: 10000; its ImageNet
            models 250001).
        disc_channels, disc_layers: the PatchGAN (taming 64, 3).
        restart_dead_codes: every this many batches, codes no batch chose since the last check move to random
            encoder outputs of the current batch (Jukebox's random restarts, Dhariwal et al., arXiv 2005.00341,
            section 3.3); the first batch also draws every code from its encoder outputs. 0: taming's setting (codes
            initialised uniform in +-1/K, never restarted), with which short runs use a few codes only (18 of 256
            after 400 batches of scenes).
        optim_ae, optim_d: Adam (0.5, 0.9) at taming's 4.5e-6 x batch (64).
    """

    def __init__(
        self,
        block_out_channels: tuple[int, ...] = (32, 64, 64),
        layers_per_block: int = 1,
        latent_channels: int = 32,
        num_vq_embeddings: int = 256,
        vq_embed_dim: int = 32,
        norm_num_groups: int = 16,
        attention_levels: tuple[int, ...] = (),
        mid_attention: bool = True,
        codebook_weight: float = 1.0,
        pixel_weight: float = 1.0,
        perceptual_weight: float = 1.0,
        vgg_weights: str | None = None,
        disc_weight: float = 0.8,
        disc_factor: float = 1.0,
        disc_start: int = 10000,
        disc_channels: int = 64,
        disc_layers: int = 3,
        restart_dead_codes: int = 0,
        optim_ae: Optim = ADAM,
        optim_d: Optim = ADAM,
    ) -> None:
        super().__init__()
        weights = dict(codebook_weight=codebook_weight, pixel_weight=pixel_weight,
                       perceptual_weight=perceptual_weight, disc_weight=disc_weight, disc_factor=disc_factor)
        negative = [f"{k}={v}" for k, v in weights.items() if v < 0]
        if negative or disc_start < 0:
            raise ValueError(f"VQGANModule loss weights and disc_start must be >= 0, got {', '.join(negative) or ''}"
                             f"{'' if disc_start >= 0 else f' disc_start={disc_start}'}")
        self.save_hyperparameters()
        self.optim_ae, self.optim_d = optim_ae, optim_d
        self.automatic_optimization = False
        self.vqmodel = build_vqmodel(block_out_channels, layers_per_block, latent_channels, num_vq_embeddings,
                                     vq_embed_dim, norm_num_groups, attention_levels, mid_attention)
        self.discriminator = NLayerDiscriminator(3, disc_channels, disc_layers)
        self.register_buffer("code_usage", torch.zeros(num_vq_embeddings), persistent=False)
        # the frozen VGG is a loss network, not part of the model: kept out of the state_dict and checkpoints
        self.__dict__["vgg"] = None
        if vgg_weights is not None:
            from lit_digest.core.vgg import load_vgg16_features

            self.__dict__["vgg"] = load_vgg16_features(
                vgg_weights, options=("model.init_args.vgg_weights", "model.init_args.vgg_weights <the file>",
                                      "model.init_args.vgg_weights null"))

    # -- inference ---------------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstructions ``(B, 3, H, W)`` in [-1, 1] of images in [-1, 1]."""
        return self.reconstruct(images)[0]

    def reconstruct(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(reconstruction, codebook_loss)``: encode, quantise (straight through), decode."""
        h = self.vqmodel.encode(images).latents  # (B, D, h, w)
        quant, codebook_loss, _ = self.vqmodel.quantize(h)
        out = self.vqmodel.decode(quant, force_not_quantize=True).sample  # (B, 3, H, W)
        return out, codebook_loss

    # -- losses ------------------------------------------------------------------------------------------
    def generator_loss(self, images: torch.Tensor, rec: torch.Tensor, codebook_loss: torch.Tensor, step: int
                       ) -> dict[str, torch.Tensor]:
        hp = self.hparams
        rec_loss = hp.pixel_weight * (images - rec).abs().mean()
        terms = {"rec": rec_loss}
        nll = rec_loss
        if self.vgg is not None and hp.perceptual_weight > 0:
            terms["perceptual"] = feature_distance(self.vgg(rec), [f.detach() for f in self.vgg(images)]).mean()
            nll = nll + hp.perceptual_weight * terms["perceptual"]
        factor = adopt_weight(hp.disc_factor, step, hp.disc_start)
        loss = nll + hp.codebook_weight * codebook_loss
        if factor > 0:  # before disc_start the adversarial term is 0 x g_loss: skip its passes
            g_loss = -self.discriminator(rec).mean()
            last = self.vqmodel.decoder.conv_out.weight
            d_weight = adaptive_weight(nll, g_loss, last, hp.disc_weight) if self.training else torch.zeros(())
            loss = loss + d_weight * factor * g_loss
            terms.update(g_loss=g_loss, d_weight=d_weight)
        terms.update(nll=nll, codebook=codebook_loss, loss=loss)
        return terms

    # -- training ----------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        opt_ae, opt_d = self.optimizers()
        step = self.global_step // 2  # each batch steps both optimisers
        images = batch["image"]
        if self.vgg is not None:
            self.vgg.to(images.device)
        if self.hparams.restart_dead_codes:
            self.restart_codes(images, first=step == 0)
        rec, codebook_loss = self.reconstruct(images)

        self.toggle_optimizer(opt_ae)
        g = self.generator_loss(images, rec, codebook_loss, step)
        opt_ae.zero_grad(set_to_none=True)
        self.manual_backward(g["loss"])
        opt_ae.step()
        self.untoggle_optimizer(opt_ae)

        self.toggle_optimizer(opt_d)
        factor = adopt_weight(self.hparams.disc_factor, step, self.hparams.disc_start)
        logs = {f"train/{k}": v.detach() for k, v in g.items() if k != "loss"}
        if factor > 0:
            real, fake = self.discriminator(images.detach()), self.discriminator(rec.detach())
            d_loss = factor * hinge_d_loss(real, fake)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            logs.update({"train/d_loss": d_loss.detach(), "train/logits_real": real.detach().mean(),
                         "train/logits_fake": fake.detach().mean()})
        opt_d.step()  # a step without gradients changes nothing, and keeps the optimisers' step counts equal
        self.untoggle_optimizer(opt_d)
        n = images.shape[0]
        self.log_dict(logs, batch_size=n)
        self.log("train/loss", g["loss"].detach(), prog_bar=True, batch_size=n)

    @torch.no_grad()
    def restart_codes(self, images: torch.Tensor, first: bool) -> int:
        """Count the codes this batch chooses; at the first batch, and every ``restart_dead_codes`` batches, move
        the codes chosen by no batch since the last check to random encoder outputs of this batch. Returns how many
        moved."""
        h = self.vqmodel.encode(images).latents  # (B, D, h, w)
        vectors = h.permute(0, 2, 3, 1).reshape(-1, h.shape[1])  # (B * h * w, D)
        codebook = self.vqmodel.quantize.embedding.weight
        chosen = torch.cdist(vectors, codebook).argmin(1)
        self.code_usage += torch.bincount(chosen, minlength=len(codebook)).to(self.code_usage.dtype)
        step = self.global_step // 2
        if not first and (step == 0 or step % self.hparams.restart_dead_codes):
            return 0
        dead = torch.ones_like(self.code_usage, dtype=torch.bool) if first else self.code_usage == 0
        n = int(dead.sum())
        if n:
            g = torch.Generator(device="cpu").manual_seed(step)
            picks = torch.randint(len(vectors), (n,), generator=g).to(vectors.device)
            codebook[dead] = vectors[picks].to(codebook.dtype)
        self.log("train/codes_restarted", float(n), batch_size=len(images))
        self.code_usage.zero_()
        return n

    # -- evaluation --------------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        from torchmetrics.image import PeakSignalNoiseRatio

        self._psnr = PeakSignalNoiseRatio(data_range=1.0).to(self.device)
        self._psnr_bicubic = PeakSignalNoiseRatio(data_range=1.0).to(self.device)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        images = batch["image"]
        rec, _ = self.reconstruct(images)
        tokens = math.prod(rec.shape[-2:]) // downsampling(self.vqmodel) ** 2
        self._bits = tokens * math.log2(self.hparams.num_vq_embeddings)
        baseline, _ = bicubic_baseline(images, self._bits)
        target = (images + 1) / 2
        self._psnr.update(((rec.clamp(-1, 1) + 1) / 2).float(), target.float())
        self._psnr_bicubic.update(((baseline + 1) / 2).float(), target.float())

    def on_validation_epoch_end(self) -> None:
        if self._psnr.update_count:
            self.log("val/psnr", self._psnr.compute(), prog_bar=True)
            self.log("val/psnr_bicubic", self._psnr_bicubic.compute())

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        return {"image": batch["image"], "reconstruction": self.reconstruct(batch["image"])[0].clamp(-1, 1)}

    def on_predict_epoch_end(self) -> None:
        """Writes ``reconstructions/<index>.png`` and ``reconstructions.png`` (originals above reconstructions,
        the first 64 images)."""
        from PIL import Image

        outputs = self.trainer.predict_loop.predictions
        if not outputs or self.global_rank != 0:
            return
        folder = run_dir(self.trainer)
        (folder / "reconstructions").mkdir(parents=True, exist_ok=True)

        def pixels(x: torch.Tensor):
            return ((x.float().cpu() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)

        recs = pixels(torch.cat([o["reconstruction"] for o in outputs]))
        for i, rec in enumerate(recs):
            Image.fromarray(rec.permute(1, 2, 0).numpy()).save(folder / "reconstructions" / f"{i:05d}.png")
        first = min(64, len(recs))
        pairs = torch.stack([pixels(torch.cat([o["image"] for o in outputs]))[:first], recs[:first]])  # (2, N, ...)
        sheet = pairs.permute(2, 0, 3, 1, 4).reshape(3, 2 * recs.shape[-2], first * recs.shape[-1])
        path = folder / "reconstructions.png"
        Image.fromarray(sheet.permute(1, 2, 0).numpy()).save(path)
        announce(path, len(recs), f"reconstructions (one PNG each in {folder / 'reconstructions'})")

    # -- optimisation ------------------------------------------------------------------------------------
    def configure_optimizers(self) -> list:
        vq = self.vqmodel
        ae = [p for m in (vq.encoder, vq.decoder, vq.quantize, vq.quant_conv, vq.post_quant_conv)
              for p in m.parameters()]
        return [make_optimizer(self.optim_ae, [{"params": ae}]),
                make_optimizer(self.optim_d, [{"params": list(self.discriminator.parameters())}])]
