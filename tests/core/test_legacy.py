"""lit_digest 0.1's import paths, YAML class paths and checkpoints still load, with a DeprecationWarning."""

from __future__ import annotations

import importlib
import sys
import warnings

import pytest
import torch

from lit_digest.core.optim import Optim
from lit_digest.ssl import BYOL, SimCLR, SmallConvNet
from tests.helpers import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "legacy"


def fresh_import(name: str):
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(name)
    return module, [w for w in caught if issubclass(w.category, DeprecationWarning)]


@pytest.mark.parametrize(("old", "name", "new"), [
    ("lit_digest.methods", "SimCLR", "lit_digest.ssl.simclr"),
    ("lit_digest.methods.byol", "BYOL", "lit_digest.ssl.byol"),
    ("lit_digest.nn", "ResNet", "lit_digest.ssl.backbones"),
    ("lit_digest.nn.backbones", "feature_dim_of", "lit_digest.core.layers"),
    ("lit_digest.data", "CIFAR10DataModule", "lit_digest.ssl.datasets"),
    ("lit_digest.data.embeddings", "read_vec", "lit_digest.muse.vec_io"),
    ("lit_digest.losses", "nt_xent_loss", "lit_digest.ssl.losses"),
    ("lit_digest.transforms", "BYOLViews", "lit_digest.ssl.views"),
    ("lit_digest.callbacks", "FiniteLossGuard", "lit_digest.core.callbacks"),
    ("lit_digest.alignment", "procrustes", "lit_digest.muse.mapping"),
    ("lit_digest.strategies", "CodistillationStrategy", "lit_digest.codistillation.strategy"),
    ("lit_digest.optim", "LARS", "lit_digest.core.optim"),
])
def test_old_paths_resolve_with_a_deprecation_warning(old, name, new):
    module, deprecations = fresh_import(old)
    assert deprecations and new.rsplit(".", 1)[0] in str(deprecations[0].message)
    value = getattr(module, name)
    assert value.__module__ == new or issubclass(value, getattr(importlib.import_module(new), name))


def test_old_class_paths_accept_the_old_optimiser_keywords():
    """A 0.1 YAML ``model: {class_path: lit_digest.methods.BYOL, init_args: {optimizer: lars, lr: 1.0, ...}}``."""
    from lit_digest.cli import main

    args = ["fit", "--print_config", "--config", str(ROOT / "configs/quickstart.yaml"),
            "--model", "lit_digest.methods.BYOL", "--model.init_args.backbone", "lit_digest.nn.SmallConvNet",
            "--model.init_args.optimizer", "sgd",
            "--model.init_args.lr", "0.3", "--model.init_args.warmup_epochs", "2"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code in (0, None)
    old = importlib.import_module("lit_digest.methods").BYOL
    model = old(backbone=SmallConvNet(width=4), optimizer="sgd", lr=0.3, warmup_epochs=2, momentum=0.8)
    assert isinstance(model, BYOL)
    assert model.optim == Optim(name="sgd", lr=0.3, warmup_epochs=2, momentum=0.8, weight_decay=1e-5,
                                scale_lr_by_batch=True, warmup_start_lr=3e-5)  # the rest: BYOL's defaults
    assert "lr" not in model.hparams and "optimizer" not in model.hparams


def test_a_cli_checkpoint_of_version_0_1_loads_through_its_old_class_path():
    """The weights and the architecture come back. (Lightning hands ``load_from_checkpoint`` only the keywords
    the class takes today, so 0.1's optimiser keywords are not read: a run resumed from such a checkpoint takes
    its optimiser from the config that resumes it, where the old keywords are translated.)"""
    path = FIXTURES / "byol_cli_v0.1.ckpt"
    raw = torch.load(path, map_location="cpu", weights_only=False)
    assert raw["hyper_parameters"]["_class_path"] == "lit_digest.methods.BYOL"  # written before the move
    assert raw["hyper_parameters"]["backbone"]["class_path"] == "lit_digest.nn.SmallConvNet"
    model = BYOL.load_from_checkpoint(path)
    assert isinstance(model, BYOL) and isinstance(model.backbone, SmallConvNet)
    assert model.hparams.proj_dim == 8 and model.backbone.num_features == 16  # the 0.1 run's architecture
    state = model.state_dict()
    for key, tensor in raw["state_dict"].items():
        torch.testing.assert_close(state[key], tensor, msg=key)


def test_a_pickled_checkpoint_of_version_0_1_loads():
    """Built in Python (not by the CLI), 0.1 pickled the backbone itself, under ``lit_digest.nn.backbones``:
    unpickling it needs ``weights_only=False`` (load only checkpoints you trust), as for any pickled module."""
    path = FIXTURES / "simclr_python_v0.1.ckpt"
    raw = torch.load(path, map_location="cpu", weights_only=False)
    assert type(raw["hyper_parameters"]["backbone"]).__module__ == "lit_digest.ssl.backbones"
    model = SimCLR.load_from_checkpoint(path, weights_only=False)
    for key, tensor in raw["state_dict"].items():
        torch.testing.assert_close(model.state_dict()[key], tensor, msg=key)


def test_the_old_class_path_of_a_checkpoint_is_found_again():
    from lightning.pytorch.cli import instantiate_module

    raw = torch.load(FIXTURES / "byol_cli_v0.1.ckpt", map_location="cpu", weights_only=False)
    hparams = {k: v for k, v in raw["hyper_parameters"].items() if k != "_instantiator"}
    model = instantiate_module(BYOL, hparams)  # what the CLI does with the stored class path and keywords
    assert isinstance(model, BYOL) and type(model).__module__.startswith("lit_digest.methods")
    assert model.optim.name == "adamw" and model.optim.lr == pytest.approx(2e-3) and model.optim.warmup_epochs == 3
