"""The SSL losses as pure functions: BYOL's regression, SimCLR's NT-Xent, SupCon's L_out, and a
label-masked cross-entropy for probes on partly labeled data.

Shapes: ``B`` images per rank, ``V`` views per image, ``D`` embedding size, ``W`` ranks, ``C`` classes.

The two contrastive losses are one function (as in the SupCon paper, arXiv 2004.11362, section 3.2.1 and
eq. 2): every one of the ``W * B * V`` embeddings of the global batch is an anchor; its
positives are the *other* embeddings that share its id, every other embedding is a negative.
SimCLR (arXiv 2002.05709, eq. 1) gives every image its own id, so with ``V = 2`` each anchor
has exactly one positive and ``2N - 2`` negatives (``N = W * B``); SupCon uses class labels
as ids, so every same-class sample of the global batch is a positive.

Across DDP ranks, each rank scores only its own ``B * V`` anchors against the embeddings
gathered from all ranks (``gather_with_grad``, whose backward sends every rank's gradient
back to the rank that made the embedding). The rank losses average to the global loss, and
DDP's gradient averaging then gives exactly the gradient of the single-process loss on the
concatenated batch (tested in ``tests/test_contrastive.py``).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from lit_digest.core.dist import gather_no_grad, gather_with_grad, world

__all__ = ["byol_loss", "symmetric_byol_loss", "masked_cross_entropy", "contrastive_loss_by_ids",
           "per_anchor_contrastive_losses", "nt_xent_loss", "supcon_loss"]


def per_anchor_contrastive_losses(
    anchors: torch.Tensor,
    anchor_ids: torch.Tensor,
    keys: torch.Tensor,
    key_ids: torch.Tensor,
    anchor_offset: int,
    temperature: float,
    variant: Literal["out", "in"] = "out",
) -> torch.Tensor:
    """SupCon's per-anchor losses (arXiv 2004.11362, eqs. 2-3) of ``anchors`` against ``keys``.

    ``anchors`` are rows ``anchor_offset ... anchor_offset + M - 1`` of ``keys`` (the same
    embeddings, so an anchor is never its own negative or positive). For anchor ``i`` with
    cosine similarities ``s_ij`` to every key ``j != i``, ``p_ij = exp(s_ij / T) / sum_{a != i} exp(s_ia / T)``
    and ``P(i)`` the keys other than ``i`` with ``id == id_i``:

        L_out_i = -1/|P(i)| * sum_{p in P(i)} log p_ip         (eq. 2, the paper's choice)
        L_in_i  = -log( 1/|P(i)| * sum_{p in P(i)} p_ip )      (eq. 3)

    Anchors with no positive (possible only with one view and a class seen once) are left out.

    Args:
        anchors: ``(M, D)``; anchor_ids: ``(M,)`` integer ids.
        keys: ``(K, D)`` with ``K >= anchor_offset + M``; key_ids: ``(K,)``.
        anchor_offset: index of the first anchor among the keys.
        temperature: ``T`` > 0.
        variant: ``"out"`` or ``"in"``.
    Returns:
        ``(A,)``: the loss of each anchor that has a positive, ``A <= M``.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if variant not in ("out", "in"):
        raise ValueError(f"variant must be 'out' or 'in', got {variant!r}")
    m = anchors.shape[0]
    # at least float32, even under bf16/fp16 autocast: the log-sum-exp over ~2N logits of size up to 1/T
    # loses most of its precision in 16-bit floats; float64 inputs stay float64.
    dtype = torch.promote_types(anchors.dtype, torch.float32)
    with torch.autocast(device_type=anchors.device.type, enabled=False):
        anchors = F.normalize(anchors.to(dtype), dim=1)
        keys = F.normalize(keys.to(dtype), dim=1)
        logits = anchors @ keys.T / temperature  # (M, K)
    self_index = torch.arange(m, device=anchors.device) + anchor_offset  # (M,)
    not_self = torch.ones_like(logits, dtype=torch.bool)
    not_self[torch.arange(m, device=anchors.device), self_index] = False
    positive = (anchor_ids.view(-1, 1) == key_ids.view(1, -1)) & not_self  # (M, K)
    # log-softmax over every key but the anchor itself
    logits = logits.masked_fill(~not_self, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)  # (M, K); -inf on the diagonal
    num_pos = positive.sum(dim=1)  # (M,)
    has_pos = num_pos > 0
    if variant == "out":
        summed = torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(dim=1)  # (M,)
        return -summed[has_pos] / num_pos[has_pos]
    pos_lse = torch.logsumexp(log_prob.masked_fill(~positive, float("-inf")), dim=1)  # (M,) log sum_p p_ip
    return -(pos_lse[has_pos] - num_pos[has_pos].float().log())


def contrastive_loss_by_ids(*args, **kwargs) -> torch.Tensor:
    """The mean of ``per_anchor_contrastive_losses`` (same arguments) over the anchors that have a positive."""
    per_anchor = per_anchor_contrastive_losses(*args, **kwargs)
    return per_anchor.mean() if per_anchor.numel() else args[0].sum() * 0.0


def _global_contrastive(z: torch.Tensor, ids: torch.Tensor, temperature: float,
                        variant: Literal["out", "in"] = "out") -> torch.Tensor:
    """``z``: (B, V, D) this rank's embeddings; ``ids``: (B,) globally meaningful ids.

    The mean runs over the anchors of the *global* batch that have a positive: each rank returns
    ``W * (sum of its anchors' losses) / (anchors with a positive on all ranks)``, so that DDP's mean of the
    ranks' gradients is the gradient of the global mean even when the ranks score different numbers of
    anchors (one view, classes seen once), and the mean of the ranks' values is the global loss."""
    if z.ndim != 3:
        raise ValueError(f"expected embeddings of shape (B, V, D), got {tuple(z.shape)}")
    b, v, d = z.shape
    flat = z.reshape(b * v, d)  # (B*V, D), rows image-major: image 0 views 0..V-1, image 1 ...
    flat_ids = ids.repeat_interleave(v)  # (B*V,)
    rank, size = world()
    keys = gather_with_grad(flat)  # (W*B*V, D)
    key_ids = gather_no_grad(flat_ids)  # (W*B*V,)
    per_anchor = per_anchor_contrastive_losses(flat, flat_ids, keys, key_ids, rank * b * v, temperature, variant)
    count = torch.tensor([float(per_anchor.numel())], device=z.device)
    total = gather_no_grad(count).sum()  # anchors with a positive, all ranks
    if total == 0:
        return z.sum() * 0.0  # keep the graph: every rank must run backward under DDP
    return per_anchor.sum() * size / total


def nt_xent_loss(z: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """SimCLR's NT-Xent (arXiv 2002.05709, section 2.1, eq. 1), averaged over all anchors.

    Every image of the global batch is its own class: with ``V = 2`` each of the ``2N``
    anchors has one positive (its other view) and ``2N - 2`` negatives. ``V > 2`` gives the
    multi-view generalisation (each view's positives are the image's other ``V - 1`` views).

    Args:
        z: ``(B, V, D)`` projections of this rank's images (normalised here).
        temperature: the paper's ``tau`` (solo-learn's CIFAR setting: 0.2).
    """
    rank, _ = world()
    b = z.shape[0]
    ids = torch.arange(b, device=z.device) + rank * b  # (B,) unique across ranks
    return _global_contrastive(z, ids, temperature)


def supcon_loss(z: torch.Tensor, labels: torch.Tensor, temperature: float = 0.2,
                variant: Literal["out", "in"] = "out") -> torch.Tensor:
    """Supervised contrastive loss L_out^sup (arXiv 2004.11362, eq. 2), averaged over anchors.

    Every other embedding of the global batch (all ranks, all views) with the anchor's label
    is a positive. Unlabeled samples (label < 0, e.g. STL-10's unlabeled split) count as their
    own class: their only positives are their other views, as in SimCLR. With all labels
    distinct the loss equals ``nt_xent_loss`` on the same embeddings.

    Args:
        z: ``(B, V, D)`` projections, any number of views ``V`` (normalised here).
        labels: ``(B,)`` integer class labels, ``-1`` for unlabeled.
        temperature: ``tau`` (paper: 0.1; solo-learn's CIFAR setting: 0.2).
        variant: ``"out"`` (eq. 2, the paper's: it trains better, table 1) or ``"in"`` (eq. 3). solo-learn's
            SupCon reuses its SimCLR loss, ``-log sum_p p_ip``: L_in up to the constant ``log |P(i)|``, the
            same gradients, so ``"in"`` is the loss behind solo-learn's published SupCon numbers.
    """
    if labels.shape != z.shape[:1]:
        raise ValueError(
            f"supcon_loss: labels {tuple(labels.shape)} do not match embeddings {tuple(z.shape)} (B, V, D)"
        )
    rank, _ = world()
    b = z.shape[0]
    labels = labels.long()
    # Unlabeled samples get ids no class can have: -1 - (global sample index).
    unique = -1 - (torch.arange(b, device=z.device) + rank * b)
    ids = torch.where(labels >= 0, labels, unique)  # (B,)
    return _global_contrastive(z, ids, temperature, variant)


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL's regression loss (arXiv 2006.07733, eq. 2), averaged over the batch.

    ``L = || p/||p|| - z/||z|| ||^2 = 2 - 2 * <p, z> / (||p|| * ||z||)``.

    Args:
        p: online predictions, ``(B, D)``.
        z: target projections, ``(B, D)``; treated as a constant (stop-gradient).
    Returns:
        scalar tensor.
    """
    p = F.normalize(p, dim=-1)
    z = F.normalize(z.detach(), dim=-1)
    return (2 - 2 * (p * z).sum(dim=-1)).mean()


def symmetric_byol_loss(
    p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor
) -> torch.Tensor:
    """BYOL's symmetrized loss ``L + L~`` (arXiv 2006.07733, section 3.2).

    ``p1, p2``: online predictions of views 1 and 2; ``z1, z2``: target projections of
    views 1 and 2, all ``(B, D)``. View 1's prediction regresses view 2's target and
    vice versa.
    """
    return byol_loss(p1, z2) + byol_loss(p2, z1)


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -1) -> torch.Tensor:
    """Cross-entropy over the samples whose label is not ``ignore_index`` (unlabeled images,
    e.g. STL-10's unlabeled split); exactly 0 (with a graph) when no sample is labeled.

    logits: ``(B, C)``; labels: ``(B,)``.
    """
    total = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="sum")
    count = (labels != ignore_index).sum().clamp_min(1)  # no host sync: safe inside a step
    return total / count
