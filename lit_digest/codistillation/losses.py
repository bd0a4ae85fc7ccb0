"""Distillation losses and agreement metrics, as pure functions.

Used by codistillation (Anil et al., "Large scale distributed neural network training through online
distillation", arXiv 1804.03235). Every function takes logits flattened to ``(N, C)``: N predictions over C
classes (an image classifier gives ``N = B``; a language model gives ``N = B * T`` with ``C`` the vocabulary).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

DistillKind = Literal["cross_entropy", "kl"]


def teacher_mean_probs(teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Mean of the teachers' predicted distributions.

    Algorithm 1 of arXiv 1804.03235 (Sec. 2) distils towards the average of the other models' predictions
    (probabilities, not logits).

    Args:
        teacher_logits: ``(K, N, C)`` logits of K teachers on the same N inputs.
        temperature: softmax temperature T > 0.

    Returns:
        ``(N, C)`` probabilities, rows sum to one.
    """
    if teacher_logits.dim() != 3:
        raise ValueError(f"teacher_logits must be (K, N, C), got shape {tuple(teacher_logits.shape)}")
    return torch.softmax(teacher_logits.float() / temperature, dim=-1).mean(dim=0)  # (N, C)


def soft_cross_entropy(student_logits: Tensor, target_probs: Tensor, temperature: float = 1.0) -> Tensor:
    """Cross-entropy ``-sum_c p_c log q_c`` between soft targets ``p`` and the student's tempered
    softmax ``q``.

    Multiplied by ``T**2`` so that its gradient keeps the same scale for every temperature (Hinton et al.,
    arXiv 1503.02531, Sec. 2). With ``T = 1`` this is the plain soft-label cross-entropy used as the
    distillation loss ``psi`` in arXiv 1804.03235, Algorithm 1.

    Args:
        student_logits: ``(N, C)``.
        target_probs: ``(N, C)`` probabilities (no gradient is expected to flow into them).
        temperature: T > 0.

    Returns:
        scalar, mean over the N rows.
    """
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1)  # (N, C)
    return -(target_probs * log_q).sum(dim=-1).mean() * temperature**2


def kl_to_targets(student_logits: Tensor, target_probs: Tensor, temperature: float = 1.0) -> Tensor:
    """``KL(p || q)`` between soft targets ``p`` and the student's tempered softmax ``q``, times ``T**2``.

    Equals :func:`soft_cross_entropy` minus the (student-independent) entropy of ``p``: same gradient, but
    zero when the student matches the teachers, which makes the logged value easier to read.

    Args:
        student_logits: ``(N, C)``.
        target_probs: ``(N, C)`` probabilities.
        temperature: T > 0.

    Returns:
        scalar, mean over the N rows.
    """
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1)  # (N, C)
    log_p = torch.log(target_probs.clamp_min(torch.finfo(target_probs.dtype).tiny))
    return (target_probs * (log_p - log_q)).sum(dim=-1).mean() * temperature**2


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    temperature: float = 1.0,
    kind: DistillKind = "cross_entropy",
) -> Tensor:
    """Distillation term of codistillation: the student against the mean of the teachers' predictions.

    Args:
        student_logits: ``(N, C)``.
        teacher_logits: ``(K, N, C)``; detached here, so teachers never receive a gradient.
        temperature: T > 0.
        kind: ``"cross_entropy"`` (soft cross-entropy) or ``"kl"``.

    Returns:
        scalar.
    """
    target = teacher_mean_probs(teacher_logits.detach(), temperature)  # (N, C)
    if kind == "cross_entropy":
        return soft_cross_entropy(student_logits, target, temperature)
    if kind == "kl":
        return kl_to_targets(student_logits, target, temperature)
    raise ValueError(f"unknown distillation loss kind {kind!r}; use 'cross_entropy' or 'kl'")


def prediction_churn(predictions_a: Tensor, predictions_b: Tensor) -> Tensor:
    """Fraction of inputs on which two models' top-1 predictions differ: "prediction churn", the
    reproducibility
    measure of arXiv 1804.03235, Sec. 3.

    Args:
        predictions_a: ``(N,)`` class indices (or ``(N, C)`` logits, reduced by argmax).
        predictions_b: same shape as ``predictions_a``.

    Returns:
        scalar in [0, 1].
    """
    if predictions_a.dim() == 2:
        predictions_a = predictions_a.argmax(dim=-1)
    if predictions_b.dim() == 2:
        predictions_b = predictions_b.argmax(dim=-1)
    return (predictions_a != predictions_b).float().mean()


def mean_pairwise_churn(predictions: Tensor) -> Tensor:
    """Mean churn over all unordered pairs of G models.

    Args:
        predictions: ``(G, N)`` class indices of G models on the same N inputs.

    Returns:
        scalar in [0, 1].
    """
    num_models = predictions.shape[0]
    if num_models < 2:
        return predictions.new_zeros((), dtype=torch.float)
    pairs = [
        prediction_churn(predictions[i], predictions[j])
        for i in range(num_models)
        for j in range(i + 1, num_models)
    ]
    return torch.stack(pairs).mean()
