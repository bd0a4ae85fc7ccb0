"""GPT-J as a plain ``nn.Module``: sizes, rotary position embedding, the parallel block, a KV cache.

GPT-J-6B (Wang and Komatsuzaki, 2021; mesh-transformer-jax ``mesh_transformer/layers.py``, the living version
``GPTJForCausalLM`` in Hugging Face transformers ``models/gptj/modeling_gptj.py``) is a GPT-3-like decoder with
three changes, all here:

- the attention and the MLP of a block read the *same* LayerNorm output and are added to the residual together,
  ``x + attn(ln(x)) + mlp(ln(x))`` ("We actually combine the FF and dense in one layer (i.e. compute in
  parallel)", ``TransformerLayerShard``), one LayerNorm per block;
- rotary position embedding (Su et al., arXiv 2104.09864) on the first ``rotary_dim`` (64 of 256) dimensions of
  each head, rotating the *interleaved* pairs ``(x0, x1), (x2, x3), ...`` (``rotate_every_two``), not NeoX's
  halves;
- no biases on the query, key, value and output projections; the output head is untied from the embedding and
  has a bias.

Parameter names follow Hugging Face's (without its ``transformer.`` prefix), so the weight map of
``lit_digest.text.gptj.hf`` is one rename.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

__all__ = ["GPTJConfig", "PRESETS", "GPTJ", "GPTJBlock", "KVCache", "rotary_angles", "apply_rotary"]

# Haiku's TruncatedNormal(stddev) cuts at 2 sigma and rescales so that the *result* has that stddev.
_TRUNCATED_STD = 0.87962566103423978


@dataclass  # not frozen: Lightning's YAML writer (CSV/TensorBoard loggers) refuses frozen dataclasses in hparams
class GPTJConfig:
    """The sizes of a GPT-J model. The defaults are GPT-J-6B's (mesh-transformer-jax ``configs/6B_roto_256.json``:
    28 layers, d_model 4096, 16 heads of 256, rotary on 64 of them, context 2048, vocabulary 50400 = GPT-2's 50257
    padded for the 8-way model-parallel split; Hugging Face ``GPTJConfig`` defaults are the same).

    Args:
        vocab_size: token values (256 for bytes).
        n_positions: longest context; longer inputs raise.
        d_model: width of the residual stream.
        n_layer: blocks.
        n_head: attention heads; ``d_model / n_head`` per head.
        rotary_dim: dimensions of each head rotated by the rotary embedding (the first ones); ``None`` rotates all
            of them ("full rotary", an ablation; GPT-J rotates 64 of 256).
        d_ff: MLP hidden width; ``None`` is ``4 * d_model`` (GPT-J).
        layer_norm_eps: LayerNorm epsilon (1e-5, ``ReplicatedLayerNorm``).
        block: ``"parallel"`` (GPT-J) or ``"sequential"``: GPT-2's ``x + attn(ln_1(x))`` then
            ``x + mlp(ln_2(x))``, two LayerNorms, an ablation.
        dropout: on the embeddings and each branch's output (GPT-J trained without: 0).
    """

    vocab_size: int = 50400
    n_positions: int = 2048
    d_model: int = 4096
    n_layer: int = 28
    n_head: int = 16
    rotary_dim: int | None = 64
    d_ff: int | None = None
    layer_norm_eps: float = 1e-5
    block: Literal["parallel", "sequential"] = "parallel"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_positions", "d_model", "n_layer", "n_head"):
            if getattr(self, name) < 1:
                raise ValueError(f"GPTJConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.d_model % self.n_head:
            raise ValueError(f"GPTJConfig: d_model={self.d_model} is not divisible by n_head={self.n_head}")
        if self.rotary_dim is not None and not (0 < self.rotary_dim <= self.head_dim and self.rotary_dim % 2 == 0):
            raise ValueError(f"GPTJConfig.rotary_dim must be even and in (0, head_dim={self.head_dim}], got "
                             f"{self.rotary_dim}; None rotates the whole head")
        if self.head_dim % 2 and self.rotary_dim is None:
            raise ValueError(f"full rotary needs an even head_dim, got {self.head_dim}")
        if self.block not in ("parallel", "sequential"):
            raise ValueError(f"GPTJConfig.block must be 'parallel' or 'sequential', got {self.block!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTJConfig.dropout must be in [0, 1), got {self.dropout}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def rotary(self) -> int:
        """Rotated dimensions per head (``rotary_dim``, or the whole head)."""
        return self.head_dim if self.rotary_dim is None else self.rotary_dim

    @property
    def ff_dim(self) -> int:
        return 4 * self.d_model if self.d_ff is None else self.d_ff

    def num_parameters(self) -> int:
        """Parameters of ``GPTJ(self)``, counted without building it (GPT-J-6B: 6,050,882,784)."""
        d, f, v = self.d_model, self.ff_dim, self.vocab_size
        norms = 2 * d * (2 if self.block == "sequential" else 1)
        layer = norms + 4 * d * d + (d * f + f) + (f * d + d)
        return v * d + self.n_layer * layer + 2 * d + (d * v + v)

    @classmethod
    def preset(cls, name: str, **overrides) -> GPTJConfig:
        """A named size (``PRESETS``), with fields replaced: ``GPTJConfig.preset("tiny", block="sequential")``."""
        if name not in PRESETS:
            raise ValueError(f"unknown GPT-J preset {name!r}; choose from {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)


PRESETS: dict[str, GPTJConfig] = {
    "6b": GPTJConfig(),
    # byte-level models for a CPU: the docs' comparison and the configs' runs
    "small": GPTJConfig(vocab_size=256, n_positions=256, d_model=128, n_layer=4, n_head=4, rotary_dim=8),
    # tests and smoke runs
    "tiny": GPTJConfig(vocab_size=256, n_positions=64, d_model=32, n_layer=2, n_head=4, rotary_dim=4),
}


class _Linear(nn.Linear):
    """``nn.Linear`` whose ``reset_parameters`` draws mesh-transformer-jax's truncated normal of std ``std`` (and a
    zero bias). Sharded strategies that build a model on the meta device materialise it with ``reset_parameters``,
    so the initialisation lives here rather than in a pass over the finished model."""

    def __init__(self, in_features: int, out_features: int, bias: bool, std: float) -> None:
        self.std = std
        super().__init__(in_features, out_features, bias=bias)

    def reset_parameters(self) -> None:
        s = self.std / _TRUNCATED_STD
        nn.init.trunc_normal_(self.weight, std=s, a=-2 * s, b=2 * s)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class _Embedding(nn.Embedding):
    """mesh-transformer-jax embeds with a linear map of the one-hot token, std ``1 / sqrt(vocab)``."""

    def reset_parameters(self) -> None:
        s = 1.0 / math.sqrt(self.num_embeddings) / _TRUNCATED_STD
        nn.init.trunc_normal_(self.weight, std=s, a=-2 * s, b=2 * s)


def rotary_angles(positions: Tensor, dim: int, base: float = 10000.0) -> tuple[Tensor, Tensor]:
    """``sin`` and ``cos`` of ``position x 10000^(-2i/dim)`` for ``i < dim/2`` (arXiv 2104.09864, eq. 15), float32.

    positions: ``(B, T)`` integers; returns two ``(B, T, dim/2)`` tensors.
    """
    inv_freq = 1.0 / base ** (torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) / dim)
    angles = positions.to(torch.float32)[..., None] * inv_freq  # (B, T, dim/2)
    return angles.sin(), angles.cos()


def apply_rotary(x: Tensor, sin: Tensor, cos: Tensor) -> Tensor:
    """Rotate each interleaved pair ``(x[2i], x[2i+1])`` of ``x`` by angle ``i`` (GPT-J's ``rotate_every_two``).

    x: ``(B, T, H, R)``; sin, cos: ``(B, T, R/2)``.
    """
    sin, cos = sin[:, :, None, :].to(x.dtype), cos[:, :, None, :].to(x.dtype)  # (B, T, 1, R/2)
    even, odd = x[..., 0::2], x[..., 1::2]  # (B, T, H, R/2)
    return torch.stack((even * cos - odd * sin, odd * cos + even * sin), dim=-1).flatten(-2)  # (B, T, H, R)


class KVCache:
    """Keys and values of every layer for the tokens seen so far, ``(B, H, T_past, head_dim)`` each, grown by
    ``GPTJ.forward``. ``length`` is ``T_past``."""

    def __init__(self, n_layer: int) -> None:
        self.keys: list[Tensor | None] = [None] * n_layer
        self.values: list[Tensor | None] = [None] * n_layer

    @property
    def length(self) -> int:
        return 0 if self.keys[0] is None else self.keys[0].shape[2]

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append the new ``(B, H, T, head_dim)`` keys and values; return the whole of them."""
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=2)
            v = torch.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v

    def reorder(self, index: Tensor) -> None:
        """Keep batch rows ``index`` (e.g. the unfinished sequences)."""
        self.keys = [None if k is None else k[index] for k in self.keys]
        self.values = [None if v is None else v[index] for v in self.values]


