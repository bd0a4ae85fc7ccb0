"""The judge of generated scenes: a small CNN that reads every attribute of a scene from its pixels.

Trained on procedural scenes only (never on generated images), it tells how well a generated image follows its
prompt, attribute by attribute, and how likely it looks shaded (the "unreal engine" test of ``experiment``).
It shares nothing with the VQGAN or the CLIP.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lit_digest.core.callbacks import run_dir
from lit_digest.core.lightning import LightningModule
from lit_digest.core.optim import Optim, configure_optim
from lit_digest.core.outputs import announce
from lit_digest.text2image.scenes import ATTRIBUTES

__all__ = ["AttributeNet", "SceneAttributeClassifier"]


class AttributeNet(nn.Module):
    """``(B, 3, H, W)`` in [-1, 1] -> one logit vector per attribute: a dict ``name -> (B, classes)``.

    Four conv-BN-ReLU blocks (the last three halve the size), global average pooling, one linear head each.
    """

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        layers, c_in = [], 3
        for i, c_out in enumerate((width, width * 2, width * 4, width * 4)):
            layers += [nn.Conv2d(c_in, c_out, 3, 2 if i else 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        # position needs where the shape is: the pooled map keeps a coarse 4x4 layout
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.heads = nn.ModuleDict({k: nn.Linear(c_in * 16, len(v)) for k, v in ATTRIBUTES.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.pool(self.features(x)).flatten(1)  # (B, C * 16)
        return {k: head(h) for k, head in self.heads.items()}


class SceneAttributeClassifier(LightningModule):
    """Trains ``AttributeNet`` on ``SceneDataModule`` batches (``image``, ``attributes``): the sum of the six
    cross-entropies. Logs ``val/acc_<attribute>`` and ``val/acc`` (their mean). ``predict`` writes every image's
    probabilities per attribute and its predicted class to ``attributes.csv``.

    Args:
        width: of ``AttributeNet``.
        optim: AdamW 2e-3, cosine.
    """

    def __init__(self, width: int = 32, optim: Optim = Optim(name="adamw", lr=2e-3, weight_decay=1e-4)) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.optim = optim
        self.net = AttributeNet(width)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Probabilities per attribute: ``name -> (B, classes)``."""
        return {k: v.softmax(-1) for k, v in self.net(images).items()}

    def _loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = self.net(batch["image"])
        target = batch["attributes"]
        loss = sum(F.cross_entropy(logits[k], target[:, j]) for j, k in enumerate(ATTRIBUTES))
        acc = {k: (logits[k].argmax(-1) == target[:, j]).float().mean() for j, k in enumerate(ATTRIBUTES)}
        return loss, acc

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, _ = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["image"]))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        loss, acc = self._loss(batch)
        n = len(batch["image"])
        self.log("val/loss", loss, batch_size=n)
        self.log_dict({f"val/acc_{k}": v for k, v in acc.items()}, batch_size=n)
        self.log("val/acc", torch.stack(list(acc.values())).mean(), prog_bar=True, batch_size=n)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        probs = self(batch["image"])
        return {"index": batch["index"], **probs}

    def on_predict_epoch_end(self) -> None:
        import pandas as pd

        outputs = self.trainer.predict_loop.predictions
        if not outputs or self.global_rank != 0:
            return
        columns: dict[str, np.ndarray] = {"index": torch.cat([o["index"] for o in outputs]).numpy()}
        for k, names in ATTRIBUTES.items():
            probs = torch.cat([o[k] for o in outputs]).float().cpu()
            for j, name in enumerate(names):
                columns[f"p_{k}_{name}"] = probs[:, j].numpy()
            columns[k] = np.asarray(names)[probs.argmax(-1).numpy()]
        path = run_dir(self.trainer) / "attributes.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(columns).to_csv(path, index=False)
        announce(path, len(columns["index"]), "attribute predictions")

    def configure_optimizers(self):
        return configure_optim(self, [{"params": list(self.net.parameters())}], self.optim)
