"""VQGAN+CLIP: text to image by optimising a VQGAN latent against CLIP (Crowson et al., arXiv 2204.08583).

Nothing is trained. For each prompt the latent ``z`` (one vector per token of the VQGAN's grid, started at random
codebook entries, or at the encoding of an init image) is optimised with Adam (step 0.1, a few hundred steps) so
that CLIP's embeddings of many augmented cutouts of the decoded image ``decode(quantize(z))`` approach the
weighted prompt embeddings (``prompts.prompt_loss``), the quantiser passing gradients straight through, and ``z``
clamped to the codebook's range after each step (nerdyrodent/VQGAN-CLIP ``generate.py``).

Why ``predict``: a generation run optimises a new latent for every prompt, while the model's weights stay frozen,
so it is inference of this LightningModule. ``predict_step`` optimises its batch's latents with an Adam of its
own inside ``torch.inference_mode(False)`` and ``torch.enable_grad()`` (Lightning runs predict under inference
mode), under the Trainer's precision (autocast; a gradient scaler for 16-mixed), on the Trainer's devices (each
rank its share of the prompts), then writes the PNGs, the progress strip and the W&B images. The alternative,
the latent as the module's parameter optimised by ``fit``, would tie the module to one batch of prompts and
make the checkpoint a set of latents. ``validate`` (and ``fit``, which has nothing to train: a no-op training step,
then the validation) runs the same loop on the validation prompts and logs ``val/clip_similarity``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from lit_digest.core.callbacks import run_dir
from lit_digest.core.lightning import LightningModule
from lit_digest.core.outputs import announce
from lit_digest.text2image.generate.cutouts import Augment, ClampWithGrad, MakeCutouts, straight_through_quantize
from lit_digest.text2image.generate.models import load_clip, load_vqgan
from lit_digest.text2image.generate.prompts import parse_prompt, parse_prompts, prompt_loss
from lit_digest.text2image.vqgan.module import downsampling

__all__ = ["VQGANCLIP", "read_image"]


def read_image(path: str | Path, size: tuple[int, int]) -> torch.Tensor:
    """``(1, 3, H, W)`` in [0, 1] of the image at ``path`` resized (Lanczos) to ``size = (H, W)``."""
    import numpy as np
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found at '{path.resolve()}' (an init image or an image prompt)")
    with Image.open(path) as img:
        img = img.convert("RGB").resize((size[1], size[0]), Image.LANCZOS)
        return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)[None].float() / 255


class VQGANCLIP(LightningModule):
    """VQGAN+CLIP generation. Batches come from ``PromptDataModule``: ``prompt`` (strings in the notebooks'
    syntax, ``"a red circle | blue background:0.5 | text:-1"``), ``seed`` and ``index``.

    Args:
        vqgan: a VQGANModule ``.ckpt`` or a taming / latent-diffusion VQGAN ``.ckpt``; None: the default VQGAN sizes,
            untrained (tests only: its images mean nothing).
        vqgan_config: the ``.yaml`` of a taming / latent-diffusion checkpoint.
        clip: a CLIPModule ``.ckpt`` or an open_clip weights file; None: the default CLIP sizes, untrained.
        clip_model: the open_clip architecture of an open_clip weights file (``ViT-B-32`` ...).
        height, width: of the images; multiples of the VQGAN's token side, at least CLIP's input size.
        steps: Adam steps per prompt (the notebooks: 250-500; 20 by default so that a CPU answers in seconds).
        step_size: Adam's learning rate (Crowson's notebook: 0.1).
        cutn: cutouts per step (the notebooks: 32-64; 8 by default, for a CPU).
        cut_pow: crop-size exponent (1.0).
        augment: the cutouts' augmentations (the notebooks'); None: plain crops, no noise.
        init_image: start from this image's encoding instead of random tokens.
        init_weight: pull ``z`` back to its start, ``init_weight / 2 * mse(z, z_0)`` (the notebooks: 0).
        image_prompts: ``"path"``, ``"path:weight"`` or ``"path:weight:stop"`` for every prompt; an image's
            embedding is the mean of its cutouts' (the notebooks keep the cutouts as separate targets).
        snapshots: columns of the progress strip (images at evenly spaced steps, the first and last included).
    """

    def __init__(
        self,
        vqgan: str | None = None,
        vqgan_config: str | None = None,
        clip: str | None = None,
        clip_model: str | None = None,
        height: int = 32,
        width: int = 32,
        steps: int = 20,
        step_size: float = 0.1,
        cutn: int = 8,
        cut_pow: float = 1.0,
        augment: Augment | None = Augment(),
        init_image: str | None = None,
        init_weight: float = 0.0,
        image_prompts: tuple[str, ...] = (),
        snapshots: int = 6,
    ) -> None:
        super().__init__()
        if steps < 0 or step_size <= 0 or init_weight < 0 or snapshots < 1:
            raise ValueError(f"VQGANCLIP needs steps >= 0, step_size > 0, init_weight >= 0 and snapshots >= 1, got "
                             f"{steps}, {step_size}, {init_weight}, {snapshots}")
        self.save_hyperparameters()
        self.image_prompts = [parse_prompt(p) for p in image_prompts]  # a bad weight fails here, before any work
        self.vqgan = load_vqgan(vqgan, vqgan_config)
        self.clip = load_clip(clip, clip_model)
        side = downsampling(self.vqgan)
        if height % side or width % side:
            raise ValueError(f"image size {height}x{width} is not a multiple of the VQGAN's token side {side}: set "
                             f"model.init_args.height and width to multiples of {side}")
        if min(height, width) < self.clip.image_size:
            raise ValueError(f"the VQGAN's images ({height}x{width}) are smaller than CLIP's input "
                             f"({self.clip.image_size} px): generate at least {self.clip.image_size} px "
                             "(model.init_args.height, width) or use a CLIP built for smaller images")
        self.cutouts = MakeCutouts(self.clip.image_size, cutn, cut_pow, augment)
        self.results: list[dict[str, Any]] = []

    # -- the loop ----------------------------------------------------------------------------------------
    @property
    def codebook(self) -> torch.Tensor:
        return self.vqgan.quantize.embedding.weight  # (K, D)

    def synth(self, z: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` in [0, 1] of latents ``(B, D, h, w)``, differentiable in ``z``."""
        z_q = straight_through_quantize(z, self.codebook.to(z.dtype))
        out = self.vqgan.decode(z_q.to(self.codebook.dtype), force_not_quantize=True).sample
        return ClampWithGrad.apply(out.add(1).div(2), 0.0, 1.0)

    def initial_latents(self, seeds: list[int]) -> torch.Tensor:
        """``(B, D, h, w)``: random codebook entries drawn from each seed (Crowson's notebook), or the init image's
        encoding."""
        h, w = (s // downsampling(self.vqgan) for s in (self.hparams.height, self.hparams.width))
        if self.hparams.init_image is not None:
            image = read_image(self.hparams.init_image, (self.hparams.height, self.hparams.width)).to(self.device)
            z = self.vqgan.encode(image * 2 - 1).latents.float()
            return z.expand(len(seeds), -1, -1, -1).clone()
        tokens = torch.stack([torch.randint(len(self.codebook), (h * w,), generator=torch.Generator().manual_seed(s))
                              for s in seeds]).to(self.device)  # (B, h * w)
        return self.codebook.float()[tokens].view(len(seeds), h, w, -1).permute(0, 3, 1, 2).contiguous()

    @torch.no_grad()
    def prompt_targets(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Embeddings ``(B, P, D)``, weights and stops ``(B, P)`` of every batch item's prompts (padded with weight
        0), text prompts first, then the image prompts."""
        parsed = [parse_prompts(p) for p in prompts]
        texts = sorted({p.text for items in parsed for p in items})
        embeds = dict(zip(texts, self.clip.encode_text(texts).float()))
        for p in self.image_prompts:
            if p.text not in embeds:
                image = read_image(p.text, (self.hparams.height, self.hparams.width)).to(self.device)
                g = torch.Generator().manual_seed(0)
                embeds[p.text] = self.clip.encode_image(self.cutouts(image, [g])).float().mean(0)
        rows = [items + self.image_prompts for items in parsed]
        n = max(len(r) for r in rows)
        dim = next(iter(embeds.values())).shape[-1]
        e = torch.zeros(len(rows), n, dim, device=self.device)
        weights = torch.zeros(len(rows), n, device=self.device)
        stops = torch.full((len(rows), n), -math.inf, device=self.device)
        for b, row in enumerate(rows):
            for j, p in enumerate(row):
                e[b, j], weights[b, j], stops[b, j] = embeds[p.text], p.weight, p.stop
        return e, weights, stops

    def generate(self, prompts: list[str], seeds: list[int], steps: int | None = None
                 ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """Optimise one latent per prompt: ``(images (B, 3, H, W) in [0, 1], snapshots, final losses (B,))``."""
        steps = self.hparams.steps if steps is None else steps
        keep = sorted({round(i * steps / max(self.hparams.snapshots - 1, 1)) for i in range(self.hparams.snapshots)})
        snaps: list[torch.Tensor] = []
        scaler = torch.amp.GradScaler(self.device.type, enabled=self._precision() == "16-mixed")
        with torch.inference_mode(False), torch.enable_grad():
            embeds, weights, stops = (t.clone() for t in self.prompt_targets(prompts))
            z0 = self.initial_latents(seeds).clone()
            z = z0.clone().requires_grad_(True)
            low, high = (self.codebook.float().amin(0), self.codebook.float().amax(0))
            low, high = low.view(1, -1, 1, 1).clone(), high.view(1, -1, 1, 1).clone()
            opt = torch.optim.Adam([z], lr=self.hparams.step_size)
            gens = [torch.Generator().manual_seed(int(s) + 1) for s in seeds]
            for i in range(steps + 1):
                image = self.synth(z)
                if i in keep:
                    snaps.append(image.detach().float().cpu())
                features = self.clip.encode_image(self.cutouts(image, gens)).float()
                losses = prompt_loss(features.view(len(prompts), self.cutouts.cutn, -1), embeds, weights, stops)
                if self.hparams.init_weight:
                    losses = losses + self.hparams.init_weight / 2 * (z - z0).pow(2).mean((1, 2, 3))
                if i == steps:  # the last evaluation, no step after it
                    break
                opt.zero_grad(set_to_none=True)
                scaler.scale(losses.sum()).backward()
                scaler.step(opt)
                scaler.update()
                with torch.no_grad():
                    z.copy_(z.maximum(low).minimum(high))
        return image.detach().float(), snaps, losses.detach().float()

    def _precision(self) -> str:
        try:
            return str(self.trainer.precision)
        except RuntimeError:
            return "32-true"

    @torch.no_grad()
    def clip_similarity(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        """Cosine similarity ``(B,)`` of CLIP's embedding of each whole image with its first prompt's text."""
        first = [parse_prompts(p)[0].text for p in prompts]
        img = self.clip.encode_image(F.interpolate(images, size=self.clip.image_size, mode="bilinear",
                                                   antialias=True, align_corners=False)).float()
        return F.cosine_similarity(img, self.clip.encode_text(first).float(), dim=-1)

    # -- Lightning ---------------------------------------------------------------------------------------
    def forward(self, prompts: list[str], seeds: list[int]) -> torch.Tensor:
        """Generated images ``(B, 3, H, W)`` in [0, 1]."""
        return self.generate(prompts, seeds)[0]

    def _check_device(self) -> None:
        if self.device.type == "cpu" and self._precision() in ("16-mixed", "16-true"):
            raise ValueError(f"precision {self._precision()} on a CPU: half precision is for GPUs; use "
                             "--trainer.precision 32-true (or bf16-mixed) on a CPU")

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        return None  # nothing to train: see the module docstring

    def configure_optimizers(self):
        return None

    def on_validation_start(self) -> None:
        self._check_device()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        images, _, losses = self.generate(list(batch["prompt"]), batch["seed"].tolist())
        n = len(images)
        self.log("val/clip_similarity", self.clip_similarity(images, list(batch["prompt"])).mean(), batch_size=n,
                 prog_bar=True)
        self.log("val/prompt_loss", losses.mean(), batch_size=n)

    def on_predict_start(self) -> None:
        self._check_device()
        self.results = []

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        prompts, seeds = list(batch["prompt"]), batch["seed"].tolist()
        images, snaps, losses = self.generate(prompts, seeds)
        folder = run_dir(self.trainer) / "generated"
        folder.mkdir(parents=True, exist_ok=True)
        for b, index in enumerate(batch["index"].tolist()):
            name = f"{index:04d}_{_slug(prompts[b])}_seed{seeds[b]}.png"
            save_png(images[b], folder / name)
            self.results.append({"index": index, "prompt": prompts[b], "seed": seeds[b], "file": name,
                                 "loss": float(losses[b]), "image": images[b].cpu(),
                                 "strip": torch.stack([s[b] for s in snaps])})
        return {"images": images, "losses": losses}

    def on_predict_end(self) -> None:
        if not self.results:
            return
        folder = run_dir(self.trainer)
        rows = sorted(self.results, key=lambda r: r["index"])
        rank = f"_rank{self.global_rank}" if self.trainer.world_size > 1 else ""
        grid = folder / f"generated{rank}.png"
        save_png(_tile(torch.stack([r["image"] for r in rows])[None]), grid)
        strip = folder / f"progress{rank}.png"
        save_png(_tile(torch.stack([r["strip"] for r in rows])), strip)
        logger = self.logger
        if logger is not None and hasattr(logger, "log_image"):
            logger.log_image(key="generated", images=[r["image"] for r in rows], caption=[r["prompt"] for r in rows])
            logger.log_image(key="progress", images=[str(strip)])
        announce(grid, len(rows), "generated images")
        print(f"lit_digest: one PNG per prompt in {folder / 'generated'}; the progress strip in {strip}", flush=True)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60] or "prompt"


def _tile(images: torch.Tensor) -> torch.Tensor:
    """``(R, C, 3, H, W)`` -> one ``(3, R * H, C * W)`` image."""
    r, c, ch, h, w = images.shape
    return images.permute(2, 0, 3, 1, 4).reshape(ch, r * h, c * w)


def save_png(image: torch.Tensor, path: Path) -> None:
    """``(3, H, W)`` in [0, 1] as an 8-bit PNG."""
    from PIL import Image

    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    Image.fromarray(pixels).save(path)
