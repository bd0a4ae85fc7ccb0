"""Run folders of the command line: every ``fit`` gets a new folder, and ``--resume auto`` finds the last one.

A config ``configs/byol/cifar10.yaml`` names its runs ``byol-cifar10``. Each run of it writes into its own
folder ``runs/byol-cifar10/<date>_<time>/``: checkpoints (``checkpoints/last.ckpt``, ``interrupted-*``,
``nonfinite-*``), the resolved config, the W&B files, the frozen-encoder report and the view grid. A
plain re-run therefore starts afresh and never overwrites or continues another run; ``--resume auto``
(or ``--ckpt_path last``) continues the newest run of the same name from its newest checkpoint, in
its own folder. An explicit ``trainer.default_root_dir`` is used as the run folder as it is.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["RUN_DIR_ENV", "run_name", "new_run_dir", "latest_checkpoint", "find_resumable_run", "wandb_run_id",
           "write_identity", "identity_mismatch", "best_checkpoint"]

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


def find_resumable_run(root: Path, name: str, config_files: list[str] | None = None
                       ) -> tuple[Path, Path] | None:
    """(run folder, checkpoint) of the newest run of ``name`` under ``root`` that has a checkpoint and, when
    ``config_files`` are given, was started with the same config files (overlays included: ``byol/cifar10``
    with ``byol/smoke`` is another run than without). Raises ``ValueError`` naming the mismatch when runs of
    ``name`` exist but none of these configs."""
    base = root / name
    if not base.is_dir():
        return None
    other = None
    for run in sorted((p for p in base.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True):
        ckpt = latest_checkpoint(run)
        if ckpt is None:
            continue
        mismatch = identity_mismatch(run, config_files) if config_files is not None else None
        if mismatch is None:
            return run, ckpt
        other = other or (run, mismatch)
    if other is not None:
        raise ValueError(f"no run of these configs to take a checkpoint from: the newest run of '{name}' "
                         f"({other[0]}) is another config combination: {other[1]}. Use the same --config files, give "
                         "a checkpoint's path (--ckpt_path <file>), or, to train, start afresh without --resume.")
    return None


def wandb_run_id(run_dir: Path) -> str | None:
    """The id of the W&B run logged in ``run_dir`` (its ``wandb/[offline-]run-<date>-<id>`` folder), to resume it."""
    runs = sorted((run_dir / "wandb").glob("*run-*-*"), key=lambda p: p.name)
    runs = [r for r in runs if r.is_dir()]
    return runs[-1].name.rsplit("-", 1)[-1] if runs else None


IDENTITY = "run.json"  # the config files a run was started with: --resume auto continues only the same ones


def write_identity(run_dir: Path, config_files: list[str]) -> None:
    """Record the config files (overlays included, in order) a run was started with."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / IDENTITY).write_text(json.dumps({"configs": [_config_id(c) for c in config_files]}, indent=1))


def _config_id(path: str) -> str:
    """A config file as the same config whatever the working folder: shipped configs by their name under
    ``configs/`` (``byol/smoke.yaml``), other files by their absolute path."""
    p = Path(path).resolve()
    parts = p.parts
    if "configs" in parts:
        return "/".join(parts[len(parts) - parts[::-1].index("configs"):])
    return str(p)


def identity_mismatch(run_dir: Path, config_files: list[str]) -> str | None:
    """Why ``run_dir`` is not a run of ``config_files`` (other overlays, other order), or None when it is (or
    when the run predates run.json)."""
    file = run_dir / IDENTITY
    if not file.is_file():
        return None
    theirs = json.loads(file.read_text()).get("configs", [])
    ours = [_config_id(c) for c in config_files]
    if theirs == ours:
        return None
    return (f"it was started with --config {' --config '.join(theirs)}, this command has "
            f"--config {' --config '.join(ours)}")


def best_checkpoint(run_dir: Path) -> tuple[Path | None, str | None, float | None]:
    """(path, monitored metric, score) of the best checkpoint of ``run_dir``, as its ``ModelCheckpoint`` recorded
    it in the newest checkpoint; (None, monitor, None) when it monitors nothing or recorded no best."""
    import torch

    from lit_digest.core.checkpoints import trusted_classes

    newest = latest_checkpoint(run_dir)
    if newest is None:
        return None, None, None
    with trusted_classes(newest):
        state = torch.load(newest, map_location="cpu", mmap=True, weights_only=True)
    monitors = []
    for key, value in (state.get("callbacks") or {}).items():
        if str(key).startswith("ModelCheckpoint") and isinstance(value, dict) and value.get("monitor"):
            path, score = value.get("best_model_path"), value.get("best_model_score")
            if path and Path(path).is_file():
                return Path(path), value["monitor"], float(score) if score is not None else None
            monitors.append(value["monitor"])
    if monitors:
        return None, monitors[0], None
    return None, None, None
