"""Prompts of VQGAN+CLIP and their loss: the notebooks' syntax and the squared great-circle distance.

Syntax (Crowson's notebooks; nerdyrodent/VQGAN-CLIP ``generate.py``, ``parse_prompt`` and ``--prompts``): a prompt
string holds several prompts separated by ``|``, each ``text``, ``text:weight`` or ``text:weight:stop``::

    "a red circle | blue background:0.5 | text:-1"

A negative weight pushes the image away from that text. ``stop`` ends a prompt's pull once its distance falls
below the value (the notebooks' ``replace_grad(dists, torch.maximum(dists, stop))``: the forward value is the
distance, the gradient is the one of ``max(distance, stop)``, zero below the stop). The notebooks split on the last
two colons and let ``float`` crash on anything else; here a colon that does not introduce a weight or a stop is
one clear error.

Loss (``Prompt.forward`` there): with ``u = x / |x|`` and ``v = e / |e|``, the squared great-circle distance

    d(x, e) = 2 * arcsin(|u - v| / 2)^2

(the angle between ``u`` and ``v`` is ``2 arcsin(|u - v| / 2)``, so ``d = angle^2 / 2``), averaged over the
cutouts and weighted by ``|weight|`` with the sign of the weight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

__all__ = ["Prompt", "parse_prompt", "parse_prompts", "spherical_distance", "prompt_loss", "ReplaceGrad"]


@dataclass(frozen=True)
class Prompt:
    """One prompt: its text (or an image path), weight and stop."""

    text: str
    weight: float = 1.0
    stop: float = -math.inf


def _number(value: str, what: str, prompt: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"prompt {prompt!r}: {what} {value.strip()!r} is not a number; write 'text', 'text:weight' "
                         "or 'text:weight:stop' (e.g. 'a red circle:0.5', 'text:-1'), without other colons"
                         ) from None
    if not math.isfinite(number) and not (what == "the stop" and number == -math.inf):
        raise ValueError(f"prompt {prompt!r}: {what} must be finite, got {value.strip()!r}")
    return number


def parse_prompt(prompt: str) -> Prompt:
    """``"text"``, ``"text:weight"`` or ``"text:weight:stop"`` (split at the last two colons, as the notebooks)."""
    parts = prompt.rsplit(":", 2)
    if prompt.count(":") > 2:
        raise ValueError(f"prompt {prompt!r} has {prompt.count(':')} colons; write 'text', 'text:weight' or "
                         "'text:weight:stop' (a weight or a stop that is not a number, or a colon in the text)")
    text = parts[0].strip()
    weight = _number(parts[1], "the weight", prompt) if len(parts) > 1 else 1.0
    stop = _number(parts[2], "the stop", prompt) if len(parts) > 2 else -math.inf
    if not text:
        raise ValueError(f"prompt {prompt!r} has no text: write e.g. 'a red circle' or 'a red circle:0.5'")
    if weight == 0:
        raise ValueError(f"prompt {prompt!r}: a weight of 0 does nothing; leave the prompt out or give it a weight")
    return Prompt(text, weight, stop)


def parse_prompts(prompts: str) -> list[Prompt]:
    """Every ``|``-separated prompt of ``prompts``; an empty string (or only separators) is an error."""
    if not isinstance(prompts, str):
        raise TypeError(f"a prompt is a string such as 'a red circle | blue background:0.5', got {prompts!r}")
    pieces = [p.strip() for p in prompts.split("|")]
    if not any(pieces):
        raise ValueError("the prompt is empty: give a text such as 'a red circle | blue background:0.5'")
    empty = [i for i, p in enumerate(pieces) if not p]
    if empty:
        raise ValueError(f"prompt {prompts!r} has an empty part between '|' separators (part {empty[0] + 1})")
    return [parse_prompt(p) for p in pieces]


class ReplaceGrad(torch.autograd.Function):
    """``forward`` returns ``x_forward``, ``backward`` sends the gradient to ``x_backward`` (the notebooks' trick)."""

    @staticmethod
    def forward(ctx, x_forward: torch.Tensor, x_backward: torch.Tensor) -> torch.Tensor:
        ctx.shape = x_backward.shape
        return x_forward

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, grad.sum_to_size(ctx.shape)


def spherical_distance(x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """``2 arcsin(|x/|x| - e/|e|| / 2)^2`` of every pair: ``(..., N, D), (..., P, D) -> (..., N, P)``."""
    u = F.normalize(x, dim=-1).unsqueeze(-2)  # (..., N, 1, D)
    v = F.normalize(e, dim=-1).unsqueeze(-3)  # (..., 1, P, D)
    return (u - v).norm(dim=-1).div(2).arcsin().pow(2).mul(2)


def prompt_loss(features: torch.Tensor, embeds: torch.Tensor, weights: torch.Tensor, stops: torch.Tensor
                ) -> torch.Tensor:
    """The notebooks' prompt loss per image: ``sum_p |w_p| * mean_c (sign(w_p) d(f_c, e_p) with the stop)``.

    ``features (B, C, D)`` of every image's ``C`` cutouts, ``embeds (B, P, D)`` its ``P`` prompts (padding has
    weight 0), ``weights, stops (B, P)``; returns ``(B,)``.
    """
    dists = spherical_distance(features, embeds) * weights.sign()[:, None, :]  # (B, C, P)
    dists = ReplaceGrad.apply(dists, torch.maximum(dists, stops[:, None, :].to(dists.dtype)))
    return (weights.abs() * dists.mean(1)).sum(-1)  # (B,)
