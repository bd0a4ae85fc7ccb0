"""How much GPU memory one process needs to train a GPT-J: an estimate printed when training starts.

Model state (Rajbhandari et al., ZeRO, arXiv 1910.02054, Sec. 3.1): fp32 weights, fp32 gradients and AdamW's two
fp32 moments, 16 bytes a parameter, divided by the number of processes when the strategy shards them (FSDP,
DeepSpeed ZeRO-3), plus the weights of the blocks a sharded step holds whole at once (about two). Activations
(Korthikanti et al., arXiv 2205.05198, Sec. 4.1): ``s b h (34 + 5 a s / h)`` bytes a layer in 16-bit, the
attention-score term gone with fused attention (PyTorch's SDPA on a GPU); with activation checkpointing only each
block's input, ``2 s b h`` bytes, plus one block's worth while it is recomputed. Logits and their gradient in
fp32: ``2 x 4 s b V`` bytes. An estimate: allocator fragmentation and CUDA workspaces come on top.
"""

from __future__ import annotations

from dataclasses import dataclass

from lit_digest.text.gptj.model import GPTJConfig

__all__ = ["MemoryEstimate", "estimate_memory"]

GIB = 2**30


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per process, by part."""

    parameters: int
    weights: float
    gradients: float
    optimizer: float
    gathered: float
    activations: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.gathered + self.activations

    def describe(self, setting: str) -> str:
        unit, scale = ("GiB", GIB) if self.total >= GIB else ("MiB", 2**20)
        parts = {k: getattr(self, k) / scale for k in ("weights", "gradients", "optimizer", "gathered", "activations")}
        count = f"{self.parameters / 1e9:.2f} B" if self.parameters >= 1e8 else f"{self.parameters / 1e6:.2f} M"
        return (f"GPT-J memory estimate per device ({count} parameters, {setting}): weights {parts['weights']:.2f} "
                f"{unit} + gradients {parts['gradients']:.2f} + AdamW {parts['optimizer']:.2f} + gathered blocks "
                f"{parts['gathered']:.2f} + activations {parts['activations']:.2f} = {self.total / scale:.2f} {unit}")


def estimate_memory(cfg: GPTJConfig, batch_size: int, seq_len: int, shards: int = 1, half_activations: bool = True,
                    activation_checkpointing: bool = False, fused_attention: bool = True) -> MemoryEstimate:
    """The estimate for ``batch_size`` sequences of ``seq_len`` tokens per process, model state split over
    ``shards`` processes (1: DDP or one device)."""
    n = cfg.num_parameters()
    state = 4.0 * n / shards
    block = (cfg.num_parameters() - 2 * cfg.vocab_size * cfg.d_model) / cfg.n_layer
    gathered = 2 * 4.0 * block if shards > 1 else 0.0
    s, b, h, a = seq_len, batch_size, cfg.d_model, cfg.n_head
    per_layer = s * b * h * (34 + (0 if fused_attention else 5 * a * s / h))  # bytes at 16 bits
    if not half_activations:
        per_layer *= 2
    if activation_checkpointing:
        layers = cfg.n_layer * 2 * s * b * h * (1 if half_activations else 2) + per_layer
    else:
        layers = cfg.n_layer * per_layer
    logits = 2 * 4.0 * s * b * cfg.vocab_size
    return MemoryEstimate(parameters=n, weights=state, gradients=state, optimizer=2 * state, gathered=gathered,
                          activations=layers + logits)
