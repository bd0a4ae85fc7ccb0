"""Meta-training the controller with PPO on a pool of small tasks, as a LightningModule.

``python -m lit_digest fit --config configs/lr_control/pool.yaml`` trains it like any method of the zoo: one
training step is one PPO iteration (``episodes_per_iteration`` inner runs of pool tasks, each controlled by the
current policy through the very ``HyperparameterControl`` callback users attach, then ``ppo.epochs`` passes of
PPO), one epoch is ``iterations_per_epoch`` iterations, Lightning's progress bar counts them, ``ModelCheckpoint``
keeps the policy and its optimiser, and ``--resume auto`` continues a stopped run exactly: every random choice of
iteration ``i`` (tasks, seeds, starting learning rates, sampled actions, minibatches) is drawn from
``(seed, i)``. The policy is also written to ``<run folder>/policy.pt`` at the end, for ``LearnedController``.

``predict`` shows what the policy does: it runs every task of the pool once (seed 0, the task's nominal learning
rate) under the policy, greedy, and writes each decision (step, the factor chosen for every hyperparameter, the
learning rate after it, the losses it saw) to ``<run folder>/trajectories.csv`` (``TrajectoryWriter``).

Each episode starts its task at its nominal AdamW learning rate times ``10 ** U(-lr_noise, lr_noise)`` (the
paper perturbs the initial learning rate by up to 100x either way, ``noise_definition`` in its config), so that
the policy learns to repair a poor starting point, and is rewarded by its log speedup over the task's baseline run
(``reward``: the nominal learning rate, constant, seed 0, run once per task and kept in the checkpoint).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import torch
from torch.utils.data import DataLoader

from lit_digest.core.callbacks import run_dir
from lit_digest.core.lightning import LightningDataModule, LightningModule, pl
from lit_digest.core.outputs import announce
from lit_digest.lr_control.actions import HYPERPARAMETERS
from lit_digest.lr_control.callback import HyperparameterControl
from lit_digest.lr_control.features import NUM_FEATURES
from lit_digest.lr_control.policy import ControllerPolicy, LearnedController
from lit_digest.lr_control.ppo import PPOConfig, gae, ppo_loss
from lit_digest.lr_control.reward import BaselineCurve, log_speedup, shaped_rewards
from lit_digest.lr_control.tasks import POOL, TaskSpec, available, run_task, scaled

__all__ = ["MetaTraining", "TaskPool", "TrajectoryWriter"]


class TaskPool(LightningDataModule):
    """The meta-training "data": ``iterations_per_epoch`` ticks per epoch, and the tasks an iteration draws from.

    Args:
        tasks: names from ``lit_digest.lr_control.tasks.POOL`` (empty: all whose data exist on this machine).
        step_scale: every task's step budget times this (rounded to a multiple of the decisions).
        lr_noise: the starting learning rate's spread, in decades either way.
        iterations_per_epoch: PPO iterations per Lightning epoch (a checkpoint at each epoch's end).
    """

    def __init__(self, tasks: Sequence[str] = (), step_scale: float = 1.0, lr_noise: float = 1.0,
                 iterations_per_epoch: int = 5) -> None:
        super().__init__()
        unknown = set(tasks) - {s.name for s in POOL}
        if unknown:
            raise ValueError(f"unknown pool tasks {sorted(unknown)}; the pool: {[s.name for s in POOL]}")
        self.tasks, self.step_scale, self.lr_noise = tuple(tasks), step_scale, lr_noise
        self.iterations_per_epoch = iterations_per_epoch

    def specs(self, decisions: int) -> list[TaskSpec]:
        chosen = [s for s in POOL if (not self.tasks or s.name in self.tasks) and available(s)]
        if not chosen:
            raise ValueError(f"no task of the pool is available here (asked for {self.tasks or 'all'})")
        return [scaled(s, self.step_scale, decisions) for s in chosen]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(list(range(self.iterations_per_epoch)), batch_size=None)

    def predict_dataloader(self) -> DataLoader:
        """The names of the tasks ``predict`` runs under the policy, one a batch."""
        names = [s.name for s in POOL if (not self.tasks or s.name in self.tasks) and available(s)]
        return DataLoader(names, batch_size=1)


class TrajectoryWriter(pl.callbacks.BasePredictionWriter):
    """Writes the decisions ``MetaTraining.predict_step`` returns as ``trajectories.csv`` in the run folder: one row
    per task and decision (``task``, ``decision``, ``step``, ``<hyperparameter>_factor`` and ``_scale``, ``lr``,
    ``train_loss``, ``val_loss``)."""

    def __init__(self) -> None:
        super().__init__(write_interval="batch")
        self.rows: list[dict] = []

    def on_predict_epoch_start(self, trainer, pl_module) -> None:
        self.rows = []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx,
                           dataloader_idx=0) -> None:
        self.rows += prediction

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        if not self.rows or not trainer.is_global_zero:
            return
        import pandas as pd

        path = run_dir(trainer) / "trajectories.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(self.rows).to_csv(path, index=False)
        announce(path, len(self.rows), "controller decisions")


class MetaTraining(LightningModule):
    """PPO on the task pool (Almeida et al., arXiv 2106.00958, Sec. 3).

    Trains with ``data: lit_digest.lr_control.TaskPool`` (the tasks and the iterations per epoch).

    Args:
        episodes_per_iteration: inner runs per PPO iteration.
        decisions: the controller's decisions per inner run.
        hidden: the policy's width (``ControllerPolicy``).
        ppo: PPO settings (``PPOConfig``).
        seed: the root of every random choice of meta-training.
    """

    def __init__(self, episodes_per_iteration: int = 16, decisions: int = 16, hidden: int = 64,
                 ppo: PPOConfig | dict = PPOConfig(), seed: int = 0) -> None:
        super().__init__()
        self.ppo = PPOConfig(**ppo) if isinstance(ppo, dict) else ppo
        self.save_hyperparameters()
        self.hparams["ppo"] = asdict(self.ppo)  # plain data: checkpoints load with torch's weights_only
        self.automatic_optimization = False
        with torch.random.fork_rng(devices=[]):  # the policy's initialisation, too, comes from `seed`
            torch.manual_seed(seed)
            self.policy = ControllerPolicy(NUM_FEATURES, hidden)
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))
        self.baselines: dict[str, BaselineCurve] = {}

    def forward(self, obs: torch.Tensor):
        return self.policy(obs)

    # -- rollouts ---------------------------------------------------------------------------------
    def baseline(self, spec: TaskSpec) -> BaselineCurve:
        if spec.name not in self.baselines:
            initial, points = run_task(spec, seed=0, val_points=self.hparams.decisions)
            self.baselines[spec.name] = BaselineCurve([s for s, _ in points], [v for _, v in points], initial)
        return self.baselines[spec.name]

    def episode(self, spec: TaskSpec, seed: int, lr: float) -> dict:
        """One controlled run: the trajectory and its per-decision rewards."""
        K = self.hparams.decisions
        controller = LearnedController(policy=self.policy, greedy=False, seed=seed, record=True)
        _, points = run_task(spec, seed, lr=lr, callbacks=[HyperparameterControl(controller, decisions=K)],
                             val_points=K)
        curve, interval, val_at = self.baseline(spec), spec.steps // K, dict(points)
        trajectory = controller.trajectory
        speedups = [log_speedup(curve, val_at.get((k + 1) * interval, math.nan), (k + 1) * interval)
                    for k in range(len(trajectory))]
        return {"trajectory": trajectory, "rewards": shaped_rewards(speedups), "final": speedups[-1]}

    def training_step(self, batch, batch_idx: int) -> None:
        hp, it = self.hparams, int(self.iteration)
        rng = np.random.default_rng([hp.seed, it])
        pool: TaskPool = self.trainer.datamodule
        specs = pool.specs(hp.decisions)
        self.policy.eval()
        episodes = []
        for _ in range(hp.episodes_per_iteration):
            spec = specs[int(rng.integers(len(specs)))]
            seed, noise = int(rng.integers(2**31)), float(rng.uniform(-pool.lr_noise, pool.lr_noise))
            episodes.append(self.episode(spec, seed, spec.lr * 10**noise))
        self.policy.train()
        stats = self.update(episodes, torch.Generator().manual_seed(hp.seed * 100_003 + it))
        finals = torch.tensor([e["final"] for e in episodes])
        self.log("meta/log_speedup", finals.mean(), prog_bar=True)
        self.log("meta/speedup_geomean", finals.mean().exp())
        self.log("meta/iteration", float(it))
        self.log_dict({f"meta/{k}": v for k, v in stats.items()})
        self.iteration += 1

    # -- PPO --------------------------------------------------------------------------------------
    def update(self, episodes: list[dict], generator: torch.Generator) -> dict[str, torch.Tensor]:
        E, K = len(episodes), self.hparams.decisions
        obs = torch.zeros(E, K, NUM_FEATURES)
        actions = torch.zeros(E, K, len(HYPERPARAMETERS), dtype=torch.long)
        old_logprob, values, rewards, mask = (torch.zeros(E, K) for _ in range(4))
        for e, episode in enumerate(episodes):
            for k, (step, reward) in enumerate(zip(episode["trajectory"], episode["rewards"])):
                obs[e, k], actions[e, k] = step["obs"], torch.tensor(step["actions"])
                old_logprob[e, k], values[e, k], rewards[e, k], mask[e, k] = step["logprob"], step["value"], reward, 1
        advantages, returns = gae(rewards, values, mask, self.ppo.gamma, self.ppo.lam)
        n = mask.sum().clamp_min(1)
        mean = (advantages * mask).sum() / n
        std = (((advantages - mean) ** 2 * mask).sum() / n).sqrt().clamp_min(1e-8)
        advantages = (advantages - mean) / std * mask
        optimizer = self.optimizers()
        stats: dict[str, torch.Tensor] = {}
        for _ in range(self.ppo.epochs):
            for rows in torch.randperm(E, generator=generator).chunk(self.ppo.minibatches):
                logits, new_values = self.policy.unroll(obs[rows])
                loss, stats = ppo_loss(logits, new_values, actions[rows], old_logprob[rows], advantages[rows],
                                       returns[rows], mask[rows], self.ppo.clip, self.ppo.value, self.ppo.entropy)
                optimizer.zero_grad()
                self.manual_backward(loss)
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.ppo.max_grad_norm)
                optimizer.step()
        return stats

    # -- predict: the policy at work -----------------------------------------------------------------
    def predict_step(self, batch, batch_idx: int) -> list[dict]:
        """Every decision of the greedy policy on the named pool task (seed 0, the nominal learning rate)."""
        name = batch[0] if isinstance(batch, (list, tuple)) else batch
        spec = next(s for s in self.trainer.datamodule.specs(self.hparams.decisions) if s.name == name)
        decisions = self.hparams.decisions
        control = HyperparameterControl(LearnedController(policy=self.policy, greedy=True), decisions=decisions)
        with torch.inference_mode(False), torch.enable_grad():  # an inner training run inside predict
            run_task(spec, seed=0, lr=spec.lr, callbacks=[control], val_points=decisions)
        return [{"task": spec.name, **record} for record in control.history]

    def configure_callbacks(self) -> list:
        return [TrajectoryWriter()]

    def configure_optimizers(self):
        return torch.optim.Adam(self.policy.parameters(), lr=self.ppo.lr, betas=(0.9, 0.999))

    # -- checkpoints ------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["baselines"] = {name: (list(c.steps), list(c.losses), c.initial)
                                   for name, c in self.baselines.items()}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.baselines = {name: BaselineCurve(*v) for name, v in checkpoint.get("baselines", {}).items()}

    def on_train_end(self) -> None:
        if self.trainer.is_global_zero:
            path = run_dir(self.trainer) / "policy.pt"
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"policy_config": {"num_features": NUM_FEATURES, "hidden": self.hparams.hidden},
                        "state_dict": self.policy.state_dict()}, path)
