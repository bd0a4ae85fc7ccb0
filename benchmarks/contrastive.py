"""Training throughput (images/s) of SimCLR and SupCon, model alone: the training step on a batch
of views made once and reused (``benchmarks/throughput.py``'s ``model`` mode), on CPU and on CUDA
when present. The loss itself (NT-Xent / SupCon over the 2N x 2N similarities) is timed apart.

    python benchmarks/contrastive.py                      # CPU (and CUDA if present), < 2 minutes on CPU
    python benchmarks/contrastive.py --devices cuda --batch-size 512 --steps 100

On CPU the default is a small batch of the ResNet-18 configs; ``--full`` adds the ``full`` mode
(uint8 batches from a DataLoader, augmented on the device).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import measure  # noqa: E402  (the shared timing harness)
from timing import seconds_per_call  # noqa: E402

from lit_digest.ssl.losses import nt_xent_loss, supcon_loss  # noqa: E402

CONFIGS = {"SimCLR": "configs/simclr/cifar10.yaml", "SupCon": "configs/supcon/cifar10.yaml"}


def time_loss(name: str, device: str, batch: int, views: int, dim: int, repeats: int) -> float:
    """Milliseconds per forward + backward of the loss alone on ``(batch, views, dim)`` embeddings."""
    z = torch.randn(batch, views, dim, device=device, requires_grad=True)
    labels = torch.randint(0, 10, (batch,), device=device)

    def run() -> None:
        loss = nt_xent_loss(z, 0.2) if name == "SimCLR" else supcon_loss(z, labels, 0.2)
        loss.backward()

    return 1000 * seconds_per_call(run, repeats, 1, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 3 on CPU, 50 on CUDA)")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None, help="default: 32 on CPU, 256 on CUDA")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    parser.add_argument("--devices", nargs="+", default=devices)
    parser.add_argument("--full", action="store_true", help="also time DataLoader + on-device augmentation")
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    print(f"torch {torch.__version__}; CPU threads {torch.get_num_threads()}"
          + (f"; GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "; no GPU"))
    print(f"{'method':8s}{'device':8s}{'mode':8s}{'batch':>7s}{'images/s':>12s}{'ms/step':>10s}"
          f"{'peak GiB':>10s}{'loss ms':>10s}")
    for device in args.devices:
        batch = args.batch_size or (256 if device == "cuda" else 32)
        steps = args.steps or (50 if device == "cuda" else 3)
        warmup = args.warmup if args.warmup is not None else (10 if device == "cuda" else 1)
        for method in args.methods:
            loss_ms = time_loss(method, device, batch, 2, 256, 20 if device == "cuda" else 5)
            for mode in ("model", "full") if args.full else ("model",):
                r = measure(str(root / CONFIGS[method]), mode, device, batch, steps, warmup, args.workers)
                print(f"{method:8s}{device:8s}{mode:8s}{batch:7d}{r['images_per_s']:12.1f}{r['step_ms']:10.1f}"
                      f"{r['peak_gib']:10.2f}{loss_ms:10.2f}", flush=True)


if __name__ == "__main__":
    main()
