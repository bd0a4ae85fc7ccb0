"""What several test modules share: paths, the CLI as a subprocess, the configs and their smoke overlays."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lit_digest.core.lightning import Callback

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def real_data(name: str) -> Path:
    """The developers' shared copy of a data set, else the one ``python -m lit_digest get <name>`` built in the
    clone's ``data/`` (what a user has)."""
    shared = SHARED_DATA / name
    return shared if shared.exists() else ROOT / "data" / name


CIFAR_SUBSET = real_data("cifar10_subset.npz")
ATT_FACES = real_data("att_faces")


def run_cli(args: list[str], cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m lit_digest ARGS`` in a fresh process; returns the completed process."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": str(ROOT), **(env or {})}
    full_env.pop("LIT_DIGEST_RUN_DIR", None)
    return subprocess.run([sys.executable, "-m", "lit_digest", *args], cwd=cwd, env=full_env, text=True,
                          capture_output=True, timeout=timeout)


def shipped_configs() -> list[str]:
    """Every runnable config: ``configs/**/*.yaml`` but the shared parts (``_base/``) and the overlays."""
    return sorted(
        p.relative_to(ROOT).as_posix() for p in (ROOT / "configs").rglob("*.yaml")
        if "_base" not in p.parts and p.name != "smoke.yaml"
    )


def smoke_overlay(config: str) -> list[str]:
    """``--config <folder>/smoke.yaml``: the overlay that makes any config of its folder run in seconds on a CPU
    on tiny offline data."""
    folder = (ROOT / config).parent
    overlay = folder / "smoke.yaml"
    assert overlay.is_file(), f"{folder.relative_to(ROOT)} has no smoke.yaml overlay: add one (see configs/README.md)"
    return ["--config", str(overlay)]


def print_measured(name: str, numbers: dict[str, float]) -> None:
    """Print the numbers a README row quotes as the line ``python -m lit_digest measured`` reads back (the same
    line as ``lit_digest.core.measured.MeasuredRun.finish``)."""
    import json

    from lit_digest.core.measured import MEASURED_PREFIX

    print(MEASURED_PREFIX + json.dumps({"name": name, "numbers": {k: round(float(v), 4) for k, v in numbers.items()}}),
          flush=True)


def smoke_devices(config: str) -> int:
    """Devices the smoke run of ``config`` asks for (its overlay has the last word)."""
    import yaml

    devices = 1
    for path in [ROOT / config, *[Path(a) for a in smoke_overlay(config)[1:]]]:
        trainer = (yaml.safe_load(path.read_text()) or {}).get("trainer")
        if isinstance(trainer, dict) and isinstance(trainer.get("devices"), int):
            devices = trainer["devices"]
    return devices


class ReportStart(Callback):
    """A callback (``--trainer.callbacks+=tests.helpers.ReportStart``) that prints the step training starts at."""

    def on_train_start(self, trainer, module) -> None:
        print(f"lit_digest-test: training starts at step {trainer.global_step}", flush=True)


def pooled_copy(path, out, size: int = 16) -> str:
    """The ``.npz`` image set at ``path`` average-pooled to ``size`` px (4x less compute per image than 32 px)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    with np.load(path) as data:
        arrays = dict(data)
    for key in ("train_images", "test_images"):
        x = torch.as_tensor(arrays[key]).float()
        arrays[key] = F.adaptive_avg_pool2d(x, size).round().to(torch.uint8).numpy()
    np.savez(out, **arrays)
    return str(out)

