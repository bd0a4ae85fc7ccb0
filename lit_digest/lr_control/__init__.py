"""A learned hyperparameter controller for any Lightning run (Almeida et al., arXiv 2106.00958).

- ``HyperparameterControl`` (``callback``): the callback; ``PlateauController`` / ``LearnedController`` /
  ``ControllerPolicy`` (``policy``): what decides; ``features`` and ``actions``: what it sees and does;
- ``MetaTraining`` (``meta``): PPO (``ppo``) on a pool of small offline tasks (``tasks``) with the paper's
  speedup reward (``reward``): ``python -m lit_digest fit --config configs/lr_control/pool.yaml``;
- ``speedup``: held-out tasks, the AdamW grid, the heuristic and the learned controller in one table:
  ``python -m lit_digest.lr_control.speedup --policy <checkpoint>``.
"""

from lit_digest.lr_control.actions import ACTION_SCALES, HYPERPARAMETERS
from lit_digest.lr_control.callback import HyperparameterControl, decision_steps
from lit_digest.lr_control.features import FEATURE_NAMES, NUM_FEATURES, Observation
from lit_digest.lr_control.meta import MetaTraining, TaskPool
from lit_digest.lr_control.policy import Controller, ControllerPolicy, LearnedController, PlateauController, load_policy
from lit_digest.lr_control.ppo import PPOConfig
from lit_digest.lr_control.tasks import HELD_OUT, POOL, TaskModule, TaskSpec

__all__ = [
    "HyperparameterControl", "decision_steps", "Controller", "PlateauController", "LearnedController",
    "ControllerPolicy", "load_policy", "Observation", "FEATURE_NAMES", "NUM_FEATURES", "ACTION_SCALES",
    "HYPERPARAMETERS", "MetaTraining", "TaskPool", "PPOConfig", "TaskModule", "TaskSpec", "POOL", "HELD_OUT",
]