class GPTJAttention(nn.Module):
    """Multi-head causal self-attention with rotary query and key and no projection biases."""

    def __init__(self, cfg: GPTJConfig, layer: int) -> None:
        super().__init__()
        self.layer, self.n_head, self.head_dim, self.rotary = layer, cfg.n_head, cfg.head_dim, cfg.rotary
        d, std = cfg.d_model, 1.0 / math.sqrt(cfg.d_model)
        out_std = 2.0 / cfg.n_layer / math.sqrt(d)  # init_scale = 2 / layers (mesh-transformer-jax)
        self.q_proj = _Linear(d, d, bias=False, std=std)
        self.k_proj = _Linear(d, d, bias=False, std=std)
        self.v_proj = _Linear(d, d, bias=False, std=std)
        self.out_proj = _Linear(d, d, bias=False, std=out_std)

    def forward(self, x: Tensor, sin: Tensor, cos: Tensor, mask: Tensor | None, cache: KVCache | None) -> Tensor:
        B, T, D = x.shape
        q = self.q_proj(x).view(B, T, self.n_head, self.head_dim)  # (B, T, H, Dh)
        k = self.k_proj(x).view(B, T, self.n_head, self.head_dim)
        v = self.v_proj(x).view(B, T, self.n_head, self.head_dim)
        r = self.rotary
        q = torch.cat([apply_rotary(q[..., :r], sin, cos), q[..., r:]], dim=-1)
        k = torch.cat([apply_rotary(k[..., :r], sin, cos), k[..., r:]], dim=-1)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, Dh)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)  # (B, H, T_past + T, Dh)
        # scores / sqrt(head_dim), as GPT-J's scale_attn; mask None means plain causal over T
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)  # (B, H, T, Dh)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, D))


