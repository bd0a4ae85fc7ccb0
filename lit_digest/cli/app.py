"""``python -m lit_digest fit|validate|test|predict --config FILE`` (LightningCLI, subclass mode).

Models and DataModules are chosen by ``class_path`` in the config: lit_digest's by full path
(``lit_digest.ssl.BYOL``) or short name (``BYOL``; this module imports every domain package explicitly
so that the short names resolve), anything importable by full path. Optimisers stay with the methods
(``auto_configure_optimizers=False``): a top-level ``optimizer:`` key is an error, not a silent
replacement of the method's ``configure_optimizers``.

- ``runs``: a folder per run, ``--resume auto``; ``tracking``: W&B that never hangs; ``console``: the
  shipped configs (``list``, ``--config byol/cifar10``), short errors, no set-up noise.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any, Literal

import torch

# Every domain, imported here and not by ``import lit_digest``, so that ``model: BYOL`` resolves.
import lit_digest.codistillation
import lit_digest.depth.boost
import lit_digest.depth.data
import lit_digest.depth.estimator  # lit_digest.depth loads its names lazily: its Lightning classes, imported
import lit_digest.gan
import lit_digest.lr_control
import lit_digest.muse
import lit_digest.nerf
import lit_digest.ssl
import lit_digest.ssl.aet
import lit_digest.ssl.genrep
import lit_digest.tabular
import lit_digest.text
import lit_digest.text2image  # noqa: F401
from lit_digest.cli.console import listing, overview, quiet, readable_help, resolve_config_paths, short_error
from lit_digest.cli.runs import (
    best_checkpoint,
    find_resumable_run,
    new_run_dir,
    run_name,
    wandb_run_id,
    write_identity,
)
from lit_digest.cli.tracking import WandbSaveConfig, configure_wandb_mode
from lit_digest.core.callbacks import MonitoredMetricCheck, ProgressBar
from lit_digest.core.lightning import LightningDataModule, pl, submodule

LightningCLI = submodule("cli").LightningCLI

__all__ = ["LitDigestCLI", "main"]

RUNS_ROOT = Path("runs")


def _class_name(cfg: Any) -> str:
    return str(getattr(cfg, "class_path", "") or "").rsplit(".", 1)[-1]


def _short_parser_errors(parser: Any, config_files: list[str]) -> None:
    """A mistyped key gets a few lines with the closest valid key instead of the full usage text."""
    full = parser.error

    def error(self, message: str, *args, **kwargs):
        text = short_error(str(message), config_files)
        if text is None:
            return full(message, *args, **kwargs)
        print(text, file=sys.stderr)
        raise SystemExit(2)

    parser.error = types.MethodType(error, parser)


class LitDigestCLI(LightningCLI):
    """LightningCLI in subclass mode, with lit_digest's run folders (``lit_digest.runs``) and ``--resume auto``."""

    def __init__(self, args: list[str] | None = None, run: bool = True, **kwargs) -> None:
        self._argv = args
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        super().__init__(
            pl.LightningModule,  # any LightningModule, not only lit_digest's
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_callback=WandbSaveConfig,
            auto_configure_optimizers=False,
            args=args,
            run=run,
            **kwargs,
        )

    def init_parser(self, **kwargs):
        parser = super().init_parser(**kwargs)
        argv = self._argv if self._argv is not None else sys.argv[1:]
        _short_parser_errors(parser, [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"])
        return parser

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--resume", type=Literal["auto"] | None, default=None,
            help="auto: continue the newest run of this config (runs/<name>/...) from its newest checkpoint",
        )

    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        self._config_files = [str(c) for c in cfg.get("config") or []]
        name = run_name(self._config_files, getattr(cfg.model, "class_path", None))
        trainer = cfg.trainer
        wanted = cfg.get("ckpt_path")
        if cfg.get("resume") == "auto" or wanted in ("last", "best") and self.subcommand != "fit" or wanted == "last":
            cfg.ckpt_path = str(_resolve_checkpoint(name, self._config_files, "best" if wanted == "best" else "last"))
        ckpt = Path(str(cfg.get("ckpt_path") or ""))
        in_a_run = ckpt.parent.name == "checkpoints"
        continuing = self.subcommand == "fit" and in_a_run and trainer.default_root_dir is None
        if continuing:
            trainer.default_root_dir = str(ckpt.parent.parent)  # a resumed run goes on in its own folder
        if trainer.default_root_dir is None:
            trainer.default_root_dir = str(new_run_dir(RUNS_ROOT, name))
        run_dir = Path(trainer.default_root_dir)
        loggers = trainer.logger if isinstance(trainer.logger, list) else [trainer.logger]
        for logger in loggers:
            if _class_name(logger) == "WandbLogger":
                args = logger.init_args
                args.name = args.name or name
                args.save_dir = str(run_dir) if args.save_dir in (None, ".") else args.save_dir
                if continuing and args.get("id") is None:
                    args.id = wandb_run_id(run_dir)  # the same W&B run goes on
        for callback in trainer.callbacks or []:
            if _class_name(callback) == "ModelCheckpoint" and callback.init_args.dirpath is None:
                # validate/test/predict of a run's checkpoint: its own folder, so Lightning restores the callback's
                # state as it was (and does not warn that "the dirpath has changed")
                own = ckpt.parent if in_a_run and self.subcommand != "fit" else run_dir / "checkpoints"
                callback.init_args.dirpath = str(own)
        if trainer.get("enable_model_summary") is None:  # one line (before_fit) instead of Lightning's table
            trainer.enable_model_summary = False
        if trainer.logger in (False, None) and trainer.callbacks:  # a callback that needs a logger would crash
            kept = [c for c in trainer.callbacks if _class_name(c) != "LearningRateMonitor"]
            if len(kept) < len(trainer.callbacks):
                print("lit_digest: no logger, so the LearningRateMonitor callback is left out", file=sys.stderr)
                trainer.callbacks = kept

    def instantiate_trainer(self, **kwargs: Any):
        trainer = super().instantiate_trainer(**kwargs)
        extra = [MonitoredMetricCheck()]
        bar = trainer.progress_bar_callback
        if bar is not None and type(bar) is pl.callbacks.RichProgressBar:  # the default one: same bar, but
            extra.append(ProgressBar())  # "Epoch 3" (not "Epoch 3/-2") when steps bound the run
            trainer.callbacks.remove(bar)
        trainer.callbacks[:0] = extra
        return trainer

    def before_fit(self) -> None:
        _summary(self)
        if self.trainer.is_global_zero:
            write_identity(Path(self.trainer.default_root_dir), self._config_files)

    def after_fit(self) -> None:
        if not self.trainer.is_global_zero:
            return
        checkpoints = self.trainer.checkpoint_callbacks
        best = next((c for c in checkpoints if c.monitor and c.best_model_path), None)
        last = next((c.last_model_path for c in checkpoints if c.last_model_path), None)
        if best is not None:
            print(f"lit_digest: best {best.monitor} = {float(best.best_model_score):.4g} at {best.best_model_path}"
                  " (test it: --ckpt_path best)", flush=True)
        elif last:
            print(f"lit_digest: last checkpoint {last} (no validation metric is monitored)", flush=True)


def _resolve_checkpoint(name: str, config_files: list[str], which: str) -> Path:
    """``--resume auto`` / ``--ckpt_path last``: the newest checkpoint of the newest run of these configs;
    ``--ckpt_path best`` (validate, test, predict): that run's best checkpoint."""
    found = find_resumable_run(RUNS_ROOT, name, config_files)
    if found is None:
        raise SystemExit(f"lit_digest: nothing to resume: no run of '{name}' with a checkpoint under "
                         f"'{(RUNS_ROOT / name).resolve()}'. Start one without --resume / --ckpt_path {which}.")
    if which == "last":
        print(f"lit_digest: using {found[1]}, the newest checkpoint of '{name}'", file=sys.stderr)
        return found[1]
    best, monitor, score = best_checkpoint(found[0])
    if best is None:
        why = f"no best {monitor} was recorded" if monitor else "its ModelCheckpoint monitors no metric"
        raise SystemExit(f"lit_digest: the newest run of '{name}' ({found[0]}) has no best checkpoint: {why}. Use "
                         "--ckpt_path last, or a checkpoint's path.")
    print(f"lit_digest: using {best}, the best checkpoint of '{name}' ({monitor} = {score:.4g})", file=sys.stderr)
    return best


def _count(n: int) -> str:
    return f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.0f} K"


