"""The Lightning namespace every lit_digest class builds on: ``lightning.pytorch`` or ``pytorch_lightning``.

The two packages ship the same code under two names, and a Trainer of one refuses the modules,
DataModules and callbacks of the other. lit_digest picks one namespace once, when this module is
first imported, and all its classes subclass that one:

1. ``LIT_DIGEST_LIGHTNING`` in the environment, if set: ``lightning`` (or ``lightning.pytorch``)
   or ``pytorch_lightning``;
2. otherwise ``pytorch_lightning`` when the process has already imported ``pytorch_lightning``
   and not ``lightning.pytorch`` (a project that writes ``import pytorch_lightning as pl``
   before ``import lit_digest``);
3. otherwise ``lightning.pytorch``.

Everything else in lit_digest imports Lightning through this module::

    from lit_digest.core.lightning import LightningModule, pl
    pl.callbacks.ModelCheckpoint, pl.loggers.WandbLogger, pl.utilities.rank_zero_info, ...
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import warnings
from collections.abc import Iterator
from types import ModuleType

__all__ = [
    "ENV_VAR", "NAMESPACE", "pl", "submodule", "Callback", "LightningDataModule", "LightningModule", "Trainer",
    "seed_everything", "modules_in_hparams",
]

ENV_VAR = "LIT_DIGEST_LIGHTNING"
_CHOICES = {"lightning": "lightning.pytorch", "lightning.pytorch": "lightning.pytorch",
            "pytorch_lightning": "pytorch_lightning", "pytorch-lightning": "pytorch_lightning"}


def choose_namespace(environ: dict | os._Environ = os.environ, imported: dict | None = None) -> str:
    """The module name to build on, by the rules of the module docstring."""
    imported = sys.modules if imported is None else imported
    wanted = environ.get(ENV_VAR, "").strip()
    if wanted:
        if wanted not in _CHOICES:
            raise ValueError(
                f"{ENV_VAR}={wanted!r} is not a Lightning namespace: set it to 'lightning' or 'pytorch_lightning'."
            )
        return _CHOICES[wanted]
    if "pytorch_lightning" in imported and "lightning.pytorch" not in imported:
        return "pytorch_lightning"
    return "lightning.pytorch"


NAMESPACE: str = choose_namespace()
pl: ModuleType = importlib.import_module(NAMESPACE)
for _sub in ("callbacks", "loggers", "strategies", "utilities"):  # reachable as pl.<sub> everywhere
    importlib.import_module(f"{NAMESPACE}.{_sub}")


def submodule(name: str) -> ModuleType:
    """``<namespace>.<name>``, e.g. ``submodule("trainer.states")``."""
    return importlib.import_module(f"{NAMESPACE}.{name}")




class LightningModule(pl.LightningModule):
    """``pl.LightningModule`` whose ``load_from_checkpoint(path)`` works on its own for every lit_digest method.

    Methods keep injected modules (a backbone, a generator) in their hyperparameters so that a checkpoint
    rebuilds them; torch's default ``weights_only=True`` loading refuses those classes. Here the classes a
    checkpoint names are allowed when they are ``nn.Module`` classes or lit_digest's settings dataclasses, and
    nothing else (``lit_digest.core.checkpoints.trusted_classes``); a checkpoint of another method is refused at
    once with one line (``expect_checkpoint``). An explicit ``weights_only`` goes to Lightning as it is.
    """

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, map_location=None, hparams_file=None, strict=None, **kwargs):
        if "weights_only" in kwargs or not isinstance(checkpoint_path, (str, os.PathLike)):
            return super().load_from_checkpoint(checkpoint_path, map_location, hparams_file, strict, **kwargs)
        from lit_digest.core.checkpoints import expect_checkpoint, trusted_classes

        expect_checkpoint(checkpoint_path, cls)
        with trusted_classes(checkpoint_path):
            return super().load_from_checkpoint(checkpoint_path, map_location, hparams_file, strict,
                                                weights_only=True, **kwargs)


LightningDataModule = pl.LightningDataModule
Callback = pl.Callback
Trainer = pl.Trainer
seed_everything = pl.seed_everything


@contextlib.contextmanager
def modules_in_hparams() -> Iterator[None]:
    """Around ``save_hyperparameters()`` of a method that keeps an injected ``nn.Module`` (backbone, model)
    in its hyperparameters on purpose: that is what lets ``Method.load_from_checkpoint(path)`` rebuild it
    (as its class_path config under the CLI). Silences Lightning's advice to ignore it, here only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Attribute '\w+' is an instance of `nn.Module`")
        yield
