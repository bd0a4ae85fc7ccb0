"""The latent-space views of GenRep (Jahanian et al., arXiv 2106.05258, section 3): anchors ``z`` from a
truncated normal and positives ``z + w`` with a truncated Gaussian walk ``w`` of scale ``sigma``.

The official data generation (ali-design/GenRep, ``utils/generate_dataset_*_gauss*_Nsamples.py``) draws

    z = truncation * truncnorm(-2, 2).rvs(dim)            (the anchor: N(0, I) cut at +-2)
    w = truncation * truncnorm(-2, 2, scale=sigma).rvs(dim)  (the walk: N(0, sigma^2 I) cut at +-2 sigma)

with ``truncation = 1`` (its released models are named ``tr2.0``, the cut), then renders ``G(z)`` and 20
neighbours ``G(z + w_k)`` per anchor. ``bound`` below is that cut (2.0) in units of the standard deviation;
the walk is cut at ``bound * sigma``, so that ``sigma`` alone sets the scale of the latent distance between
two views: ``E||w||^2 = dim * sigma^2 * c(bound)`` with ``c(2) = 0.774`` (``truncated_normal_variance``).
"""

from __future__ import annotations

import math

import torch

__all__ = ["truncated_normal", "truncated_normal_variance", "LatentWalk"]


def truncated_normal(shape: tuple[int, ...], bound: float = 2.0, generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """``N(0, 1)`` samples cut to ``[-bound, bound]``, by inverting the normal CDF on a uniform draw of
    ``[Phi(-bound), Phi(bound)]`` (exact, no rejection; what scipy's ``truncnorm.rvs(-bound, bound)`` samples)."""
    if bound <= 0:
        raise ValueError(f"truncated_normal: bound must be > 0, got {bound}")
    lo = 0.5 * (1.0 + math.erf(-bound / math.sqrt(2.0)))  # Phi(-bound)
    u = torch.rand(shape, generator=generator, device=device)
    u = lo + (1.0 - 2.0 * lo) * u  # U(Phi(-b), Phi(b))
    x = math.sqrt(2.0) * torch.erfinv(2.0 * u - 1.0)
    return x.clamp_(-bound, bound)  # erfinv at the float32 edges


def truncated_normal_variance(bound: float = 2.0) -> float:
    """Variance of ``N(0, 1)`` cut to ``[-bound, bound]``: ``1 - 2 b phi(b) / (2 Phi(b) - 1)`` (0.774 at b = 2)."""
    phi = math.exp(-bound * bound / 2.0) / math.sqrt(2.0 * math.pi)
    mass = math.erf(bound / math.sqrt(2.0))
    return 1.0 - 2.0 * bound * phi / mass


class LatentWalk:
    """Draws GenRep's latent views: anchors ``z`` (a truncated normal), ``n_positives`` walks ``z + w_j`` with
    ``w_j ~ N(0, sigma^2 I)`` cut at ``bound * sigma`` (the paper's "Gaussian" latent transformation, its best
    for BigBiGAN and BigGAN, section 3 and table 1), and a class per anchor for a class-conditional generator
    (the positives keep the anchor's class: the walk moves ``z`` only, as the official BigGAN data sets).

    ``sigma = 0`` gives positives equal to their anchor: contrastive learning from pixel augmentations alone.
    The paper sweeps sigma and finds an inverse U (the official ``utils/plot_std_vs_acc.ipynb``, ImageNet-100
    top-1 of an unconditional BigBiGAN: 60.22 / 63.18 / 65.46 / 65.42 / 64.42 at sigma 0.05 / 0.1 / 0.2 / 0.3 /
    0.4); the released unconditional BigBiGAN encoders use sigma 0.2, the class-conditional BigGAN ones 1.0.

    Args:
        latent_dim: size of ``z``.
        sigma: standard deviation of the walk (before the cut).
        bound: the cut of anchors and walk, in standard deviations (the official 2.0).
        num_classes: classes of a class-conditional generator (0: unconditional, no class drawn).
    """

    def __init__(self, latent_dim: int, sigma: float = 0.2, bound: float = 2.0, num_classes: int = 0) -> None:
        if latent_dim < 1:
            raise ValueError(f"LatentWalk: latent_dim must be >= 1, got {latent_dim}")
        if sigma < 0:
            raise ValueError(f"LatentWalk: sigma must be >= 0, got {sigma}")
        if bound <= 0:
            raise ValueError(f"LatentWalk: bound must be > 0, got {bound}")
        if num_classes < 0:
            raise ValueError(f"LatentWalk: num_classes must be >= 0, got {num_classes}")
        self.latent_dim, self.sigma, self.bound, self.num_classes = latent_dim, sigma, bound, num_classes

    def anchors(self, n: int, generator: torch.Generator | None = None,
                device: torch.device | str = "cpu") -> torch.Tensor:
        """``(n, latent_dim)`` anchor codes."""
        return truncated_normal((n, self.latent_dim), self.bound, generator, device)

    def walk(self, z: torch.Tensor, n_positives: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, n_positives, latent_dim)`` codes ``z + w`` around the anchors ``z`` (n, latent_dim)."""
        n = z.shape[0]
        if self.sigma == 0:
            return z.unsqueeze(1).expand(n, n_positives, self.latent_dim).clone()
        w = self.sigma * truncated_normal((n, n_positives, self.latent_dim), self.bound, generator, z.device)
        return z.unsqueeze(1) + w

    def classes(self, n: int, generator: torch.Generator | None = None,
                device: torch.device | str = "cpu") -> torch.Tensor | None:
        """``(n,)`` uniform classes for a class-conditional generator; None for an unconditional one."""
        if self.num_classes == 0:
            return None
        return torch.randint(self.num_classes, (n,), generator=generator, device=device)

    def sample(self, n: int, n_positives: int = 1, generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Anchors ``(n, D)``, positives ``(n, n_positives, D)`` and classes ``(n,)`` (None: unconditional)."""
        z = self.anchors(n, generator, device)
        return z, self.walk(z, n_positives, generator), self.classes(n, generator, device)

    def expected_distance(self) -> float:
        """``sqrt(E||w||^2)``, the root-mean-square latent distance between an anchor and its positive."""
        return self.sigma * math.sqrt(self.latent_dim * truncated_normal_variance(self.bound))

    def __repr__(self) -> str:
        return (f"LatentWalk(latent_dim={self.latent_dim}, sigma={self.sigma}, bound={self.bound}, "
                f"num_classes={self.num_classes})")
