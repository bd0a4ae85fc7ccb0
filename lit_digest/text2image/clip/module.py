"""A small CLIP trained contrastively on captioned images (Radford et al., arXiv 2103.00020, section 2.3).

The model, tokenizer and loss are open_clip's (mlfoundations/open_clip): ``open_clip.CLIP`` built from a small
config of ours (a ViT and a text transformer), its BPE ``SimpleTokenizer`` (shipped with the package), its
``ClipLoss`` with a learned temperature (``logit_scale``, initialised to log(1/0.07) and clamped to log(100) after
every step, as open_clip's ``train.py``). Under DDP the loss sees every rank's pairs: ``ClipLoss(local_loss=True,
gather_with_grad=True)`` (open_clip's ``gather_features``) gives each rank the cross-entropies of its own rows
against all columns, with gradients flowing back through the gather, so DDP's gradient average equals the
gradient of the single-process loss on the global batch (``tests/text2image/test_clip.py`` checks it on 2 gloo
processes).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from lit_digest.core.callbacks import run_dir
from lit_digest.core.lightning import LightningModule
from lit_digest.core.optim import Optim, configure_optim
from lit_digest.core.outputs import announce

__all__ = ["CLIPModule", "build_clip", "clip_loss", "image_features", "OPENAI_MEAN", "OPENAI_STD"]

# open_clip's OPENAI_DATASET_MEAN / STD: the normalisation of CLIP's inputs (ours keeps it, so that the generation
# loop treats a pretrained open_clip model and ours alike)
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def build_clip(embed_dim: int = 64, image_size: int = 32, patch_size: int = 8, vision_width: int = 128,
               vision_layers: int = 3, vision_head_width: int = 32, text_width: int = 128, text_layers: int = 3,
               text_heads: int = 4, context_length: int = 32) -> nn.Module:
    """``open_clip.CLIP`` with a ViT image tower and a causal text transformer over open_clip's BPE vocabulary."""
    import open_clip

    if image_size % patch_size:
        raise ValueError(f"CLIP image_size {image_size} must be a multiple of patch_size {patch_size}")
    vision = open_clip.CLIPVisionCfg(layers=vision_layers, width=vision_width, head_width=vision_head_width,
                                     patch_size=patch_size, image_size=image_size)
    text = open_clip.CLIPTextCfg(context_length=context_length, width=text_width, heads=text_heads,
                                 layers=text_layers)
    return open_clip.CLIP(embed_dim, vision_cfg=vision, text_cfg=text)


def clip_loss(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, rank: int = 0,
              world_size: int = 1) -> torch.Tensor:
    """open_clip's ``ClipLoss`` of normalised features ``(B, D), (B, D)``: the mean of the image->text and
    text->image cross-entropies, over this rank's rows against every rank's columns when ``world_size > 1``."""
    from open_clip.loss import ClipLoss

    loss = ClipLoss(local_loss=world_size > 1, gather_with_grad=world_size > 1, rank=rank, world_size=world_size)
    return loss(image, text, logit_scale)


def image_features(model: nn.Module, images01: torch.Tensor) -> torch.Tensor:
    """CLIP image embeddings ``(B, D)`` (not normalised) of images in [0, 1] ``(B, 3, S, S)``."""
    mean = images01.new_tensor(OPENAI_MEAN).view(1, 3, 1, 1)
    std = images01.new_tensor(OPENAI_STD).view(1, 3, 1, 1)
    return model.encode_image((images01 - mean) / std)


