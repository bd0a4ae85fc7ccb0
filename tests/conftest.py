"""Shared test set-up: offline W&B, one CPU thread per test process, the shared data, a quiet Trainer."""

from __future__ import annotations

import os

import pytest
import torch

os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.pop("LIT_DIGEST_RUN_DIR", None)
torch.set_num_threads(1)

# Where a launcher of Lightning ran in this process it left its rendezvous in os.environ (the launching process
# sets MASTER_PORT for its children): every later multi-process run would inherit that one port and fail with
# EADDRINUSE while anything still holds it. Each test starts without them; Lightning picks a free port per run.
DISTRIBUTED_ENV = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK", "LOCAL_WORLD_SIZE",
                   "GROUP_RANK", "PL_GLOBAL_SEED", "PL_SEED_WORKERS")
for _name in DISTRIBUTED_ENV:
    os.environ.pop(_name, None)

from lit_digest.core.lightning import Trainer  # noqa: E402
from tests.helpers import ATT_FACES, CIFAR_SUBSET  # noqa: E402


@pytest.fixture(autouse=True)
def no_distributed_env_between_tests():
    yield
    for name in DISTRIBUTED_ENV:
        os.environ.pop(name, None)


@pytest.fixture
def cifar_subset():
    if not CIFAR_SUBSET.is_file():
        pytest.skip(f"real-data test: {CIFAR_SUBSET} is absent (python -m lit_digest get cifar10_subset builds it)")
    return CIFAR_SUBSET


@pytest.fixture
def att_faces():
    if not ATT_FACES.is_dir():
        pytest.skip(f"real-data test: {ATT_FACES} is absent (python -m lit_digest get att_faces builds it)")
    return ATT_FACES


@pytest.fixture
def quiet_trainer(tmp_path):
    """``quiet_trainer(**kwargs)``: a CPU Trainer without logger, checkpoints, progress bar or model summary,
    writing into the test's folder; keyword arguments override."""

    def make(**kwargs) -> Trainer:
        options = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                       enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
        options.update(kwargs)
        return Trainer(**options)

    return make


def pytest_collection_modifyitems(config, items):
    """CUDA-only tests are marked ``gpu`` and skipped without a GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