def _summary(cli: LitDigestCLI) -> None:
    model, trainer = cli.model, cli.trainer
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    size = (f"{_count(trainable)} trainable parameters of {_count(total)}" if total else
            "built from the data when it starts")  # SAINT sizes itself on the table's columns
    print(f"lit_digest: {type(model).__name__} ({size}) on {type(cli.datamodule).__name__}; run folder "
          f"{trainer.default_root_dir}", file=sys.stderr, flush=True)


def main(args: list[str] | None = None) -> LitDigestCLI | None:
    """Run the command line on ``args`` (default: ``sys.argv[1:]``) and return the LitDigestCLI (None for
    ``list`` and the overview)."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] in ("list", "configs"):
        print(listing())
        return None
    if argv in ([], ["-h"], ["--help"]):
        print(overview())
        if not argv:
            return None
    if argv[0] in ("fit", "validate", "test", "predict") and not {"-h", "--help", "--print_config"} & set(argv):
        configure_wandb_mode()
    quiet()
    readable_help()
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision("high")  # TF32 for the fp32 parts
    argv = resolve_config_paths(argv)
    if args is None:  # from the command line: LightningCLI reads sys.argv itself
        sys.argv[1:] = argv
        return LitDigestCLI()
    return LitDigestCLI(args=argv)
