"""Codistillation: online distillation between groups of data-parallel workers (Anil et al., arXiv 1804.03235).

- ``module``: the ``Codistillation`` LightningModule (G replicas, stale teachers, single-process mode);
- ``strategy``: ``CodistillationStrategy``, DDP inside each group and the weight exchange between groups;
- ``sharding``: the groups' disjoint data shards, in both modes; ``replicas``: each replica from the model's
  own constructor;
- ``losses``: the distillation losses and churn, as pure functions;
- ``text``: the byte-level language-model data and LSTM of the paper's language experiments, at toy scale.
"""

from lit_digest.codistillation.module import Codistillation
from lit_digest.codistillation.sharding import GroupShardSampler, InterleavedGroupSampler
from lit_digest.codistillation.strategy import CodistillationStrategy
from lit_digest.codistillation.text import ByteLSTM, ByteTextDataModule

__all__ = ["Codistillation", "CodistillationStrategy", "GroupShardSampler", "InterleavedGroupSampler", "ByteLSTM",
           "ByteTextDataModule"]
