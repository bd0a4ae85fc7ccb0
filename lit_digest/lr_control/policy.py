"""The controllers behind ``HyperparameterControl``: a learned recurrent policy and a reduce-on-plateau heuristic.

A controller maps an ``Observation`` to one action index per hyperparameter (``ACTION_SCALES``). Both share
that interface, so the callback, its logging and its tests are the same for either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from lit_digest.lr_control.actions import ACTION_SCALES, HYPERPARAMETERS, NO_CHANGE, action_sizes
from lit_digest.lr_control.features import NUM_FEATURES, Observation

__all__ = ["ControllerPolicy", "Controller", "PlateauController", "LearnedController", "load_policy", "POOL_POLICY"]

# The policy meta-trained by `python -m lit_digest fit --config configs/lr_control/pool.yaml` (docs/lr_control.md
# gives the run): what LearnedController() loads when given no checkpoint.
POOL_POLICY = Path(__file__).with_name("pool_policy.pt")

State = tuple[torch.Tensor, torch.Tensor]


class ControllerPolicy(nn.Module):
    """An LSTM actor-critic over the run's features: ``(B, F)`` observations to one categorical distribution per
    hyperparameter and a value.

    The paper's policy is an LSTM with layer norm and 256-unit MLPs before and after it, with an EWMA input
    normalisation (``example_config.jsonnet``, ``policy.net``); ours is the same shape at ``hidden`` units
    (64 by default: meta-training on a 2-core CPU) and needs no input normalisation, as every feature is already
    bounded. The action heads start at zero, so the first policy picks every factor with equal probability.
    The critic shares the trunk (the paper's critic also sees privileged task features; ours sees the same
    features as the actor).
    """

    def __init__(self, num_features: int = NUM_FEATURES, hidden: int = 64,
                 sizes: Sequence[int] = action_sizes()) -> None:
        super().__init__()
        self.num_features, self.hidden, self.sizes = num_features, hidden, tuple(sizes)
        self.encoder = nn.Sequential(nn.Linear(num_features, hidden), nn.LayerNorm(hidden), nn.Tanh())
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.heads = nn.ModuleList([nn.Linear(2 * hidden, n) for n in self.sizes])
        self.value = nn.Linear(2 * hidden, 1)
        for head in self.heads:
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def initial_state(self, batch: int) -> State:
        zeros = torch.zeros(batch, self.hidden, device=self.value.weight.device)
        return zeros, zeros.clone()

    def forward(self, obs: torch.Tensor, state: State | None = None) -> tuple[list[torch.Tensor], torch.Tensor, State]:
        """``obs`` (B, F) -> logits ``[(B, A_i)]``, value (B,), the new LSTM state."""
        x = self.encoder(obs)  # (B, H)
        h, c = self.lstm(x, state if state is not None else self.initial_state(obs.shape[0]))
        z = torch.cat([x, self.norm(h)], dim=-1)  # (B, 2H)
        return [head(z) for head in self.heads], self.value(z).squeeze(-1), (h, c)

    def unroll(self, obs: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """A whole episode from the initial state: ``obs`` (E, K, F) -> logits ``[(E, K, A_i)]``, values (E, K)."""
        state = self.initial_state(obs.shape[0])
        logits: list[list[torch.Tensor]] = [[] for _ in self.sizes]
        values = []
        for k in range(obs.shape[1]):
            step_logits, value, state = self(obs[:, k], state)
            for i, lg in enumerate(step_logits):
                logits[i].append(lg)
            values.append(value)
        return [torch.stack(lg, dim=1) for lg in logits], torch.stack(values, dim=1)


class Controller:
    """Chooses ``{hyperparameter: action index}`` at each decision. ``reset`` starts a run; ``state_dict`` /
    ``load_state_dict`` carry its memory through a checkpoint."""

    def reset(self) -> None:
        pass

    def decide(self, obs: Observation) -> dict[str, int]:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class PlateauController(Controller):
    """Reduce-on-plateau with relative actions: the default before any meta-training.

    At each decision the monitored loss is the fresh validation loss when there is one, else the interval's mean
    training loss. When it has not improved on the best so far by ``threshold`` (relative) for ``patience``
    decisions, or is not finite, the learning rate is multiplied by ``factor`` (one of ``ACTION_SCALES["lr"]``)
    and the count starts again; weight decay and momentum are left alone. With 16 decisions, ``patience=2``
    reacts within an eighth of the run (``patience=1`` cut the learning rate of slow-starting CNNs on our tasks
    during their first plateau).
    """

    def __init__(self, factor: float = 0.5, patience: int = 2, threshold: float = 0.01) -> None:
        if factor not in ACTION_SCALES["lr"]:
            raise ValueError(f"factor must be one of {ACTION_SCALES['lr']}, got {factor}")
        self.factor, self.patience, self.threshold = factor, patience, threshold
        self.reset()

    def reset(self) -> None:
        self.best = math.inf
        self.bad = 0

    def decide(self, obs: Observation) -> dict[str, int]:
        loss = obs.val_loss if obs.val_fresh and obs.val_loss is not None else obs.train_loss
        actions = dict(NO_CHANGE)
        if not math.isfinite(loss):
            self.bad = 0
            actions["lr"] = ACTION_SCALES["lr"].index(self.factor)
            return actions
        if loss < self.best * (1 - self.threshold):
            self.best, self.bad = loss, 0
        else:
            self.bad += 1
            if self.bad >= self.patience:
                self.bad = 0
                actions["lr"] = ACTION_SCALES["lr"].index(self.factor)
        return actions

    def state_dict(self) -> dict:
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.bad = state["best"], state["bad"]


def load_policy(path: str | Path) -> ControllerPolicy:
    """A policy from ``MetaTraining``'s Lightning checkpoint (``checkpoints/last.ckpt``) or from an exported
    ``policy.pt`` (``{"policy_config", "state_dict"}``). Anything else is refused at once, with one line: a missing
    file, a file that is not a torch checkpoint, another method's checkpoint, or weights of another size."""
    from lit_digest.core.checkpoints import expect_checkpoint
    from lit_digest.lr_control.meta import MetaTraining

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No controller policy at '{path.resolve()}': give the policy.pt a meta-training run "
                                "wrote (runs/lr_control-pool/<run>/policy.pt), its checkpoints/last.ckpt, or nothing "
                                "for the policy shipped with lit_digest.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a Lightning checkpoint that names classes, or no checkpoint at all: say which
        state = None
    if not (isinstance(state, dict) and "policy_config" in state):
        state = expect_checkpoint(path, MetaTraining)  # "not a MetaTraining checkpoint" for anything else
        config = {"hidden": state["hyper_parameters"].get("hidden", 64)}
        weights = {k[len("policy."):]: v for k, v in state["state_dict"].items() if k.startswith("policy.")}
    else:  # exported file
        config, weights = state["policy_config"], state["state_dict"]
    policy = ControllerPolicy(**config)
    try:
        policy.load_state_dict(weights)
    except RuntimeError as err:
        raise ValueError(f"'{path}' holds a policy that does not fit ControllerPolicy({config}): "
                         f"{' '.join(str(err).split())[:300]}") from err
    return policy.eval()


