"""Codistillation across groups of data-parallel workers, as a Lightning strategy.

Anil et al., "Large scale distributed neural network training through online distillation", arXiv 1804.03235:
the world's ranks are split into G groups; each group is an ordinary synchronous data-parallel job on its own
shard of the data (gradients are all-reduced inside the group only), and every few hundred steps the groups
swap weights, which each group keeps, frozen, as teachers for the distillation term (Sec. 2). The maths of
the loss lives in :class:`lit_digest.codistillation.Codistillation`; this strategy supplies the
process groups, the per-group DDP wrapper, the data shards and the weight exchange.

Rank layout: global rank ``rho`` belongs to group ``g = rho // R`` with in-group rank ``r = rho % R``, where
``R = world_size // G``. Contiguous ranks keep a group on as few nodes as possible, so the every-step gradient
all-reduce stays on the fast intra-node links and only the rare weight exchange crosses nodes.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, Literal

import torch
import torch.distributed as dist
from lightning_utilities.core.apply_func import apply_to_collection
from torch import nn
from torch.distributed.constants import default_pg_timeout
from torch.nn.parallel import DistributedDataParallel
from torch.optim import Optimizer
from torch.utils.data import DataLoader, IterableDataset

from lit_digest.codistillation.sharding import GroupShardSampler
from lit_digest.core.lightning import pl, submodule

__all__ = ["CodistillationStrategy", "check_world_size"]

DDPStrategy = pl.strategies.DDPStrategy
RunningStage = submodule("trainer.states").RunningStage
TrainerFn = submodule("trainer.states").TrainerFn
TorchSyncBatchNorm = submodule("plugins.layer_sync").TorchSyncBatchNorm
_update_dataloader = submodule("utilities.data")._update_dataloader


def check_world_size(world_size: int, num_groups: int) -> int:
    """Ranks per group, or a ``ValueError`` naming the fix when the world cannot be split into "
    "``num_groups``."""
    if num_groups < 1:
        raise ValueError(f"num_groups must be >= 1, got {num_groups}")
    if world_size % num_groups != 0:
        raise ValueError(
            f"Codistillation splits the world into {num_groups} equal groups, but the world size "
            f"(num_nodes x devices) is {world_size}, which {num_groups} does not divide. Use a world size "
            f"that is a multiple of {num_groups} (e.g. devices="
            f"{num_groups * max(1, world_size // num_groups)}) or change num_groups."
        )
    return world_size // num_groups


class _GroupSyncBatchNorm(TorchSyncBatchNorm):
    """``Trainer(sync_batchnorm=True)`` inside one group only: the groups are separate models."""

    def __init__(self, process_group: dist.ProcessGroup | None) -> None:
        self.process_group = process_group

    def apply(self, model: nn.Module) -> nn.Module:
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model, process_group=self.process_group)


