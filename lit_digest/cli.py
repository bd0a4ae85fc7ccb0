"""``python -m lit_digest fit|validate|test|predict --config FILE`` (LightningCLI, subclass mode).

Models and DataModules are chosen by ``class_path`` in the config: lit_digest's by short name
(``model: BYOL``), anything importable by full path. Optimisers stay with the methods
(``auto_configure_optimizers=False``): a top-level ``optimizer:`` key is an error, not a silent
replacement of the method's ``configure_optimizers``.
"""

from __future__ import annotations

import netrc
import os
import sys
from pathlib import Path

import torch
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

import lit_digest  # noqa: F401  (registers the short class names)

__all__ = ["LitDigestCLI", "main", "configure_wandb_mode"]


def _has_wandb_key(environ: os._Environ | dict) -> bool:
    if environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc(environ.get("NETRC", str(Path.home() / ".netrc"))).authenticators("api.wandb.ai")
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return bool(auth and auth[2])


def configure_wandb_mode(environ: os._Environ | dict = os.environ) -> str:
    """Run W&B offline unless a mode is set or an API key exists, so that a run never stops at a
    login prompt. Returns the mode in force ("online" means W&B's own default)."""
    mode = environ.get("WANDB_MODE")
    if mode:
        return mode
    if _has_wandb_key(environ):
        return "online"
    environ["WANDB_MODE"] = "offline"
    print("lit_digest: no W&B API key found (WANDB_API_KEY or ~/.netrc); W&B logs offline. "
          "Upload later with `wandb sync <run dir>`.", file=sys.stderr)
    return "offline"


class WandbSaveConfig(SaveConfigCallback):
    """Writes the resolved config next to the logs (as LightningCLI does) and, for W&B runs,
    also into the run: as a file and under the ``cli`` key of the run config."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        for logger in trainer.loggers:
            if not isinstance(logger, WandbLogger):
                continue
            run = logger.experiment
            path = Path(run.dir) / "lit_digest_config.yaml"
            self.parser.save(self.config, str(path), skip_none=False, overwrite=True, multifile=False)
            run.save(str(path), base_path=run.dir, policy="now")
            run.config.update({"cli": self.config.as_dict()}, allow_val_change=True)


class LitDigestCLI(LightningCLI):
    def __init__(self, args: list[str] | None = None, run: bool = True, **kwargs) -> None:
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        super().__init__(
            LightningModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_callback=WandbSaveConfig,
            auto_configure_optimizers=False,
            args=args,
            run=run,
            **kwargs,
        )


def main(args: list[str] | None = None) -> LitDigestCLI:
    configure_wandb_mode()
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")  # TF32 for the fp32 parts
    return LitDigestCLI(args=args)