class GPTJMLP(nn.Module):
    """``fc_out(gelu(fc_in(x)))`` with biases; GELU in its tanh form (``jax.nn.gelu``, HF's ``gelu_new``)."""

    def __init__(self, cfg: GPTJConfig) -> None:
        super().__init__()
        d, f = cfg.d_model, cfg.ff_dim
        self.fc_in = _Linear(d, f, bias=True, std=1.0 / math.sqrt(d))
        self.fc_out = _Linear(f, d, bias=True, std=2.0 / cfg.n_layer / math.sqrt(d))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc_out(F.gelu(self.fc_in(x), approximate="tanh"))


class GPTJBlock(nn.Module):
    """``x + attn(ln_1(x)) + mlp(ln_1(x))`` (GPT-J), or GPT-2's sequential form with ``ln_2``."""

    def __init__(self, cfg: GPTJConfig, layer: int) -> None:
        super().__init__()
        self.parallel = cfg.block == "parallel"
        self.ln_1 = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.attn = GPTJAttention(cfg, layer)
        self.mlp = GPTJMLP(cfg)
        self.ln_2 = None if self.parallel else nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, sin: Tensor, cos: Tensor, mask: Tensor | None, cache: KVCache | None) -> Tensor:
        h = self.ln_1(x)
        if self.parallel:
            return x + self.drop(self.attn(h, sin, cos, mask, cache)) + self.drop(self.mlp(h))
        x = x + self.drop(self.attn(h, sin, cos, mask, cache))
        return x + self.drop(self.mlp(self.ln_2(x)))