class LearnedController(Controller):
    """A meta-trained ``ControllerPolicy``: greedy (the most likely factor) by default, or sampled with a seeded
    generator. ``record`` keeps every decision's observation, action, log-probability and value (meta-training's
    rollouts). Without ``checkpoint`` or ``policy`` it loads ``POOL_POLICY``, the policy shipped with lit_digest."""

    def __init__(self, checkpoint: str | None = None, policy: ControllerPolicy | None = None, greedy: bool = True,
                 seed: int = 0, record: bool = False) -> None:
        if checkpoint is not None and policy is not None:
            raise ValueError("LearnedController takes a checkpoint path or a policy, not both")
        self.policy = policy if policy is not None else load_policy(checkpoint or POOL_POLICY)
        self.greedy, self.seed, self.record = greedy, seed, record
        self.reset()

    def reset(self) -> None:
        self.state: State | None = None
        self.generator = torch.Generator().manual_seed(self.seed)
        self.trajectory: list[dict] = []

    @torch.no_grad()
    def decide(self, obs: Observation) -> dict[str, int]:
        logits, value, self.state = self.policy(obs.vector.unsqueeze(0), self.state)
        actions, logprob = {}, 0.0
        for name, lg in zip(HYPERPARAMETERS, logits):
            logp = torch.log_softmax(lg[0], dim=-1)
            if self.greedy:
                index = int(logp.argmax())
            else:
                index = int(torch.multinomial(logp.exp(), 1, generator=self.generator))
            actions[name] = index
            logprob += float(logp[index])
        if self.record:
            self.trajectory.append({"obs": obs.vector.clone(), "actions": [actions[n] for n in HYPERPARAMETERS],
                                    "logprob": logprob, "value": float(value[0])})
        return actions

    def state_dict(self) -> dict:
        return {"state": self.state, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.state = state["state"]
        self.generator.set_state(state["generator"])
