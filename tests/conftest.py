"""Shared test set-up: offline W&B, one CPU thread per test process, the shared data folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
CIFAR_SUBSET = SHARED_DATA / "cifar10_subset.npz"


@pytest.fixture
def cifar_subset() -> Path:
    if not CIFAR_SUBSET.is_file():
        pytest.skip(f"real-data test: {CIFAR_SUBSET} is absent on this machine")
    return CIFAR_SUBSET


def run_cli(args: list[str], cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m lit_digest ARGS`` in a fresh process; returns the completed process."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1",
                **(env or {})}
    return subprocess.run([sys.executable, "-m", "lit_digest", *args], cwd=cwd, env=full_env, text=True,
                          capture_output=True, timeout=timeout)
