"""Contrastive losses: SimCLR's NT-Xent and SupCon's L_out, with negatives from every DDP rank.

Shapes: ``B`` images per rank, ``V`` views per image, ``D`` embedding size, ``W`` ranks.

Both losses are one function (as in the SupCon paper, arXiv 2004.11362, section 3.2.1 and
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

import torch
import torch.distributed as dist
import torch.nn.functional as F

__all__ = ["gather_with_grad", "gather_no_grad", "contrastive_loss_by_ids", "nt_xent_loss", "supcon_loss"]


def _world() -> tuple[int, int]:
    """(rank, world size); (0, 1) when not running distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """All-gather ``x`` (``(B, ...)``, same shape on every rank) into ``(W * B, ...)``, rank-major.

    Gradients flow back to every rank's slice (``torch.distributed.nn.functional.all_gather``:
    its backward sums the incoming gradients across ranks). The identity when not distributed.
    """
    _, world = _world()
    if world == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x), dim=0)


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """All-gather a tensor that needs no gradient (labels, ids): ``(B, ...) -> (W * B, ...)``."""
    _, world = _world()
    if world == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def contrastive_loss_by_ids(
    anchors: torch.Tensor,
    anchor_ids: torch.Tensor,
    keys: torch.Tensor,
    key_ids: torch.Tensor,
    anchor_offset: int,
    temperature: float,
) -> torch.Tensor:
    """SupCon's L_out (arXiv 2004.11362, eq. 2) of ``anchors`` against ``keys``.

    ``anchors`` are rows ``anchor_offset ... anchor_offset + M - 1`` of ``keys`` (the same
    embeddings, so an anchor is never its own negative or positive). For anchor ``i`` with
    cosine similarities ``s_ij`` to every key ``j != i``:

        L_i = -1/|P(i)| * sum_{p in P(i)} log( exp(s_ip / T) / sum_{a != i} exp(s_ia / T) ),

    ``P(i)`` = keys other than ``i`` with ``id == id_i``. Anchors with no positive are left
    out of the mean (possible only with one view and a class seen once).

    Args:
        anchors: ``(M, D)``; anchor_ids: ``(M,)`` integer ids.
        keys: ``(K, D)`` with ``K >= anchor_offset + M``; key_ids: ``(K,)``.
        anchor_offset: index of the first anchor among the keys.
        temperature: ``T`` > 0.
    Returns:
        scalar: the mean of ``L_i`` over the anchors that have a positive.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    m = anchors.shape[0]
    # float32 even under bf16/fp16 autocast: the log-sum-exp over ~2N logits of size up to 1/T
    # loses most of its precision in 16-bit floats.
    with torch.autocast(device_type=anchors.device.type, enabled=False):
        anchors = F.normalize(anchors.float(), dim=1)
        keys = F.normalize(keys.float(), dim=1)
        logits = anchors @ keys.T / temperature  # (M, K)
    self_index = torch.arange(m, device=anchors.device) + anchor_offset  # (M,)
    not_self = torch.ones_like(logits, dtype=torch.bool)
    not_self[torch.arange(m, device=anchors.device), self_index] = False
    positive = (anchor_ids.view(-1, 1) == key_ids.view(1, -1)) & not_self  # (M, K)
    # log-softmax over every key but the anchor itself
    logits = logits.masked_fill(~not_self, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)  # (M, K); -inf on the diagonal
    num_pos = positive.sum(dim=1)  # (M,)
    pos_log_prob = torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(dim=1)  # (M,)
    has_pos = num_pos > 0
    per_anchor = -pos_log_prob[has_pos] / num_pos[has_pos]
    if per_anchor.numel() == 0:
        return anchors.sum() * 0.0  # keep the graph: every rank must run backward under DDP
    return per_anchor.mean()


def _global_contrastive(z: torch.Tensor, ids: torch.Tensor, temperature: float) -> torch.Tensor:
    """``z``: (B, V, D) this rank's embeddings; ``ids``: (B,) globally meaningful ids."""
    if z.ndim != 3:
        raise ValueError(f"expected embeddings of shape (B, V, D), got {tuple(z.shape)}")
    b, v, d = z.shape
    flat = z.reshape(b * v, d)  # (B*V, D), rows image-major: image 0 views 0..V-1, image 1 ...
    flat_ids = ids.repeat_interleave(v)  # (B*V,)
    rank, _ = _world()
    keys = gather_with_grad(flat)  # (W*B*V, D)
    key_ids = gather_no_grad(flat_ids)  # (W*B*V,)
    return contrastive_loss_by_ids(flat, flat_ids, keys, key_ids, rank * b * v, temperature)


def nt_xent_loss(z: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """SimCLR's NT-Xent (arXiv 2002.05709, section 2.1, eq. 1), averaged over all anchors.

    Every image of the global batch is its own class: with ``V = 2`` each of the ``2N``
    anchors has one positive (its other view) and ``2N - 2`` negatives. ``V > 2`` gives the
    multi-view generalisation (each view's positives are the image's other ``V - 1`` views).

    Args:
        z: ``(B, V, D)`` projections of this rank's images (normalised here).
        temperature: the paper's ``tau`` (solo-learn's CIFAR setting: 0.2).
    """
    rank, _ = _world()
    b = z.shape[0]
    ids = torch.arange(b, device=z.device) + rank * b  # (B,) unique across ranks
    return _global_contrastive(z, ids, temperature)


def supcon_loss(z: torch.Tensor, labels: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """Supervised contrastive loss L_out^sup (arXiv 2004.11362, eq. 2), averaged over anchors.

    Every other embedding of the global batch (all ranks, all views) with the anchor's label
    is a positive. Unlabeled samples (label < 0, e.g. STL-10's unlabeled split) count as their
    own class: their only positives are their other views, as in SimCLR. With all labels
    distinct the loss equals ``nt_xent_loss`` on the same embeddings.

    Args:
        z: ``(B, V, D)`` projections, any number of views ``V`` (normalised here).
        labels: ``(B,)`` integer class labels, ``-1`` for unlabeled.
        temperature: ``tau`` (paper: 0.1; solo-learn's CIFAR setting: 0.2).
    """
    if labels.shape != z.shape[:1]:
        raise ValueError(
            f"supcon_loss: labels {tuple(labels.shape)} do not match embeddings {tuple(z.shape)} (B, V, D)"
        )
    rank, _ = _world()
    b = z.shape[0]
    labels = labels.long()
    # Unlabeled samples get ids no class can have: -1 - (global sample index).
    unique = -1 - (torch.arange(b, device=z.device) + rank * b)
    ids = torch.where(labels >= 0, labels, unique)  # (B,)
    return _global_contrastive(z, ids, temperature)