class CodistillationStrategy(DDPStrategy):
    """DDP inside each of ``num_groups`` groups of ranks, weight exchange between groups.

    Use with :class:`lit_digest.codistillation.Codistillation` (whose ``num_groups`` must match)
    and the usual launchers: ``Trainer(strategy=CodistillationStrategy(num_groups=2), devices=4)`` on one
    node, or ``num_nodes=N`` under SLURM / ``torchrun``. Backend: gloo on CPU, nccl on GPU (Lightning's
    default).

    Args:
        num_groups: G, the number of codistilled models; the paper's experiments use 2 (arXiv 1804.03235,
            Sec. 3).
        shuffle: shuffle each group's shard every epoch. Lightning's DDP always shuffles training data; set
            ``False`` for bit-for-bit comparisons with the single-process mode.
        process_group_backend: ``"gloo"`` / ``"nccl"``; ``None`` picks by device.
        timeout: collective timeout.
        start_method: Lightning's launcher: ``"popen"`` re-runs the script per rank, ``"spawn"`` etc.
        **kwargs: passed to :class:`torch.nn.parallel.DistributedDataParallel` (e.g.
            ``find_unused_parameters``).
    """

    strategy_name = "codistillation"

    def __init__(
        self,
        num_groups: int = 2,
        shuffle: bool = True,
        process_group_backend: str | None = None,
        timeout: timedelta | None = default_pg_timeout,
        start_method: Literal["popen", "spawn", "fork", "forkserver"] = "popen",
        **kwargs: Any,
    ) -> None:
        if num_groups < 1:
            raise ValueError(f"num_groups must be >= 1, got {num_groups}")
        super().__init__(
            process_group_backend=process_group_backend, timeout=timeout, start_method=start_method, **kwargs
        )
        self.num_groups = num_groups
        self.shuffle = shuffle
        self._group_process_group: dist.ProcessGroup | None = None

    # -- layout ---------------------------------------------------------------------------------------------
    @property
    def ranks_per_group(self) -> int:
        return check_world_size(self.num_nodes * self.num_processes, self.num_groups)

    @property
    def group_index(self) -> int:
        return self.global_rank // self.ranks_per_group

    @property
    def rank_in_group(self) -> int:
        return self.global_rank % self.ranks_per_group

    def group_leader(self, group: int) -> int:
        """Global rank that sends group ``group``'s weights in an exchange."""
        return group * self.ranks_per_group

    @property
    def distributed_sampler_kwargs(self) -> dict[str, Any]:
        # Evaluation: every group sees the same split of the val/test set (rank r of each group gets slice r),
        # so the groups' predictions can be compared sample by sample (churn). Training shards are set in
        # ``process_dataloader``.
        return {"num_replicas": self.ranks_per_group, "rank": self.rank_in_group}

    # -- set-up ---------------------------------------------------------------------------------------------
    def _configure_launcher(self) -> None:
        check_world_size(
            self.num_nodes * self.num_processes, self.num_groups
        )  # fail before any process starts
        super()._configure_launcher()

    def setup_environment(self) -> None:
        ranks_per_group = check_world_size(self.num_nodes * self.num_processes, self.num_groups)
        module = self.lightning_module
        if module is None or not hasattr(module, "assign_group"):
            raise TypeError(
                "CodistillationStrategy trains a lit_digest.codistillation.Codistillation module; got "
                f"{type(module).__name__}. Wrap your network in Codistillation(model=...)."
            )
        if module.num_groups != self.num_groups:
            raise ValueError(
                f"The strategy has num_groups={self.num_groups} but the model has "
                f"num_groups={module.num_groups}; "
                "set both to the same value (trainer.strategy.init_args.num_groups and "
                "model.init_args.num_groups)."
            )
        super().setup_environment()  # initialises the world process group
        # every rank must create every subgroup, in the same order
        for group in range(self.num_groups):
            ranks = list(range(group * ranks_per_group, (group + 1) * ranks_per_group))
            process_group = dist.new_group(ranks=ranks)
            if group == self.group_index:
                self._group_process_group = process_group
        if self._layer_sync is not None:  # Lightning's SyncBatchNorm would average statistics across groups
            self._layer_sync = _GroupSyncBatchNorm(self._group_process_group)
        module.assign_group(self.group_index)

    def setup(self, trainer: Any) -> None:
        if trainer.state.fn != TrainerFn.FITTING and self._group_process_group is not None:
            # validate / test / predict: Lightning syncs the module from rank 0 over the world (no DDP wrapper),
            # which would overwrite the other groups' live replicas with rank 0's stale mirrors. Hand every
            # group's live weights to every rank first: rank 0's copy is then everyone's.
            self.model_to_device()
            self.share_live_weights(self.lightning_module.replicas)
        super().setup(trainer)

    @torch.no_grad()
    def share_live_weights(self, replicas: nn.ModuleList) -> None:
        """Every rank's ``replicas[h]`` becomes group h's live weights (broadcast from its leader)."""
        for group in range(self.num_groups):
            state = self._broadcast_state(replicas[group], src=self.group_leader(group))
            if group != self.group_index:
                replicas[group].load_state_dict(state)

    def _setup_model(self, model: nn.Module) -> DistributedDataParallel:
        """DDP on the group's process group: gradients are averaged over the group's ranks only."""
        device_ids = self.determine_ddp_device_ids()
        # the CLI may fill DDP's own defaults into **kwargs; the group and devices are ours to set
        kwargs = {
            k: v for k, v in self._ddp_kwargs.items() if k not in ("module", "device_ids", "process_group")
        }
        kwargs["process_group"] = self._group_process_group
        if device_ids is not None:
            with torch.cuda.stream(torch.cuda.Stream()):
                return DistributedDataParallel(module=model, device_ids=device_ids, **kwargs)
        return DistributedDataParallel(module=model, device_ids=device_ids, **kwargs)

    def process_dataloader(self, dataloader: object) -> object:
        trainer = self.lightning_module.trainer if self.lightning_module is not None else None
        if (
            trainer is None
            or trainer.state.stage != RunningStage.TRAINING
            or not isinstance(dataloader, DataLoader)
        ):
            return dataloader
        if isinstance(dataloader.dataset, IterableDataset):
            pl.utilities.rank_zero_warn(
                "CodistillationStrategy cannot shard an IterableDataset; make sure each group's ranks read "
                "disjoint data (use trainer.strategy.group_index / rank_in_group in your data pipeline)."
            )
            return dataloader
        sampler = GroupShardSampler(
            len(dataloader.dataset),  # type: ignore[arg-type]
            num_groups=self.num_groups,
            group_index=self.group_index,
            ranks_per_group=self.ranks_per_group,
            rank_in_group=self.rank_in_group,
            shuffle=self.shuffle,
            seed=int(os.getenv("PL_GLOBAL_SEED", 0)),
        )
        return _update_dataloader(dataloader, sampler, mode=RunningStage.TRAINING)

    # -- the exchange ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def _broadcast_state(self, module: nn.Module, src: int) -> dict[str, torch.Tensor]:
        """``module``'s parameters and buffers as held by global rank ``src``, in new tensors on every rank
        (one broadcast per dtype over the world group)."""
        state = module.state_dict()
        received: dict[str, torch.Tensor] = {}
        for dtype in sorted({t.dtype for t in state.values()}, key=str):
            names = [k for k, t in state.items() if t.dtype == dtype]
            flat = torch.cat([state[k].reshape(-1) for k in names])  # (sum of numels,)
            dist.broadcast(flat, src=src)
            offset = 0
            for k in names:
                received[k] = flat[offset : offset + state[k].numel()].view_as(state[k])
                offset += state[k].numel()
        return received

    @torch.no_grad()
    def exchange_weights(self, replicas: nn.ModuleList, teachers: nn.ModuleList) -> int:
        """Broadcast every group's live weights (parameters and buffers) from its leader to all ranks.

        Afterwards ``teachers[h]`` holds group ``h``'s weights at this step on every rank, and so does the
        idle ``replicas[h]`` of the other groups.

        Returns:
            bytes this rank received (``(G - 1)`` times one model's size).
        """
        received = 0
        for group in range(self.num_groups):
            state = self._broadcast_state(replicas[group], src=self.group_leader(group))
            teachers[group].load_state_dict(state)
            if group != self.group_index:
                replicas[group].load_state_dict(state)
                received += sum(t.numel() * t.element_size() for t in state.values())
        return received

    # -- checkpoints: every group's weights and optimiser state, whichever rank writes the file ------------
    def lightning_module_state_dict(self) -> dict[str, Any]:
        state = super().lightning_module_state_dict()
        module = self.lightning_module
        if self._group_process_group is None or module is None:
            return state
        for group in range(self.num_groups):  # the live weights of every group, not this rank's stale mirrors
            live = self._broadcast_state(module.replicas[group], src=self.group_leader(group))
            state.update({f"replicas.{group}.{k}": v for k, v in live.items()})
        return state

    def optimizer_state(self, optimizer: Optimizer) -> dict[str, Any]:
        state = super().optimizer_state(optimizer)
        if self._group_process_group is None:
            return state
        group_states = []
        for group in range(self.num_groups):
            leader = self.group_leader(group)
            mine = self.global_rank == leader
            payload = [apply_to_collection(state, torch.Tensor, torch.Tensor.cpu) if mine else None]
            dist.broadcast_object_list(payload, src=leader)
            group_states.append(payload[0])
        return {"codistillation_group_states": group_states}

    def load_optimizer_state_dict(self, checkpoint: dict[str, Any]) -> None:
        states = checkpoint["optimizer_states"]
        for i, state in enumerate(states):
            if "codistillation_group_states" in state:
                states[i] = state["codistillation_group_states"][self.group_index]
            elif self._group_process_group is not None:
                raise ValueError(
                    "This checkpoint was not written by CodistillationStrategy (single-process mode or "
                    "another strategy): its optimiser state cannot be split between groups. Resume it in "
                    "the mode that wrote it, or load only the weights (Codistillation.load_from_checkpoint)."
                )
        super().load_optimizer_state_dict(checkpoint)
