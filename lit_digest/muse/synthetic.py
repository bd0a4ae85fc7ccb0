"""A synthetic bilingual pair with a known answer: a source space, a rotated noisy copy with a shuffled
vocabulary, and the planted gold dictionary. Offline data for tests, demos and benchmarks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from lit_digest.muse.vec_io import Embeddings

__all__ = ["SyntheticPair", "make_synthetic_pair"]


@dataclass
class SyntheticPair:
    src: Embeddings
    tgt: Embeddings
    rotation: Tensor  # (d, d): tgt row of word i's translation ~= src[i] @ rotation.T
    gold: Tensor  # (n, 2) every (src id, tgt id) translation pair, by source rank


def make_synthetic_pair(
    n_words: int = 2000,
    dim: int = 32,
    *,
    noise: float = 0.02,
    n_clusters: int = 24,
    n_identical: int = 0,
    rotation_angle: float | None = None,
    seed: int = 0,
) -> SyntheticPair:
    """Two vocabularies whose target space is an unknown rotation of the source plus noise.

    Source rows: ``dim`` independent, skewed (centred exponential) coordinates with spreads from
    1 down to 0.2, optionally shifted by ``n_clusters`` random centres, in a random basis. Distinct
    spreads pin the axes and skewness their signs, so only the planted rotation maps one cloud
    onto the other and the adversarial game has a single answer. Target row of word i's
    translation: ``src[i] @ R.T + noise * N(0, I)``, then the target vocabulary is shuffled.

    ``rotation_angle``: None draws R uniformly (QR of a Gaussian matrix); a float draws
    ``R = expm(angle * A)`` with ``A`` a random skew-symmetric matrix whose eigen-angles are of
    order 1 rad, which keeps R at a controlled distance from the identity where MUSE starts
    (``||R - I||_F`` about 3.8 in 16-d for angle 1, against 5.7 for a uniform R). Word strings
    differ between the languages except for ``n_identical`` random translation pairs, which
    share their spelling (for the identical-strings seed).
    """
    g = torch.Generator().manual_seed(seed)
    # independent skewed coordinates with distinct spreads: second moments fix the axes, third
    # moments their signs, so the rotation is identifiable from the two clouds alone
    scales = torch.logspace(0, -0.7, dim)  # 1 ... 0.2
    x = (-torch.rand(n_words, dim, generator=g).log() - 1.0) * scales  # centred exponential
    if n_clusters > 0:
        centers = 0.5 * torch.randn(n_clusters, dim, generator=g) * scales
        x = x + centers[torch.randint(n_clusters, (n_words,), generator=g)]
    basis, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g))
    x = x @ basis.t()  # the source space itself is not axis-aligned
    if rotation_angle is None:
        rotation, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g))  # Haar-like, any angle
    else:
        skew = torch.randn(dim, dim, generator=g)
        skew = (skew - skew.t()) / math.sqrt(2 * dim)  # eigen-angles of size ~1
        rotation = torch.linalg.matrix_exp(rotation_angle * skew)
    y = x @ rotation.t() + noise * torch.randn(n_words, dim, generator=g)
    perm = torch.randperm(n_words, generator=g)  # target row perm[k] holds source word k's translation
    y_shuffled = torch.empty_like(y)
    y_shuffled[perm] = y
    src_words = [f"s{i}" for i in range(n_words)]
    tgt_words = [f"t{int(j)}" for j in torch.argsort(perm)]  # target row r translates source argsort(perm)[r]
    shared = torch.randperm(n_words, generator=g)[:n_identical]
    for i in shared.tolist():
        src_words[i] = tgt_words[int(perm[i])] = f"w{i}"
    gold = torch.stack([torch.arange(n_words), perm], dim=1)
    return SyntheticPair(Embeddings(src_words, x), Embeddings(tgt_words, y_shuffled), rotation, gold)
