"""GANs N' Roses' own terms as pure functions (Chong & Forsyth, arXiv 2106.06561; the official
mchong6/GANsNRoses ``train.py``, whose weights the module uses). The adversarial, non-saturating and R1 terms
are the domain's general ones (``lit_digest.gan.losses``).

The idea: content is what an augmentation (pose, position, scale) changes, style what it leaves alone. A
training batch holds augmentations of one image, so their style codes must agree (``style_consistency_loss``);
translating to the other domain and back with a code of *another* augmentation must give the image back
(``shuffle_within_groups`` + ``cycle_loss``).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["style_consistency_loss", "style_reconstruction_loss", "cycle_loss", "shuffle_within_groups",
           "mix_styles"]


def style_consistency_loss(styles: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
    """``sum_d Var_b(s_bd)``: the spread of the style codes ``(B, D)`` of augmentations of one image (official
    ``A2B_style.var(0, unbiased=False).sum()``). ``groups`` ``(B,)`` names the source image of each code when a
    batch holds several: the per-group values are averaged over the groups (a group of one adds 0)."""
    if groups is None:
        return styles.var(0, unbiased=False).sum()
    _, index, counts = torch.unique(groups, return_inverse=True, return_counts=True)
    n = counts.to(styles.dtype)[:, None]  # (G, 1)
    mean = styles.new_zeros(len(counts), styles.shape[1]).index_add_(0, index, styles) / n  # (G, D)
    spread = (styles - mean[index]).pow(2)  # (B, D)
    per_group = spread.new_zeros(len(counts), styles.shape[1]).index_add_(0, index, spread) / n  # (G, D)
    return per_group.sum(1).mean()


def style_reconstruction_loss(recovered: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
    """``mean (s' - s)^2``: the style code read back from a translated image ``(B, D)`` against the code it was
    drawn with (official ``mse_criterion(A2B2A_style, input_A2B_style)``)."""
    return F.mse_loss(recovered, styles)


def cycle_loss(reconstructed: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """``mean (x'' - x)^2`` per pixel of ``(B, C, H, W)`` images (official ``F.mse_loss(fake_A2B2A, A)``)."""
    return F.mse_loss(reconstructed, images)


def shuffle_within_groups(x: torch.Tensor, groups: torch.Tensor | None = None,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """Rows of ``x`` ``(B, ...)`` permuted at random among the rows of the same group (all rows when ``groups``
    is None: the official ``shuffle_batch``)."""
    if groups is None:
        return x[torch.randperm(x.shape[0], generator=generator).to(x.device)]
    groups = groups.cpu()
    order = torch.arange(x.shape[0])
    for g in torch.unique(groups):
        rows = (groups == g).nonzero().squeeze(1)
        order[rows] = rows[torch.randperm(len(rows), generator=generator)]
    return x[order.to(x.device)]


def mix_styles(random: torch.Tensor, encoded: torch.Tensor, generator: torch.Generator | None = None
               ) -> torch.Tensor:
    """``B`` codes picked at random from the ``2B`` of ``random`` ``(B, D)`` and ``encoded`` ``(B, D)`` (official
    ``torch.cat([rand_A2B_style, aug_A2B_style], 0)[randperm(2B)][:B]``): the decoder learns from codes of
    N(0, I) and from codes of real target images alike."""
    order = torch.randperm(2 * random.shape[0], generator=generator).to(random.device)
    return torch.cat([random, encoded], 0)[order[: random.shape[0]]]