class CLIPModule(LightningModule):
    """Contrastive text-image training of a small ``open_clip.CLIP``. Batches are dicts with ``image``
    ``(B, 3, S, S)`` in [-1, 1] and ``caption`` (strings); ``S`` must be ``image_size``.

    Logs ``train/loss``, ``train/temperature`` and, on the validation split, ``val/loss`` and ``val/recall_at_1``:
    the share of held-out images whose most similar caption (among the split's captions) is their own text
    (torchmetrics' ``RetrievalHitRate`` at 1; identical caption strings count as the right one), beside the chance
    level ``val/recall_at_1_chance``.

    Args:
        embed_dim, image_size, patch_size, vision_width, vision_layers, vision_head_width, text_width, text_layers,
            text_heads, context_length: the model (``build_clip``); CLIP's ViT-B/32 is 512, 224, 32, 768, 12, 64,
            512, 12, 8, 77.
        init_temperature: the softmax temperature at the start (CLIP: 0.07, learned).
        max_logit_scale: the clamp of ``1 / temperature`` (CLIP: 100).
        optim: AdamW, lr 5e-4, betas (0.9, 0.98), weight decay 0.2, warmup then cosine (CLIP section 2.5 and
            appendix F; open_clip's defaults for ViTs).
    """

    def __init__(
        self,
        embed_dim: int = 64,
        image_size: int = 32,
        patch_size: int = 8,
        vision_width: int = 128,
        vision_layers: int = 3,
        vision_head_width: int = 32,
        text_width: int = 128,
        text_layers: int = 3,
        text_heads: int = 4,
        context_length: int = 32,
        init_temperature: float = 0.07,
        max_logit_scale: float = 100.0,
        optim: Optim = Optim(name="adamw", lr=5e-4, betas=(0.9, 0.98), weight_decay=0.2, warmup_steps=100),
    ) -> None:
        super().__init__()
        if not (init_temperature > 0 and max_logit_scale > 1):
            raise ValueError(f"CLIPModule needs init_temperature > 0 and max_logit_scale > 1, got {init_temperature},"
                             f" {max_logit_scale}")
        self.save_hyperparameters()
        self.optim = optim
        self.model = build_clip(embed_dim, image_size, patch_size, vision_width, vision_layers, vision_head_width,
                                text_width, text_layers, text_heads, context_length)
        with torch.no_grad():
            self.model.logit_scale.fill_(math.log(1 / init_temperature))
        from open_clip.tokenizer import SimpleTokenizer

        self.tokenizer = SimpleTokenizer(context_length=context_length)

    def tokenize(self, captions: list[str]) -> torch.Tensor:
        """``(B, context_length)`` token ids (longer captions are cut, as open_clip's tokenizer does)."""
        return self.tokenizer(list(captions)).to(self.device)

    def forward(self, images: torch.Tensor, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised embeddings ``(B, D)`` of images in [-1, 1] and of captions."""
        self._check_size(images)
        img = image_features(self.model, (images + 1) / 2)
        txt = self.model.encode_text(self.tokenize(captions))
        return nn.functional.normalize(img, dim=-1), nn.functional.normalize(txt, dim=-1)

    def _check_size(self, images: torch.Tensor) -> None:
        if images.shape[-1] != self.hparams.image_size or images.shape[-2] != self.hparams.image_size:
            raise ValueError(f"CLIPModule was built for {self.hparams.image_size} px images, the data gives "
                             f"{images.shape[-2]}x{images.shape[-1]}: set data.init_args.size to "
                             f"{self.hparams.image_size} or model.init_args.image_size to {images.shape[-1]}")

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        img, txt = self(batch["image"], batch["caption"])
        scale = self.model.logit_scale.exp()
        loss = clip_loss(img, txt, scale, self.global_rank, self.trainer.world_size)
        n = len(img)
        self.log("train/loss", loss, prog_bar=True, batch_size=n, sync_dist=True)
        self.log("train/temperature", 1 / scale.detach(), batch_size=n)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        with torch.no_grad():
            self.model.logit_scale.clamp_(0, math.log(self.hparams.max_logit_scale))

    # -- evaluation --------------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val: dict[str, list] = {"image": [], "text": [], "caption": []}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        img, txt = self(batch["image"], batch["caption"])
        self._val["image"].append(img.float())
        self._val["text"].append(txt.float())
        self._val["caption"].extend(batch["caption"])

    def on_validation_epoch_end(self) -> None:
        if not self._val["image"]:
            return
        scores = retrieval_scores(torch.cat(self._val["image"]), torch.cat(self._val["text"]), self._val["caption"],
                                  self.model.logit_scale.exp())
        self.log_dict({f"val/{k}": v for k, v in scores.items()}, prog_bar=True)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        img, txt = self(batch["image"], batch["caption"])
        return {"image_features": img, "text_features": txt}

    def on_predict_epoch_end(self) -> None:
        outputs = self.trainer.predict_loop.predictions
        if not outputs or self.global_rank != 0:
            return
        path = run_dir(self.trainer) / "clip_features.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **{k: torch.cat([o[k] for o in outputs]).float().cpu().numpy() for k in outputs[0]})
        announce(path, sum(len(o["image_features"]) for o in outputs), "image and caption embeddings")

    def configure_optimizers(self):
        decay = [p for n, p in self.model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
        rest = [p for n, p in self.model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
        # open_clip exempts gains, biases, embeddings and the logit scale from weight decay
        return configure_optim(self, [{"params": decay}, {"params": rest, "weight_decay": 0.0}], self.optim)


def retrieval_scores(img: torch.Tensor, txt: torch.Tensor, captions: list[str], scale: torch.Tensor
                     ) -> dict[str, torch.Tensor]:
    """``loss`` (the CLIP loss of the pairs), ``recall_at_1`` (image -> caption) and its chance level."""
    from torchmetrics.retrieval import RetrievalHitRate

    sims = img @ txt.T  # (N, N)
    ids = {c: i for i, c in enumerate(dict.fromkeys(captions))}
    caption_id = torch.tensor([ids[c] for c in captions], device=img.device)
    right = caption_id[:, None] == caption_id[None, :]  # (N, N): caption j is image i's text
    n = len(captions)
    recall = RetrievalHitRate(top_k=1)(sims.flatten(), right.flatten(),
                                      indexes=torch.arange(n, device=img.device).repeat_interleave(n))
    return {"loss": clip_loss(img, txt, scale), "recall_at_1": recall,
            "recall_at_1_chance": right.float().mean(1).mean()}
