"""Codistillation: online distillation between G copies of a model (Anil et al., arXiv 1804.03235).

Each copy ("replica") g is trained on its own data with

    loss_g = task_loss(y, f_g(x)) + alpha * psi(mean_{h != g} softmax(f~_h(x) / T), f_g(x))

where ``f~_h`` is a frozen, stale copy of replica h ("teacher") refreshed every ``exchange_every`` steps, and
the distillation term is switched on after ``burn_in_steps`` (Algorithm 1 of the paper; ``psi`` is a soft
cross-entropy or a KL divergence).

Two ways to run the same maths:

* single-process mode (any ordinary strategy, e.g. one GPU or the CPU): this module trains all G replicas;
  a training batch of size B is split into G disjoint strided slices ``batch[g::G]``, one per replica, and
  the training loader reads the groups' fixed shards (``InterleavedGroupSampler``): slice g always comes
  from group g's shard, the same data the distributed strategy gives group g;
* distributed mode, under :class:`lit_digest.codistillation.CodistillationStrategy`: each group of ranks
  trains one replica (DDP inside the group), the strategy shards the data between the groups and
  broadcasts the weights at exchange steps.

Batches: ``(inputs, targets)`` where ``inputs`` is a tensor or a list of views (the first view is used), and
the model maps inputs to logits ``(B, C)`` with targets ``(B,)`` (classifier) or ``(B, T, V)`` with ``(B, T)``
(language model).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lit_digest.codistillation.losses import DistillKind, distillation_loss, mean_pairwise_churn, prediction_churn
from lit_digest.codistillation.predict import CodistillationPredictionWriter, sample_bytes
from lit_digest.codistillation.replicas import replica_builder
from lit_digest.codistillation.sharding import read_group_shards
from lit_digest.core.dist import model_bytes, ring_allreduce_bytes
from lit_digest.core.lightning import LightningModule, modules_in_hparams
from lit_digest.core.optim import Optim, configure_optim, split_decay_groups

__all__ = ["Codistillation"]


class Codistillation(LightningModule):
    """Make a classification-style model codistill with ``num_groups - 1`` stale copies of itself.

    Args:
        model: maps inputs to logits; or, with ``num_classes``, to features of size ``model.num_features``
            (e.g. ``lit_digest.ssl.ResNet``) and a linear classifier is appended. A zero-argument factory
            (``functools.partial(ResNet, depth=18)``) works too.
        num_classes: size of the appended linear classifier; ``None`` when ``model`` already gives logits.
        num_groups: G, the number of codistilled copies; 2 in the paper's experiments (arXiv 1804.03235, Sec.
            3). ``1`` is plain (data-parallel) training without distillation: the baseline.
        alpha: weight of the distillation term; Algorithm 1 adds it unweighted (1.0).
        temperature: softmax temperature of teachers and student in the distillation term; Algorithm 1 uses
            plain predictions (1.0).
        distill_loss: ``"cross_entropy"`` (soft cross-entropy to the teachers' mean prediction, as in the
            paper's language-model experiments) or ``"kl"`` (same gradient, zero at agreement).
        burn_in_steps: optimisation steps with the task loss only (Algorithm 1's ``n0``: "burn in" before
            distillation); the paper gives no single value, so this default is ours.
        exchange_every: steps between weight exchanges; 50 is the checkpoint-exchange staleness of the paper's
            Common Crawl experiments (Sec. 3, stale predictions).
        independent_init: build replicas 1..G-1 anew from the model's own constructor, each under its own seed,
            so that the copies start from different draws of the same initialisation, like independently
            launched jobs (``lit_digest.codistillation.replicas``); replica 0 is ``model`` as given.
        optim: optimiser and schedule (``lit_digest.core.optim.Optim``), one over all replicas trained here (one
            optimiser over independent parameter sets is the same as G optimisers); default SGD with momentum,
            cosine decay to zero.
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int | None = None,
        num_groups: int = 2,
        alpha: float = 1.0,
        temperature: float = 1.0,
        distill_loss: DistillKind = "cross_entropy",
        burn_in_steps: int = 500,
        exchange_every: int = 50,
        independent_init: bool = True,
        optim: Optim = Optim(name="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4),
    ) -> None:
        super().__init__()
        if num_groups < 1:
            raise ValueError(f"num_groups must be >= 1 (1: plain training, the baseline), got {num_groups}")
        if exchange_every < 1:
            raise ValueError(f"exchange_every must be >= 1 step, got {exchange_every}")
        if burn_in_steps < 0:
            raise ValueError(f"burn_in_steps must be >= 0, got {burn_in_steps}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if distill_loss not in ("cross_entropy", "kl"):
            raise ValueError(f"distill_loss must be 'cross_entropy' or 'kl', got {distill_loss!r}")
        with modules_in_hparams():
            self.save_hyperparameters()
        self.optim = optim  # the typed block (the CLI keeps a plain dict in hparams)
        build = replica_builder(model, self.hparams.get("model"))
        first = model if isinstance(model, nn.Module) else model()
        if independent_init:  # each replica from the model's own constructor, under its own seed
            copies = [first] + [build((torch.initial_seed() + 1009 * g) % 2**63) for g in range(1, num_groups)]
        else:
            copies = [first] + [copy.deepcopy(first) for _ in range(num_groups - 1)]
        if num_classes is not None:
            copies = [self._with_classifier(replica, num_classes) for replica in copies]
        self.replicas = nn.ModuleList(copies)  # live models, replica g trained by group g
        # teachers[h]: replica h at the last exchange (none for G = 1, plain training), frozen and in eval mode
        # for good: "stale models" giving inference-mode predictions (arXiv 1804.03235, Sec. 2). Lightning
        # (>= 2.2) keeps each submodule's train/eval flag through fit and restores it after validation.
        self.teachers = nn.ModuleList(copy.deepcopy(r) for r in copies) if num_groups > 1 else nn.ModuleList()
        self.teachers.requires_grad_(False)
        self.teachers.eval()
        self.num_groups = num_groups
        self.group_index: int | None = None  # set by CodistillationStrategy; None = single-process mode
        self._last_exchange_step = -1
        self._eval_sums: Tensor | None = None

    @staticmethod
    def _with_classifier(model: nn.Module, num_classes: int) -> nn.Module:
        num_features = getattr(model, "num_features", None)
        if not isinstance(num_features, int):
            raise ValueError(
                "num_classes is set, so a linear classifier is appended to the model, which needs an int "
                f"attribute `num_features`; {type(model).__name__} has none. Give a model that outputs "
                "logits and leave num_classes unset."
            )
        return nn.Sequential(model, nn.Linear(num_features, num_classes))

    # -- set by the strategy ---------------------------------------------------------------------------------
    def assign_group(self, group_index: int) -> None:
        """Distributed mode: this process trains ``replicas[group_index]`` only; the others become idle "
        "mirrors."""
        if not 0 <= group_index < self.num_groups:
            raise ValueError(f"group_index must be in [0, {self.num_groups}), got {group_index}")
        self.group_index = group_index
        for g, replica in enumerate(self.replicas):
            replica.requires_grad_(g == group_index)

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.group_index is None and self.num_groups > 1:
            read_group_shards(self.trainer, self.num_groups)  # the groups' fixed shards, as the strategy reads them

    @property
    def trained_groups(self) -> list[int]:
        return list(range(self.num_groups)) if self.group_index is None else [self.group_index]

    def train(self, mode: bool = True) -> Codistillation:
        super().train(mode)
        self.teachers.eval()  # teachers give inference-mode predictions of a checkpoint
        return self

    # -- inference -------------------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """Logits of this process's replica (replica 0 in single-process mode and in loaded checkpoints)."""
        return self.replicas[self.group_index or 0](x)

    # -- training --------------------------------------------------------------------------------------------
    @staticmethod
    def _unpack(batch: Any) -> tuple[Tensor, Tensor]:
        inputs, targets = batch[0], batch[1]
        if isinstance(inputs, (list, tuple)):  # a view pipeline: train on the first view
            inputs = inputs[0]
        return inputs, targets

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        step = self.global_step
        if (
            self.num_groups > 1
            and step % self.hparams.exchange_every == 0
            and step != self._last_exchange_step
        ):
            self.exchange()
            self._last_exchange_step = step

    @torch.no_grad()
    def exchange(self) -> None:
        """Refresh every teacher with the current weights of its replica (a broadcast in distributed mode)."""
        if self.group_index is None:
            for replica, teacher in zip(self.replicas, self.teachers, strict=True):
                teacher.load_state_dict(replica.state_dict())
            world = self.num_groups  # as if each replica were one worker
            received = (self.num_groups - 1) * model_bytes(self.replicas[0])
        else:
            strategy = self.trainer.strategy
            world = strategy.world_size
            received = strategy.exchange_weights(self.replicas, self.teachers)
        grad_bytes = model_bytes(self.replicas[self.group_index or 0], trainable_only=True)
        every = self.hparams.exchange_every
        if self._trainer is not None:
            self.log("comm/exchange_bytes", float(received), on_step=True, on_epoch=False)
            # per rank, between two exchanges: plain DDP over the whole world vs codistillation's in-group DDP
            self.log(
                "comm/sync_sgd_allreduce_bytes",
                every * ring_allreduce_bytes(grad_bytes, world),
                on_step=True,
                on_epoch=False,
            )
            ranks_per_group = world // self.num_groups
            self.log(
                "comm/group_allreduce_bytes",
                every * ring_allreduce_bytes(grad_bytes, ranks_per_group),
                on_step=True,
                on_epoch=False,
            )

    def _distilling(self) -> bool:
        hp = self.hparams
        return self.num_groups > 1 and hp.alpha > 0 and self.global_step >= hp.burn_in_steps

    def _teacher_logits(self, group: int, x: Tensor) -> Tensor:
        """Stacked logits of the teachers of replica ``group``: ``(G - 1, N, C)``."""
        with torch.no_grad():
            logits = [self.teachers[h](x) for h in range(self.num_groups) if h != group]
        return torch.stack([z.reshape(-1, z.shape[-1]) for z in logits])  # (G-1, N, C)

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Tensor]:
        inputs, targets = self._unpack(batch)
        hp = self.hparams
        distill_on = self._distilling()
        task = torch.full((self.num_groups,), float("nan"), device=self.device)
        distill = task.clone()
        churn = task.clone()
        total = inputs.new_zeros((), dtype=torch.float)
        for g in self.trained_groups:
            if self.group_index is None:
                x, y = (
                    inputs[g :: self.num_groups],
                    targets[g :: self.num_groups],
                )  # disjoint slice per replica
            else:
                x, y = inputs, targets
            logits = self.replicas[g](x)
            flat = logits.reshape(-1, logits.shape[-1])  # (N, C)
            task_g = F.cross_entropy(flat.float(), y.reshape(-1))
            if distill_on:
                teacher = self._teacher_logits(g, x)  # (G-1, N, C)
                distill_g = distillation_loss(flat, teacher, hp.temperature, hp.distill_loss)
                churn[g] = prediction_churn(flat.argmax(-1), teacher.softmax(-1).mean(0).argmax(-1))
            else:
                distill_g = flat.new_zeros((), dtype=torch.float)  # exactly zero during burn-in
            total = total + task_g + hp.alpha * distill_g
            task[g], distill[g] = task_g.detach(), distill_g.detach()
        self._log_groups(task, distill, churn)
        return {"loss": total, "task_loss": task, "distill_loss": distill}

    def _log_groups(self, task: Tensor, distill: Tensor, churn: Tensor) -> None:
        if self.group_index is not None:
            if (self.global_step + 1) % self.trainer.log_every_n_steps != 0:
                return  # gather the other groups' numbers only when the logger writes
            values = torch.stack([task, distill, churn]).nan_to_num(0.0)  # (3, G), own group filled
            strategy = self.trainer.strategy
            values = (
                strategy.reduce(values, reduce_op="sum") / strategy.ranks_per_group
            )  # mean over group ranks
            task, distill, churn = values
        for g in range(self.num_groups):
            self.log(f"train/task_loss_group{g}", task[g], on_step=True, on_epoch=False)
            self.log(f"train/distill_loss_group{g}", distill[g], on_step=True, on_epoch=False)
            if self._distilling():
                self.log(f"train/churn_to_teachers_group{g}", churn[g], on_step=True, on_epoch=False)
        self.log("train/task_loss", task.mean(), on_step=True, on_epoch=False, prog_bar=True)
        self.log("train/distill_loss", distill.mean(), on_step=True, on_epoch=False)

    # -- evaluation ------------------------------------------------------------------------------------------
    def _eval_step(self, batch: Any) -> None:
        inputs, targets = self._unpack(batch)
        if self.group_index is None:
            logits = torch.stack([r(inputs) for r in self.replicas])  # (G, B, ..., C)
            flat = logits.reshape(self.num_groups, -1, logits.shape[-1])  # (G, N, C)
            labels = targets.reshape(-1)  # (N,)
            preds = flat.argmax(-1)  # (G, N)
            losses = torch.stack(
                [F.cross_entropy(z.float(), labels, reduction="none") for z in flat]
            )  # (G, N)
        else:
            logits = self.replicas[self.group_index](inputs)
            flat = logits.reshape(-1, logits.shape[-1])  # (N, C)
            labels = targets.reshape(-1)
            # ranks r of every group evaluate the same slice r: gather to compare the groups sample by sample
            preds = self.all_gather(flat.argmax(-1))  # (W, N)
            losses = self.all_gather(F.cross_entropy(flat.float(), labels, reduction="none"))  # (W, N)
            labels = self.all_gather(labels)  # (W, N)
            ranks = preds.shape[0] // self.num_groups
            preds = preds.reshape(self.num_groups, ranks * preds.shape[1])  # (G, R*N), rank-major per group
            losses = losses.reshape(self.num_groups, -1)  # (G, R*N)
            labels = labels[:ranks].reshape(-1)  # (R*N,), group 0's copy
        correct = (preds == labels).float().sum(-1)  # (G,)
        count = torch.tensor([float(labels.numel())], device=self.device)
        disagree = mean_pairwise_churn(preds) * labels.numel()
        sums = torch.cat([correct, losses.float().sum(-1), count, disagree.reshape(1)])  # (2G + 2,)
        self._eval_sums = sums if self._eval_sums is None else self._eval_sums + sums

    def _log_eval(self, stage: str) -> None:
        if self._eval_sums is None:
            return
        sums, self._eval_sums = self._eval_sums, None
        num = self.num_groups
        sync = self.group_index is not None  # values are already equal on every rank; this silences a warning
        correct, loss_sum, count, disagree = sums[:num], sums[num : 2 * num], sums[2 * num], sums[2 * num + 1]
        for g in range(num):
            self.log(f"{stage}/acc_group{g}", correct[g] / count, sync_dist=sync)
            self.log(f"{stage}/loss_group{g}", loss_sum[g] / count, sync_dist=sync)
        self.log(f"{stage}/acc", correct.mean() / count, prog_bar=True, sync_dist=sync)
        self.log(f"{stage}/loss", loss_sum.mean() / count, sync_dist=sync)
        self.log(f"{stage}/churn", disagree / count, sync_dist=sync)

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if dataloader_idx == 0:  # image DataModules may add a kNN-bank loader, which this method does not use
            self._eval_step(batch)

    def on_validation_epoch_start(self) -> None:
        self._eval_sums = None

    def on_validation_epoch_end(self) -> None:
        self._log_eval("val")

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if dataloader_idx == 0:
            self._eval_step(batch)

    def on_test_epoch_start(self) -> None:
        self._eval_sums = None

    def on_test_epoch_end(self) -> None:
        self._log_eval("test")

    # -- prediction ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """Every group's prediction and the ensemble's, written by ``CodistillationPredictionWriter``.

        ``(inputs, targets)`` batches of a classifier: ``probs (G, B, C)``, every replica's class probabilities
        (the ensemble is their mean), and the ``targets``. Prompt batches (``ByteTextDataModule``'s predict:
        ``{"prompt": [text], "tokens": (1, L), "new_bytes": n}``): ``completions``, each replica's continuation
        and the ensemble's, sampled at temperature 1 with the same seed."""
        if isinstance(batch, dict):
            return {"completions": self._complete(batch, batch_idx)}
        inputs, targets = self._unpack(batch)
        probs = torch.stack([replica(inputs).float().softmax(-1) for replica in self.replicas])  # (G, B, ..., C)
        if probs.ndim != 3:
            raise ValueError(f"Codistillation's predict writes one class per sample, but the model gives outputs of "
                             f"shape {tuple(probs.shape[1:])}: for a language model, predict prompts "
                             "(lit_digest.codistillation.ByteTextDataModule with data.init_args.prompts).")
        return {"probs": probs, "targets": targets}

    def _complete(self, batch: dict, batch_idx: int) -> list[dict[str, str]]:
        n = int(batch["new_bytes"])
        row: dict[str, str] = {"prompt": batch["prompt"][0]}
        members = {f"group{g}": [replica] for g, replica in enumerate(self.replicas)}
        members["ensemble"] = list(self.replicas)
        for name, models in members.items():
            generator = torch.Generator().manual_seed(batch_idx)
            new = sample_bytes(models, batch["tokens"], n, generator)
            row[name] = bytes(new).decode("utf-8", errors="replace")
        return [row]

    def configure_callbacks(self) -> list:
        return [CodistillationPredictionWriter()]

    # -- optimisation ----------------------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        total = self.trainer.estimated_stepping_batches
        if (
            self.num_groups > 1
            and hp.alpha > 0
            and not self.trainer.fast_dev_run
            and hp.burn_in_steps >= total
        ):
            raise ValueError(
                f"burn_in_steps={hp.burn_in_steps} but training lasts only {total} optimisation steps, "
                "so the distillation term would never switch on; lower model.init_args.burn_in_steps or "
                "train longer."
            )
        if self.num_groups > 1 and hp.exchange_every >= total and not self.trainer.fast_dev_run:
            self.print(
                f"note: exchange_every={hp.exchange_every} >= {total} steps: teachers stay at initial weights"
            )
        replicas = [self.replicas[g] for g in self.trained_groups]
        return configure_optim(self, split_decay_groups(replicas), self.optim)
