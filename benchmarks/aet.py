"""Training throughput (images/s) of AET-affine, AET-project and AED, as their CIFAR-10 configs build them (NIN,
4 blocks of 192 channels, 32 px), on CPU and on CUDA when present:

* ``model``: the training step on a batch whose transformed copy and targets were made once (the encoder on both
  images, the decoder, the backward pass, the SGD step);
* ``warps``: the same step with the transformation drawn and applied on the device at every step, as in training
  (AED has no warp: its two rows are the same step);
* ``warp ms``: drawing and applying the transformations alone, per batch.

    python benchmarks/aet.py                                  # CPU (and CUDA if present), about a minute on CPU
    python benchmarks/aet.py --devices cuda --batch-size 512 --steps 50

An image is one training sample (AET encodes it twice: the original and its transformed copy). On CPU the model
is in ``channels_last`` (oneDNN, 1.5-2x faster here) and ``--threads`` sets torch's threads; on CUDA it runs in
bf16 autocast and ``channels_last``, as the configs train.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from timing import sync

from lit_digest.cli import LitDigestCLI
from lit_digest.ssl.aet import AET, parameter_mse

CONFIGS = {"AET-affine": "configs/aet/cifar10_affine.yaml", "AET-project": "configs/aet/cifar10_projective.yaml",
           "AED": "configs/aet/cifar10_aed.yaml"}



def measure(config: str, device: str, batch: int, steps: int, warmup: int, size: int = 32) -> dict[str, float]:
    """Images/s of the training step (``model``: the transformed copy made once; ``warps``: drawn and applied at every
    step), milliseconds per batch of the warps alone, and the peak GPU memory, on ``size``-pixel images."""
    cli = LitDigestCLI(args=["--config", config, "--trainer.logger", "false"], run=False)
    model = cli.model.to(device=device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    g = torch.Generator(device=device).manual_seed(0)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda")
    fixed = model.transform(x, g) if isinstance(model, AET) else None

    def step(warp: bool) -> None:
        with autocast:
            if isinstance(model, AET):
                t = model.transform(x, g) if warp else fixed
                loss = parameter_mse(model.predict_transformation(x, t.images), t.target)
            else:
                loss = model._loss(x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    out = {}
    for mode in ("model", "warps"):
        for _ in range(warmup):
            step(mode == "warps")
        sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            step(mode == "warps")
        sync(device)
        out[mode] = batch * steps / (time.perf_counter() - start)
    out["warp_ms"] = float("nan")
    if isinstance(model, AET):
        repeats = 10 if device == "cpu" else 100
        with torch.no_grad():
            model.transform(x, g)
            sync(device)
            start = time.perf_counter()
            for _ in range(repeats):
                model.transform(x, g)
            sync(device)
        out["warp_ms"] = 1000 * (time.perf_counter() - start) / repeats
    out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 3 on CPU, 50 on CUDA)")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None, help="default: 32 on CPU, 512 on CUDA (the paper's)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(__file__).resolve().parents[1]
    print(f"torch {torch.__version__}; CPU threads {torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f}"
          + (f"; GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "; no GPU"))
    print(f"{'method':12s}{'device':8s}{'batch':>7s}{'model img/s':>13s}{'warps img/s':>13s}{'warp ms':>9s}"
          f"{'peak GiB':>10s}")
    for device in args.devices:
        batch = args.batch_size or (512 if device == "cuda" else 32)
        steps = args.steps or (50 if device == "cuda" else 3)
        warmup = args.warmup if args.warmup is not None else (5 if device == "cuda" else 1)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for method in args.methods:
            r = measure(str(root / CONFIGS[method]), device, batch, steps, warmup)
            print(f"{method:12s}{device:8s}{batch:7d}{r['model']:13.1f}{r['warps']:13.1f}{r['warp_ms']:9.2f}"
                  f"{r['peak_gib']:10.2f}", flush=True)


if __name__ == "__main__":
    main()
