"""Weights & Biases for the command line: the mode (``lit_digest.core.tracking``) and the resolved config
inside the run."""

from __future__ import annotations

import os
from pathlib import Path

from lit_digest.core.lightning import LightningModule, Trainer, pl, submodule
from lit_digest.core.tracking import configure_wandb_mode, wandb_reachable

__all__ = ["configure_wandb_mode", "wandb_reachable", "WandbSaveConfig"]

SaveConfigCallback = submodule("cli").SaveConfigCallback


class WandbSaveConfig(SaveConfigCallback):
    """Writes the resolved config into the run folder (as LightningCLI does) and, for W&B runs, also into
    the W&B run: as a file and under the ``cli`` key of the run config. A disabled W&B run is left alone."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        for logger in trainer.loggers:
            if not isinstance(logger, pl.loggers.WandbLogger):
                continue
            run = logger.experiment
            if os.environ.get("WANDB_MODE") == "disabled" or not Path(run.dir).is_dir():
                continue
            path = Path(run.dir) / "lit_digest_config.yaml"
            self.parser.save(self.config, str(path), skip_none=False, overwrite=True, multifile=False)
            run.save(str(path), base_path=run.dir, policy="now")
            run.config.update({"cli": self.config.as_dict()}, allow_val_change=True)
