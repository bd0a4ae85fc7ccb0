"""Which samples each codistillation group reads: a fixed, disjoint shard per group (arXiv 1804.03235, Sec. 2),
under the distributed strategy (``GroupShardSampler``, one per rank) and in single-process mode
(``InterleavedGroupSampler``), with the same shuffling, so that the two modes train on the same data."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, Sampler

from lit_digest.core.lightning import submodule

__all__ = ["GroupShardSampler", "InterleavedGroupSampler", "read_group_shards"]

RunningStage = submodule("trainer.states").RunningStage
_update_dataloader = submodule("utilities.data")._update_dataloader


class GroupShardSampler(Sampler[int]):
    """Training sampler: group ``g`` owns the fixed shard ``{i : i % G == g}`` of the data set for the
    whole run (the groups train on disjoint data, arXiv 1804.03235 Sec. 2); each epoch the shard is shuffled
    (seeded by ``seed``, epoch and group) and dealt round-robin to the group's R ranks. Without shuffling,
    rank ``r`` of group ``g`` reads ``g + G r + G R k`` for ``k = 0, 1, ...``, which is exactly the ``g``-th
    strided slice ``batch[g::G]`` that the single-process mode takes from a batch of ``G R`` times the
    per-rank size.

    The shard is padded by wrapping around (inside the group) so that every rank of the world yields
    ``ceil(len / (G R))`` indices: all ranks take the same number of steps, which the weight exchange needs.
    """

    def __init__(
        self,
        dataset_size: int,
        num_groups: int,
        group_index: int,
        ranks_per_group: int,
        rank_in_group: int,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        if dataset_size < num_groups * ranks_per_group:
            raise ValueError(
                f"The training set has {dataset_size} samples, fewer than the "
                f"{num_groups * ranks_per_group} ranks that need a disjoint share of it; use more data or "
                "fewer devices."
            )
        self.dataset_size = dataset_size
        self.num_groups = num_groups
        self.group_index = group_index
        self.ranks_per_group = ranks_per_group
        self.rank_in_group = rank_in_group
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.num_samples = math.ceil(dataset_size / (num_groups * ranks_per_group))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def group_shard(self) -> torch.Tensor:
        """All indices of this group's shard for the current epoch, in the order they are dealt, ``(M,)``."""
        shard = torch.arange(
            self.group_index, self.dataset_size, self.num_groups
        )  # fixed, disjoint across groups
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + 7919 * self.epoch + self.group_index)
            shard = shard[torch.randperm(len(shard), generator=generator)]
        total = self.num_samples * self.ranks_per_group
        repeats = math.ceil(total / len(shard))
        return shard.repeat(repeats)[:total]  # wrap-around padding stays inside the group's shard

    def __iter__(self) -> Iterator[int]:
        return iter(self.group_shard()[self.rank_in_group :: self.ranks_per_group].tolist())

    def __len__(self) -> int:
        return self.num_samples


class InterleavedGroupSampler(Sampler[int]):
    """Single-process codistillation: position ``G q + g`` of an epoch holds the q-th index of group g's shard
    (shuffled as ``GroupShardSampler`` shuffles it, with the same seed), so the slice ``batch[g::G]`` that
    replica g trains on is drawn from group g's fixed shard, as under the distributed strategy: a batch of
    ``G R b`` samples gives replica g exactly the indices the R ranks of group g read in that step."""

    def __init__(self, dataset_size: int, num_groups: int, shuffle: bool = True, seed: int = 0) -> None:
        self.shards = [GroupShardSampler(dataset_size, num_groups, g, 1, 0, shuffle, seed) for g in range(num_groups)]
        self.num_groups = num_groups

    def set_epoch(self, epoch: int) -> None:
        for shard in self.shards:
            shard.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        return iter(torch.stack([s.group_shard() for s in self.shards], dim=1).flatten().tolist())  # (L * G,)

    def __len__(self) -> int:
        return self.num_groups * len(self.shards[0])


def _shuffles(dataloader: DataLoader) -> bool:
    return isinstance(dataloader.sampler, torch.utils.data.RandomSampler)


def read_group_shards(trainer: Any, num_groups: int) -> None:
    """Single-process mode: make the training loader read the groups' shards (``InterleavedGroupSampler``),
    by wrapping the strategy's ``process_dataloader`` (where Lightning's strategies place their samplers)."""
    strategy = trainer.strategy
    if getattr(strategy, "_reads_group_shards", False):
        return
    original = strategy.process_dataloader

    def process(dataloader: object) -> object:
        dataloader = original(dataloader)
        if (trainer.state.stage != RunningStage.TRAINING or not isinstance(dataloader, DataLoader)
                or isinstance(dataloader.dataset, IterableDataset)):
            return dataloader
        if dataloader.batch_size is not None and dataloader.batch_size % num_groups:
            raise ValueError(f"Single-process codistillation splits each batch between {num_groups} replicas: the "
                             f"batch size {dataloader.batch_size} must be a multiple of {num_groups}.")
        sampler = InterleavedGroupSampler(len(dataloader.dataset), num_groups, _shuffles(dataloader),
                                          int(os.getenv("PL_GLOBAL_SEED", 0)))
        return _update_dataloader(dataloader, sampler, mode=RunningStage.TRAINING)

    strategy.process_dataloader = process
    strategy._reads_group_shards = True