class GPTJ(nn.Module):
    """GPT-J: token embedding, ``n_layer`` blocks, final LayerNorm, untied output head with a bias.

    ``forward(tokens)`` gives next-token logits ``(B, T, vocab)``. For generation pass a ``KVCache``: it is
    extended in place with the new tokens' keys and values, and positions continue from its length. Batches of
    prompts of different lengths are left-padded with ``attention_mask`` (``(B, T_past + T)``, 1 for real tokens)
    and ``position_ids`` counting real tokens only (``generate`` does both). ``activation_checkpointing = True``
    recomputes each block in the backward pass instead of keeping its activations (in training, without a cache:
    the recomputation would extend the cache again).
    """

    def __init__(self, config: GPTJConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = _Embedding(config.vocab_size, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList(GPTJBlock(config, i) for i in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.lm_head = _Linear(config.d_model, config.vocab_size, bias=True, std=1.0 / math.sqrt(config.d_model))
        self.activation_checkpointing = False

    def forward(self, tokens: Tensor, cache: KVCache | None = None, attention_mask: Tensor | None = None,
                position_ids: Tensor | None = None) -> Tensor:
        return self.lm_head(self.hidden_states(tokens, cache, attention_mask, position_ids))  # (B, T, V)

    def hidden_states(self, tokens: Tensor, cache: KVCache | None = None, attention_mask: Tensor | None = None,
                      position_ids: Tensor | None = None) -> Tensor:
        """The final LayerNorm's output ``(B, T, D)``, what the output head reads (a classification head too)."""
        B, T = tokens.shape
        past = 0 if cache is None else cache.length
        if past + T > self.config.n_positions:
            raise ValueError(f"{past + T} positions, more than the model's n_positions={self.config.n_positions}")
        if position_ids is None:
            position_ids = torch.arange(past, past + T, device=tokens.device).expand(B, T)  # (B, T)
        sin, cos = rotary_angles(position_ids, self.config.rotary)  # (B, T, R/2)
        mask = causal_mask(T, past, attention_mask, tokens.device)  # (B or 1, 1, T, past + T) or None
        x = self.drop(self.wte(tokens))  # (B, T, D)
        for block in self.h:
            # with a cache the recomputation in the backward pass would append the keys a second time: no checkpoint
            if self.activation_checkpointing and self.training and torch.is_grad_enabled() and cache is None:
                x = checkpoint(block, x, sin, cos, mask, None, use_reentrant=False)
            else:
                x = block(x, sin, cos, mask, cache)
        return self.ln_f(x)

    def reset_parameters(self) -> None:
        """A new draw of mesh-transformer-jax's initialisation for every layer."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()


def causal_mask(T: int, past: int, attention_mask: Tensor | None, device: torch.device) -> Tensor | None:
    """Boolean ``(B, 1, T, past + T)`` mask of the keys each new query may see (True = attend), or None for the
    plain causal case that attention handles itself. Padding keys are hidden; each query always sees itself, so a
    padding query's row is never empty (its output is unused, but must stay finite)."""
    if attention_mask is None and past == 0:
        return None
    rows = torch.arange(T, device=device)[:, None] + past
    keys = torch.arange(past + T, device=device)[None, :]
    allowed = keys <= rows  # (T, past + T)
    if attention_mask is None:
        return allowed[None, None]
    if attention_mask.shape[-1] != past + T:
        raise ValueError(f"attention_mask covers {attention_mask.shape[-1]} positions, not past + new = {past + T}")
    allowed = allowed[None] & attention_mask.bool()[:, None, :]  # (B, T, past + T)
    allowed = allowed | (keys == rows)[None]
    return allowed[:, None]
