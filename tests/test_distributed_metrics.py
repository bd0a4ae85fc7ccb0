"""Validation metrics under DDP equal the single-process ones: two gloo processes (``ddp_spawn`` on the CPU), each
validating half of the batches, log the same ``val/*`` as one process over all of them, for the depth estimator
(per-image RMSE, AbsRel, edge F1 averaged through torchmetrics) and CausalLM (the token-weighted loss, perplexity
and bits per byte). Run as a subprocess so that the process group never touches the test worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT

SCRIPT = r"""
import json, sys, warnings
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from lit_digest.core.lightning import LightningDataModule, Trainer
from lit_digest.depth.estimator import DepthEstimation
from lit_digest.text import CausalLM, GPTJConfig

warnings.filterwarnings("ignore")


class Tensors(LightningDataModule):
    def __init__(self, *tensors, batch_size):
        super().__init__()
        self.tensors, self.batch_size, self.bytes_per_token = tensors, batch_size, 1.7

    def val_dataloader(self):
        return DataLoader(TensorDataset(*self.tensors), batch_size=self.batch_size)


def validate(model, data, devices):
    trainer = Trainer(accelerator="cpu", devices=devices, strategy="ddp_spawn" if devices > 1 else "auto",
                      logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=sys.argv[1])
    trainer.validate(model, data, verbose=False)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def main():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1), nn.Softplus())
    depth_model = DepthEstimation(net, train_size=16, eval_sizes=(16, 24))
    images = torch.rand(12, 3, 16, 16)
    depths = 0.5 + torch.rand(12, 1, 16, 16) * torch.linspace(0, 3, 16)  # depth jumps along x: edges to find
    depth_data = Tensors(images, depths, batch_size=3)  # 4 batches: 2 per process, 6 images each

    lm = CausalLM(model=GPTJConfig.preset("tiny"), samples=0, memory_report=False)
    lm.configure_model()  # the same weights in every process
    tokens = torch.randint(0, 256, (10, 17))
    text_data = Tensors(tokens[:, :-1], tokens[:, 1:], batch_size=3)  # batches of 3, 3, 3, 1: unequal

    out = {}
    for name, model, data in [("depth", depth_model, depth_data), ("text", lm, text_data)]:
        out[name] = {"one": validate(model, data, 1), "two": validate(model, data, 2)}
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":  # ddp_spawn's processes import this file again
    main()
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ddp_validation_metrics_equal_the_single_process_ones(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    script = tmp_path / "validate_twice.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=220)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    depth, text = result["depth"], result["text"]
    assert set(depth["one"]) >= {"val/rmse@16", "val/absrel@24", "val/f1@16"}
    assert set(text["one"]) >= {"val/loss", "val/ppl", "val/bpb"}
    for runs in (depth, text):
        assert set(runs["one"]) == set(runs["two"])
        for key, value in runs["one"].items():
            assert runs["two"][key] == pytest.approx(value, rel=1e-5), key
