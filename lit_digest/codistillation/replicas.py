"""Building codistillation's replicas: each from the model's own constructor, under its own seed.

Independently launched jobs start from independent draws of the *same* initialisation. Redrawing a
copy with each layer's ``reset_parameters`` is not that: torchvision's ResNet, for one, initialises its
convolutions with Kaiming-normal (fan-out) in its constructor, and the layers' own resets give weights
about 2.4x smaller. So a replica is rebuilt by the constructor that built the model:

- the model given as a zero-argument factory (``functools.partial(ResNet, depth=18, cifar_stem=True)``);
- a model built from a config by the CLI: its ``class_path`` / ``init_args`` are instantiated again;
- a model instance whose class defines ``reset_parameters`` (lit_digest's backbones do: it re-runs their
  constructor's initialisation): a copy is reset by it.

Anything else gets the layers' resets, with a warning that says how to do better.
"""

from __future__ import annotations

import copy
import importlib
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["instantiate", "replica_builder", "reinitialise"]


def instantiate(config: Any) -> Any:
    """An object from a ``{"class_path": ..., "init_args": {...}}`` config (nested configs included)."""
    if isinstance(config, dict) and "class_path" in config:
        module, _, name = config["class_path"].rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        return cls(**{k: instantiate(v) for k, v in (config.get("init_args") or {}).items()})
    if isinstance(config, dict):
        return {k: instantiate(v) for k, v in config.items()}
    if isinstance(config, list):
        return [instantiate(v) for v in config]
    return config


def reinitialise(module: nn.Module) -> nn.Module:
    """Redraw ``module`` in place: every layer's ``reset_parameters``, then the module's own (last, so that a
    model's custom initialisation wins over its layers' defaults)."""
    for layer in module.modules():
        reset = getattr(layer, "reset_parameters", None)
        if layer is not module and callable(reset):
            reset()
    own = getattr(module, "reset_parameters", None)
    if callable(own):
        own()
    return module


def _own_reset(model: nn.Module) -> bool:
    return any("reset_parameters" in vars(cls) for cls in type(model).__mro__ if cls not in (nn.Module, object))


def replica_builder(model: nn.Module | Callable[[], nn.Module], config: Any = None) -> Callable[[int], nn.Module]:
    """``build(seed)``: a freshly initialised replica of ``model`` (see the module docstring), drawn under
    ``seed`` without touching the process's random state."""
    if callable(model) and not isinstance(model, nn.Module):
        make: Callable[[], nn.Module] = model
    elif isinstance(config, dict) and "class_path" in config:
        def make() -> nn.Module:
            return instantiate(config)
    else:
        if not _own_reset(model):
            warnings.warn(
                f"Codistillation(independent_init=True) redraws the replicas of {type(model).__name__} with its "
                "layers' default initialisation, which may differ from its constructor's: pass the model as a "
                "factory (functools.partial(MyModel, ...)), build it from a config, or give its class a "
                "reset_parameters() that re-runs its own initialisation.", stacklevel=3)

        def make() -> nn.Module:
            return reinitialise(copy.deepcopy(model))

    def build(seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return make()

    return build
