"""Run folders of the command line: every ``fit`` gets a new folder, and ``--resume auto`` finds the last one.

A config ``configs/byol/cifar10.yaml`` names its runs ``byol-cifar10``. Each run of it writes into its own
folder ``runs/byol-cifar10/<date>_<time>/``: checkpoints (``checkpoints/last.ckpt``, ``interrupted-*``,
``nonfinite-*``), the resolved config, the W&B files, the frozen-encoder report and the view grid. A
plain re-run therefore starts afresh and never overwrites or continues another run; ``--resume auto``
(or ``--ckpt_path last``) continues the newest run of the same name from its newest checkpoint, in
its own folder. An explicit ``trainer.default_root_dir`` is used as the run folder as it is.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

__all__ = ["RUN_DIR_ENV", "run_name", "new_run_dir", "latest_checkpoint", "find_resumable_run", "wandb_run_id"]

RUN_DIR_ENV = "LIT_DIGEST_RUN_DIR"  # set by the launching process, so DDP ranks it re-runs share its folder


def run_name(config_paths: list[Any], model_class_path: str | None) -> str:
    """``byol-cifar10`` for ``configs/byol/cifar10.yaml``; ``quickstart`` for ``configs/quickstart.yaml``;
    the model's class name when there is no config file."""
    for path in config_paths:
        p = Path(str(path))
        if p.parent.name in ("", "configs", "."):
            return p.stem
        if p.stem != "smoke":
            return f"{p.parent.name}-{p.stem}"
    return (model_class_path or "run").rsplit(".", 1)[-1].lower()


def new_run_dir(root: Path, name: str) -> Path:
    """A folder ``<root>/<name>/<YYYY-mm-dd_HH-MM-SS>`` that does not exist yet (or the one the launching
    process chose, for the other ranks of a distributed run)."""
    inherited = os.environ.get(RUN_DIR_ENV)
    if inherited and _launched_rank():
        return Path(inherited)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    folder, n = root / name / stamp, 1
    while folder.exists():
        n += 1
        folder = root / name / f"{stamp}_{n}"
    os.environ[RUN_DIR_ENV] = str(folder)
    return folder


def _launched_rank() -> bool:
    """This process is a rank that Lightning's launcher started (it inherits the launcher's environment)."""
    return any(int(os.environ.get(var, "0") or 0) > 0 for var in ("LOCAL_RANK", "NODE_RANK", "GROUP_RANK"))


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint to resume a run from: ``last.ckpt``, else the newest ``*.ckpt`` of the run (an
    ``interrupted-step=N.ckpt`` written at a crash, say); None when it has none."""
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return None
    candidates = sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    last = folder / "last.ckpt"
    if last.is_file() and (not candidates or last.stat().st_mtime >= candidates[-1].stat().st_mtime):
        return last
    return candidates[-1] if candidates else None


def find_resumable_run(root: Path, name: str) -> tuple[Path, Path] | None:
    """(run folder, checkpoint) of the newest run of ``name`` under ``root`` that has a checkpoint."""
    base = root / name
    if not base.is_dir():
        return None
    for run in sorted((p for p in base.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True):
        ckpt = latest_checkpoint(run)
        if ckpt is not None:
            return run, ckpt
    return None


def wandb_run_id(run_dir: Path) -> str | None:
    """The id of the W&B run logged in ``run_dir`` (its ``wandb/[offline-]run-<date>-<id>`` folder), to resume it."""
    runs = sorted((run_dir / "wandb").glob("*run-*-*"), key=lambda p: p.name)
    runs = [r for r in runs if r.is_dir()]
    return runs[-1].name.rsplit("-", 1)[-1] if runs else None
