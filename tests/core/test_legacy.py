"""lit_digest 0.1's import paths, YAML class paths, top-level names and checkpoints still load, with a FutureWarning
(shown by default, once) naming the new class path."""

from __future__ import annotations

import importlib
import os
import subprocess
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
    return module, [w for w in caught if issubclass(w.category, FutureWarning)]


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


OLD_YAML = """\
# a lit_digest 0.1 config: old class paths and the old optimiser keywords
seed_everything: 0
trainer:
  accelerator: cpu
  max_steps: 2
  limit_val_batches: 0
  logger: false
  enable_progress_bar: false
  enable_model_summary: false
  callbacks:
    - class_path: ModelCheckpoint
      init_args: {save_last: true}
model:
  class_path: lit_digest.methods.BYOL
  init_args:
    backbone: {class_path: lit_digest.nn.SmallConvNet, init_args: {in_channels: 1, width: 4}}
    proj_hidden_dim: 16
    proj_dim: 8
    pred_hidden_dim: 16
    optimizer: adamw
    lr: 0.002
    weight_decay: 0.0001
data:
  class_path: lit_digest.data.DigitsDataModule
  init_args:
    batch_size: 32
    num_workers: 0
    image_size: 8
    views: {class_path: lit_digest.transforms.BYOLViews, init_args: {crop_size: 8, flip_p: 0.0}}
"""


def test_top_level_names_of_0_1_take_its_positional_arguments_and_optimiser_keywords():
    import lit_digest
    from lit_digest import _legacy

    _legacy._warned.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's own filters: a FutureWarning shows, once
        model = lit_digest.BYOL(SmallConvNet(width=4), optimizer="adamw", lr=1e-3, warmup_epochs=0)
        lit_digest.BYOL(SmallConvNet(width=4), optimizer="adamw", lr=1e-3)
    assert isinstance(model, BYOL) and isinstance(model.backbone, SmallConvNet)
    assert model.optim.name == "adamw" and model.optim.lr == 1e-3 and model.optim.warmup_epochs == 0
    assert model.hparams["optim"] == model.optim and "optimizer" not in model.hparams
    shown = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    assert len(shown) == 1 and "lit_digest.ssl.BYOL" in shown[0], shown
    assert isinstance(BYOL(SmallConvNet(width=4)), lit_digest.BYOL)  # the new class's instances are still BYOLs
    old = importlib.import_module("lit_digest.methods").BYOL(SmallConvNet(width=4), optimizer="sgd", lr=0.5)
    assert old.optim.name == "sgd" and old.optim.lr == 0.5 and isinstance(old, BYOL)
    plain = lit_digest.BYOL(SmallConvNet(width=4))  # today's keywords: no translation, BYOL's own optimiser
    assert plain.optim == BYOL(SmallConvNet(width=4)).optim
    with pytest.raises(TypeError, match="positional"):
        lit_digest.BYOL(*[None] * 40)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_0_1_yaml_trains_records_and_reloads_the_optimiser_it_names_and_warns_once(tmp_path):
    """A CLI run from a 0.1 config (old class paths, ``optimizer: adamw``): the checkpoint's hyperparameters hold
    the AdamW block it trained with (not the LARS default), so ``load_from_checkpoint`` rebuilds AdamW; the saved
    config.yaml has no LARS block; each deprecation shows once, naming the new class path."""
    (tmp_path / "old.yaml").write_text(OLD_YAML)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONWARNINGS", None)
    proc = subprocess.run([sys.executable, "-m", "lit_digest", "fit", "--config", "old.yaml"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    warned = proc.stderr
    assert warned.count("lit_digest.methods.BYOL is a lit_digest 0.1 path") == 1, warned[-3000:]
    assert "class_path: lit_digest.ssl.BYOL" in warned and "class_path: lit_digest.ssl.backbones.SmallConvNet" in warned
    assert warned.count("lit_digest 0.1 keywords") == 1
    ckpt = next(tmp_path.rglob("last.ckpt"))
    raw = torch.load(ckpt, map_location="cpu", weights_only=False)
    recorded = raw["hyper_parameters"]["optim"]  # a mapping, as the CLI records its config
    assert recorded["name"] == "adamw" and recorded["lr"] == pytest.approx(0.002) and recorded["weight_decay"] == 1e-4
    assert "betas" in raw["optimizer_states"][0]["param_groups"][0]  # it trained with Adam(W)
    reloaded = BYOL.load_from_checkpoint(ckpt)
    assert isinstance(reloaded, BYOL) and reloaded.optim == Optim(**{**recorded, "betas": tuple(recorded["betas"])})
    config = next(tmp_path.rglob("config.yaml")).read_text()
    assert "name: lars" not in config and "optim: null" in config and "optimizer: adamw" in config


def test_the_adapter_of_a_method_with_kwargs_has_a_valid_signature():
    """SupCon(**kwargs): 0.1's keyword-only extras go before **kwargs (an invalid signature broke every SupCon
    config in the CLI)."""
    import inspect

    import lit_digest
    from lit_digest.ssl import SupCon

    params = list(inspect.signature(lit_digest.SupCon.__init__).parameters.values())
    assert params[-1].kind is inspect.Parameter.VAR_KEYWORD
    assert issubclass(SupCon, lit_digest.SupCon) and "lr" in inspect.signature(lit_digest.SupCon).parameters
