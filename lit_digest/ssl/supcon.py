"""Supervised Contrastive Learning (Khosla et al., arXiv 2004.11362)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from lit_digest.core.optim import Optim
from lit_digest.ssl.losses import supcon_loss
from lit_digest.ssl.simclr import SimCLR

__all__ = ["SupCon"]


class SupCon(SimCLR):
    """SimCLR's architecture with labels: every sample of the anchor's class in the global
    batch (all views, all DDP ranks) is a positive, the rest are negatives: the paper's
    L_out^sup (eq. 2, section 3.2.1; L_out beat L_in, table 1), any number of views per
    image (``lit_digest.ssl.SimCLRViews(n_views=...)``). Unlabeled samples (label -1)
    are their own class (their positives are their other views).

    Training batches are ``(views, labels)``; evaluation batches ``(images, labels)``.
    ``forward`` returns encoder features, and ``self.backbone`` is the encoder to keep.

    Defaults are solo-learn's CIFAR ResNet-18 run (``scripts/pretrain/cifar/supcon.yaml``:
    projector 2048 -> 256 without BatchNorm, temperature 0.2, SGD (momentum 0.9) lr 0.4 at batch 256
    (scaled linearly), weight decay 1e-5, 10 warmup epochs from 3e-5 then cosine decay, SimCLR's
    symmetric views) but the loss: solo-learn trains with ``-log sum_p p_ip`` (L_in up to a constant,
    ``variant="in"``) and publishes 93.82% CIFAR-10 / 70.38% CIFAR-100 online linear accuracy after
    1000 epochs for it; the default here is the paper's L_out, so those numbers belong to
    ``variant: in``. The paper's CIFAR runs (official code, HobbitLong/SupContrast README) use batch
    1024, lr 0.5, temperature 0.1 and a 128-d projection.

    Args:
        backbone: as ``SimCLR``'s (None: ``SmallConvNet(width=16)``).
        optim: SGD as above.
        variant: ``"out"`` (the paper's L_out, eq. 2) or ``"in"`` (eq. 3; the loss solo-learn trains with,
            whose published numbers are quoted above: see ``lit_digest.ssl.losses.supcon_loss``).
        **kwargs: every argument of ``SimCLR``.
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        optim: Optim = Optim(name="sgd", lr=0.4, weight_decay=1e-5, momentum=0.9, scale_lr_by_batch=True,
                             warmup_epochs=10, warmup_start_lr=3e-5),
        variant: Literal["out", "in"] = "out",
        **kwargs,
    ) -> None:
        if variant not in ("out", "in"):
            raise ValueError(f"SupCon: variant must be 'out' or 'in', got {variant!r}")
        super().__init__(backbone, optim=optim, **kwargs)

    min_views = 1  # same-class samples are positives even with a single view

    def contrastive_loss(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """SupCon (L_out or L_in) of the projections ``z`` (B, V, P) with ``labels`` (B,)."""
        return supcon_loss(z, labels, self.hparams.temperature, self.hparams.variant)
