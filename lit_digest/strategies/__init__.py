"""Lightning strategies: distributed training schemes beyond plain DDP."""

from lit_digest.strategies.codistillation import CodistillationStrategy, GroupShardSampler

__all__ = ["CodistillationStrategy", "GroupShardSampler"]
