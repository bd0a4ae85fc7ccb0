"""Sampling from a causal language model: temperature, top-k, nucleus (top-p), with or without the KV cache.

Top-k keeps the k most likely tokens (Fan et al., arXiv 1805.04833); top-p keeps the smallest set whose
probability reaches p (Holtzman et al., arXiv 1904.09751); temperature 0 is greedy decoding. mesh-transformer-jax
samples GPT-J with top-p 0.9 and temperature 1 (``mesh_transformer/sampling.py``, ``nucleaus_sample``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from lit_digest.text.gptj.model import KVCache

__all__ = ["filter_logits", "sample_next", "left_pad", "generate"]


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """``logits`` ``(B, V)`` with every token outside the top-k and outside the nucleus set to -inf. The most
    likely token always stays."""
    if top_k is not None and top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
        probs = sorted_logits.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs  # probability of the tokens ranked above each one
        drop_sorted = before >= top_p  # the first token has before = 0 and always stays
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next(logits: Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                generator: torch.Generator | None = None) -> Tensor:
    """One token per row of ``logits`` ``(B, V)``: the argmax when ``temperature == 0``, else a draw from
    ``softmax(filter(logits) / temperature)``. Returns ``(B,)`` int64."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = filter_logits(logits.float() / temperature, top_k, top_p).softmax(dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int,
             device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Prompts of different lengths as one left-padded ``(B, L)`` batch and its ``(B, L)`` mask (1 = real)."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    length = max(len(p) for p in prompts)
    tokens = torch.full((len(prompts), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), length), dtype=torch.long)
    for i, p in enumerate(prompts):
        tokens[i, length - len(p):] = torch.as_tensor(list(p), dtype=torch.long)
        mask[i, length - len(p):] = 1
    return tokens.to(device), mask.to(device)


@torch.no_grad()
def generate(model: nn.Module, prompts: Sequence[Sequence[int]], max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, use_cache: bool = True,
             eos_token_id: int | None = None, pad_token_id: int = 0,
             generator: torch.Generator | None = None,
             stop_when: Callable[[Tensor], Tensor] | None = None) -> list[list[int]]:
    """The new tokens for each prompt (up to and including ``eos_token_id``, if it comes).

    With ``use_cache`` the prompt is read once and every step feeds one token against the ``KVCache``; without it
    every step re-reads the whole sequence. Both give the same tokens (the tests check it). ``stop_when`` (e.g. a
    stop string seen in the decoded text) gets the new tokens so far ``(B, t)`` after every step and returns the
    rows that are done ``(B,)``: they get padding from then on, and the loop ends when every row is done.
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    device = next(model.parameters()).device
    tokens, mask = left_pad(prompts, pad_token_id, device)  # (B, L)
    B = tokens.shape[0]
    done = torch.zeros(B, dtype=torch.bool, device=device)
    out: list[Tensor] = []
    cache = KVCache(len(model.h)) if use_cache else None
    step_tokens = tokens
    for _ in range(max_new_tokens):
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # (B, L): real tokens count from 0 after the padding
        if cache is None:
            logits = model(tokens, attention_mask=mask, position_ids=positions)
        else:
            logits = model(step_tokens, cache=cache, attention_mask=mask,
                           position_ids=positions[:, -step_tokens.shape[1]:])
        nxt = sample_next(logits[:, -1], temperature, top_k, top_p, generator)  # (B,)
        nxt = torch.where(done, torch.full_like(nxt, pad_token_id), nxt)
        out.append(nxt)
        if eos_token_id is not None:
            done |= nxt == eos_token_id
        if stop_when is not None:
            done |= stop_when(torch.stack(out, dim=1)).to(done.device)
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        step_tokens = nxt[:, None]
        if bool(done.all()):
            break
    new = torch.stack(out, dim=1).tolist() if out else [[] for _ in range(B)]
    if eos_token_id is not None:
        new = [row[: row.index(eos_token_id) + 1] if eos_token_id in row else row for row in new]
    return new
