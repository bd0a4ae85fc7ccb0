"""lit_digest's classes work in a ``lightning`` project and in a ``pytorch_lightning`` one: the namespace is
picked at import (``lit_digest.core.lightning``). Each case runs in a fresh process, as a user's script."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lit_digest.core.lightning import choose_namespace
from tests.helpers import ROOT

SCRIPT = """
{first_import}
import lit_digest
from lit_digest.core.lightning import NAMESPACE
from lit_digest import (BYOL, SimCLR, BYOLViews, SimCLRViews, KNNMonitor, Optim, SmallConvNet, SyntheticImageDataModule,
                        Codistillation, CodistillationStrategy)
assert NAMESPACE == {expected!r}, NAMESPACE

def data(views):
    return SyntheticImageDataModule(num_train=16, num_test=8, image_size=16, batch_size=8, num_workers=0, views=views)

optim = Optim(name="sgd", lr=0.05)
byol = BYOL(SmallConvNet(width=4), proj_hidden_dim=16, proj_dim=8, pred_hidden_dim=16, optim=optim)
simclr = SimCLR(SmallConvNet(width=4), proj_hidden_dim=16, proj_dim=8, optim=optim)
for model, views in ((byol, BYOLViews(crop_size=16)), (simclr, SimCLRViews(crop_size=16))):
    trainer = pl.Trainer(accelerator="cpu", max_steps=2, limit_val_batches=1, num_sanity_val_steps=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, callbacks=[KNNMonitor(k=3)])
    trainer.fit(model, data(views))
    assert trainer.global_step == 2 and "val/knn_acc" in trainer.callback_metrics, trainer.callback_metrics

codistill = Codistillation(SmallConvNet(width=4), num_classes=10, burn_in_steps=1, exchange_every=1, optim=optim)
trainer = pl.Trainer(accelerator="cpu", max_steps=2, limit_val_batches=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False)
trainer.fit(codistill, data(None))
assert trainer.global_step == 2
assert isinstance(CodistillationStrategy(num_groups=2), pl.strategies.DDPStrategy)
print("fitted in", NAMESPACE)
"""


@pytest.mark.slow
@pytest.mark.parametrize(("first_import", "env", "expected"), [
    ("import lightning.pytorch as pl", {}, "lightning.pytorch"),
    ("import pytorch_lightning as pl", {}, "pytorch_lightning"),
    ("import os; import pytorch_lightning as pl", {"LIT_DIGEST_LIGHTNING": "pytorch_lightning"}, "pytorch_lightning"),
])
def test_fit_with_either_namespace(first_import, env, expected, tmp_path):
    code = SCRIPT.format(first_import=first_import, expected=expected)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={"PATH": "", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline",
                               "HOME": str(tmp_path), **env}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"fitted in {expected}" in proc.stdout


def test_the_choice_follows_the_environment_then_the_imports():
    assert choose_namespace({}, {}) == "lightning.pytorch"
    assert choose_namespace({}, {"pytorch_lightning": 1}) == "pytorch_lightning"
    assert choose_namespace({}, {"pytorch_lightning": 1, "lightning.pytorch": 1}) == "lightning.pytorch"
    env = {"LIT_DIGEST_LIGHTNING": "pytorch_lightning"}
    assert choose_namespace(env, {"lightning.pytorch": 1}) == "pytorch_lightning"
    assert choose_namespace({"LIT_DIGEST_LIGHTNING": "lightning"}, {"pytorch_lightning": 1}) == "lightning.pytorch"
    with pytest.raises(ValueError, match="LIT_DIGEST_LIGHTNING='pl' is not a Lightning namespace"):
        choose_namespace({"LIT_DIGEST_LIGHTNING": "pl"}, {})


@pytest.mark.slow
def test_the_cli_runs_a_shipped_config_in_the_pytorch_lightning_namespace(tmp_path):
    config, overlay = ROOT / "configs/simclr/cifar10.yaml", ROOT / "configs/simclr/smoke.yaml"
    code = (
        "from lit_digest.cli import main; "
        f"cli = main(['fit', '--config', '{config}', '--config', '{overlay}', "
        "'--trainer.enable_progress_bar', 'false']); "
        "base = [c for c in type(cli.model).__mro__ if c.__name__ == 'LightningModule'][-1]; "
        "print(type(cli.trainer).__module__, base.__module__, cli.trainer.global_step)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={"PATH": "", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline",
                               "HOME": str(tmp_path), "LIT_DIGEST_LIGHTNING": "pytorch_lightning"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    trainer_module, base_module, steps = proc.stdout.split()[-3:]
    assert trainer_module.startswith("pytorch_lightning.") and base_module.startswith("pytorch_lightning."), proc.stdout
    assert int(steps) > 0
