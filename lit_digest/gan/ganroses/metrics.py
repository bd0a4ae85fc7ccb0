"""What GANs N' Roses claims, measured: style codes that ignore augmentations, encoded styles distributed as
N(0, I), outputs in the target domain (an independent classifier's verdict and KID on its features), diverse
outputs for random styles, and video frames that change only as much as their inputs.

The classifier is trained here on real images of both domains, never on outputs; its pooled features (the mean
of every block's feature map, concatenated) are the feature space of KID and of the diversity measure.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from lit_digest.gan.ganroses.data import Augmentation, random_views

__all__ = ["style_spread", "gaussian_fit", "DomainClassifier", "train_domain_classifier", "target_rate", "kid",
           "pairwise_distance", "moving_frames", "flicker"]


@torch.no_grad()
def style_spread(encode_style: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, aug: Augmentation,
                 views: int = 8, seed: int = 0) -> dict[str, float]:
    """Spread of style codes ``sum_d Var`` across ``views`` augmentations of each image (``within``, averaged
    over the images) and across the images (``across``: of one augmentation per image); ``ratio`` within/across."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.stack([encode_style(random_views(images, aug, g)) for _ in range(views)], 1)  # (M, V, D)
    within = codes.var(1, unbiased=False).sum(1).mean().item()
    across = codes[:, 0].var(0, unbiased=False).sum().item()
    return {"within": within, "across": across, "ratio": within / max(across, 1e-12)}


def gaussian_fit(codes: torch.Tensor) -> dict[str, float]:
    """How far codes ``(M, D)`` are from N(0, I): ``mean_norm`` ``||mean||``, ``cov_error`` ``||Cov - I||_F /
    sqrt(D)`` (0 for a perfect fit; a sample of M codes from N(0, I) itself gives about ``sqrt((D + 1) / M)``)."""
    d = codes.shape[1]
    cov = torch.cov(codes.T, correction=0).reshape(d, d)
    return {"mean_norm": codes.mean(0).norm().item(),
            "cov_error": (cov - torch.eye(d, dtype=codes.dtype)).norm().item() / math.sqrt(d)}


class DomainClassifier(nn.Module):
    """Domain A (0) or B (1): four stride-2 conv blocks, global average pooling, a linear layer.
    ``features(x)``: the pooled output of every block, concatenated ``(B, sum widths)``."""

    def __init__(self, in_channels: int = 3, widths: Sequence[int] = (16, 32, 64, 64)) -> None:
        super().__init__()
        blocks, c = [], in_channels
        for w in widths:
            blocks.append(nn.Sequential(nn.Conv2d(c, w, 3, stride=2, padding=1), nn.BatchNorm2d(w), nn.ReLU()))
            c = w
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(c, 2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        pooled = []
        for block in self.blocks:
            x = block(x)
            pooled.append(x.mean((2, 3)))
        return torch.cat(pooled, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, S, S) in [-1, 1] -> (B, 2) logits
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean((2, 3)))


def train_domain_classifier(train_a: torch.Tensor, train_b: torch.Tensor, aug: Augmentation, steps: int = 300,
                            batch_size: int = 64, lr: float = 1e-3, seed: int = 0) -> DomainClassifier:
    """A ``DomainClassifier`` fitted on augmented real images of A (label 0) and B (label 1), half of each per batch."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = DomainClassifier(train_a.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    half = batch_size // 2
    for _ in range(steps):
        a = train_a[torch.randint(len(train_a), (half,), generator=g)]
        b = train_b[torch.randint(len(train_b), (half,), generator=g)]
        x = random_views(torch.cat([a, b]), aug, g)
        y = torch.cat([torch.zeros(half), torch.ones(half)]).long()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def target_rate(classifier: DomainClassifier, images: torch.Tensor, target: int) -> float:
    """Fraction of ``images`` the classifier puts in domain ``target`` (0: A, 1: B)."""
    return (classifier(images).argmax(1) == target).float().mean().item()


@torch.no_grad()
def kid(features: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
        subsets: int = 50, seed: int = 0) -> float:
    """Kernel inception distance (Binkowski et al., arXiv 1801.01401) between image sets, on ``features``
    (torchmetrics' ``KernelInceptionDistance`` with a custom feature network; cubic kernel, ``subsets`` random
    subsets of the smaller set's size)."""
    from torchmetrics.image.kid import KernelInceptionDistance

    class Wrapped(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return features(x)

    torch.manual_seed(seed)
    metric = KernelInceptionDistance(feature=Wrapped(), subsets=subsets, subset_size=min(len(real), len(fake)))
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return metric.compute()[0].item()


def pairwise_distance(features: torch.Tensor) -> float:
    """Mean Euclidean distance between the feature vectors of each group ``(M, N, F)``, over pairs and groups."""
    pairs = list(itertools.combinations(range(features.shape[1]), 2))
    i, j = torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs])
    return (features[:, i] - features[:, j]).norm(dim=2).mean().item()


def moving_frames(image: torch.Tensor, frames: int = 24, shift: float = 0.15, turn: float = 8.0) -> torch.Tensor:
    """A smoothly moving 'video' of one image ``(C, S, S) -> (T, C, S, S)``: it slides sideways and turns, by
    ``shift`` (fraction of the width) and ``turn`` degrees at most, along a sine (uneven speed: the frame-to-frame
    change varies, so that the output's change can be seen to follow it)."""
    t = torch.linspace(0, 2 * math.pi, frames)
    x, angle = shift * 2 * torch.sin(t), torch.deg2rad(turn * torch.sin(t))
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, sin, -x], 1), torch.stack([-sin, cos, torch.zeros(frames)], 1)], 1)
    batch = image[None].expand(frames, -1, -1, -1)
    grid = F.affine_grid(theta.to(image.dtype), list(batch.shape), align_corners=False)
    return F.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=False)


def flicker(translate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], frames: torch.Tensor,
            latent_dim: int, seed: int = 0) -> dict[str, float]:
    """Frame-to-frame change (mean |difference| per pixel) of the input ``(T, C, S, S)`` and of its translation
    with one fixed style (``translate(frames, styles (T, D))``), their correlation over the T - 1 frame pairs, and
    the output's change when the style is redrawn at every frame (what flicker would look like)."""
    g = torch.Generator().manual_seed(seed)
    fixed = torch.randn(1, latent_dim, generator=g).expand(len(frames), -1)
    redrawn = torch.randn(len(frames), latent_dim, generator=g)

    def change(x: torch.Tensor) -> torch.Tensor:
        return (x[1:] - x[:-1]).abs().flatten(1).mean(1)  # (T - 1,)

    d_in, d_fixed, d_redrawn = change(frames), change(translate(frames, fixed)), change(translate(frames, redrawn))
    corr = torch.corrcoef(torch.stack([d_in, d_fixed]))[0, 1].item()
    return {"input_change": d_in.mean().item(), "output_change": d_fixed.mean().item(), "correlation": corr,
            "redrawn_change": d_redrawn.mean().item()}
