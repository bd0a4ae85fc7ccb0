"""Training throughput (images/s) of a config on synthetic data.

Two measurements per device, same model, optimiser and precision:

* ``model``: the training step alone; the augmented views are made once and reused;
* ``full``: uint8 batches from a DataLoader, moved to the device and augmented there
  (the DataModule's ``on_after_batch_transfer``), then the training step.

    python benchmarks/throughput.py --config configs/byol/cifar10.yaml --steps 20 --batch-size 256

On CPU the defaults shrink the batch so that a run takes about a minute.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import torch
from timing import StepTimer, machine
from torch.utils.data import DataLoader

from lit_digest.cli import LitDigestCLI
from lit_digest.core.lightning import Trainer
from lit_digest.ssl import SyntheticImageDataModule


class CachedViews(SyntheticImageDataModule):
    """Serves one pre-augmented batch again and again: times the model alone."""

    def train_dataloader(self):
        return DataLoader(range(self.num_train // self.batch_size), batch_size=None)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        if not hasattr(self, "_cached"):
            x, y = next(iter(super().train_dataloader()))
            x = x.to(self.trainer.strategy.root_device)
            self._cached = (self.prepare_views(x), y.to(x.device))
        return self._cached


def measure(config: str, mode: str, device: str, batch: int, steps: int, warmup: int, workers: int,
            overrides: Sequence[str] = ()) -> dict:
    """Images/s, ms per step and peak GPU memory (GiB; NaN on the CPU) of ``config``'s training step, in bf16-mixed
    and channels_last on CUDA, fp32 on the CPU. ``overrides``: more command-line options for the config (the GPU
    suite's quick mode shrinks the crop with ``--data.init_args.views.init_args.crop_size 16``)."""
    cli = LitDigestCLI(args=["--config", config, "--trainer.logger", "false", *overrides], run=False)
    model, source = cli.model, cli.datamodule
    size = source.views.crop_size if source.views is not None else 32
    cls = CachedViews if mode == "model" else SyntheticImageDataModule
    dm = cls(num_train=batch * (steps + warmup), num_test=batch, image_size=size, channels=source.in_channels,
             classes=model.hparams.get("num_classes", 10), batch_size=batch, num_workers=workers, views=source.views,
             knn_bank_size=0)
    precision = "bf16-mixed" if device == "cuda" else "32-true"
    timer = StepTimer(warmup)
    trainer = Trainer(accelerator=device, devices=1, max_steps=steps + warmup, precision=precision, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      limit_val_batches=0, callbacks=[timer])
    if device == "cuda":  # StepTimer resets CUDA's peak memory when the timed steps start
        model = model.to(memory_format=torch.channels_last)
    trainer.fit(model, dm)
    seconds = timer.end - timer.start
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    return {"images_per_s": timer.steps * batch / seconds, "step_ms": 1000 * seconds / timer.steps, "peak_gib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/byol/cifar10.yaml")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 5 on CPU, 50 on CUDA)")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None, help="default: 32 on CPU, 256 on CUDA")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    args = parser.parse_args()
    print(f"{machine(f'config {args.config}')}; load average {os.getloadavg()[0]:.1f}")
    print(f"{'device':8s}{'mode':8s}{'batch':>7s}{'images/s':>12s}{'ms/step':>10s}{'peak GiB':>10s}")
    for device in args.devices:
        batch = args.batch_size or (256 if device == "cuda" else 32)
        steps = args.steps or (50 if device == "cuda" else 5)
        warmup = args.warmup if args.warmup is not None else (10 if device == "cuda" else 1)
        for mode in ("model", "full"):
            r = measure(args.config, mode, device, batch, steps, warmup, args.workers)
            print(f"{device:8s}{mode:8s}{batch:7d}{r['images_per_s']:12.1f}{r['step_ms']:10.1f}{r['peak_gib']:10.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
