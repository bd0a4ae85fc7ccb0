"""lightly's BYOL and SimCLR, trained as lightly's own examples train them, beside ours in the same process: images per
second and seconds per CIFAR-10 epoch on the same backbone, heads, batch and precision.

lightly (https://github.com/lightly-ai/lightly, 1.6; ``examples/pytorch/byol.py`` and ``simclr.py``): a dataset of
PIL images, lightly's ``BYOLTransform`` / ``SimCLRTransform`` drawing the two views in the DataLoader workers, and a
plain PyTorch loop (SGD, lr 0.06; BYOL's target updated by ``update_momentum`` on a cosine schedule from 0.99).
What is ours here is only what makes the comparison fair: our CIFAR ResNet-18 as the backbone, our configs' head sizes
(BYOL 512-4096-256 and 256-4096-256 with BatchNorm; SimCLR 512-2048-256 without, temperature 0.2), their augmentation
probabilities (BYOL: no blur, solarize 0 / 0.2; SimCLR: blur 0.5), the batch of 256, and on CUDA bf16 autocast with
the model in channels_last. The images are synthetic uint8 arrays of CIFAR's shape (the work does not depend on the
values). One epoch is timed after a warm-up pass, with persistent workers so that the timed epoch starts with the
workers already up but nothing prefetched: what a training run sees from its second epoch on.

Ours is ``benchmarks/throughput.py``'s ``full`` mode on the same configs (uint8 batches from a DataLoader, augmented on
the device).

    python benchmarks/lightly_peer.py                        # CPU: 16-px crops, batch 8; CUDA too when present
    python benchmarks/lightly_peer.py --devices cuda --images 50000
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lit_digest.ssl import ResNet  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"BYOL": ROOT / "configs/byol/cifar10.yaml", "SimCLR": ROOT / "configs/simclr/cifar10.yaml"}


class UInt8Images(Dataset):
    """``(N, H, W, 3)`` uint8 images served as PIL images, as torchvision's CIFAR10 serves them."""

    def __init__(self, count: int, size: int, transform, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.images = rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[index])), 0


class LightlyBYOL(nn.Module):
    """lightly's BYOL: online backbone + projection + prediction heads, a momentum copy of backbone and projection."""

    def __init__(self, backbone: nn.Module, dim: int) -> None:
        from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
        from lightly.models.utils import deactivate_requires_grad

        super().__init__()
        self.backbone = backbone
        self.projection_head = BYOLProjectionHead(dim, 4096, 256)
        self.prediction_head = BYOLPredictionHead(256, 4096, 256)
        self.backbone_momentum = copy.deepcopy(backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prediction_head(self.projection_head(self.backbone(x).flatten(1)))

    def forward_momentum(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head_momentum(self.backbone_momentum(x).flatten(1)).detach()


class LightlySimCLR(nn.Module):
    def __init__(self, backbone: nn.Module, dim: int) -> None:
        from lightly.models.modules import SimCLRProjectionHead

        super().__init__()
        self.backbone = backbone
        self.projection_head = SimCLRProjectionHead(dim, 2048, 256, batch_norm=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone(x).flatten(1))


def build(method: str, size: int):
    """lightly's model, loss and two-view transform for ``method`` at ``size`` pixels."""
    from lightly.loss import NegativeCosineSimilarity, NTXentLoss
    from lightly.transforms import BYOLTransform, BYOLView1Transform, BYOLView2Transform, SimCLRTransform

    backbone = ResNet(depth=18, cifar_stem=True)
    if method == "BYOL":
        transform = BYOLTransform(view_1_transform=BYOLView1Transform(input_size=size, gaussian_blur=0.0),
                                  view_2_transform=BYOLView2Transform(input_size=size, gaussian_blur=0.0))
        return LightlyBYOL(backbone, backbone.num_features), NegativeCosineSimilarity(), transform
    if method == "SimCLR":
        transform = SimCLRTransform(input_size=size, gaussian_blur=0.5)
        return LightlySimCLR(backbone, backbone.num_features), NTXentLoss(temperature=0.2), transform
    raise ValueError(f"method must be one of {sorted(CONFIGS)}, got {method!r}")


def measure(method: str, device: str, batch: int, images: int, size: int = 32, warmup: int = 10,
            workers: int | None = None) -> dict[str, float]:
    """Images/s over one timed epoch of ``images`` images (after ``warmup`` batches of a first epoch), seconds per
    50,000 images at that rate, and the peak GPU memory (GiB; NaN on the CPU)."""
    from lightly.models.utils import update_momentum
    from lightly.utils.scheduler import cosine_schedule

    workers = max(1, (os.cpu_count() or 2) - 1) if workers is None else workers
    torch.manual_seed(0)
    model, criterion, transform = build(method, size)
    cuda = device == "cuda"
    model = model.to(device, memory_format=torch.channels_last if cuda else torch.preserve_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06)
    loader = DataLoader(UInt8Images(images, size, transform), batch_size=batch, shuffle=True, drop_last=True,
                        num_workers=workers, persistent_workers=workers > 0, pin_memory=cuda)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=cuda)
    steps_per_epoch = len(loader)

    def step(views: list[torch.Tensor], index: int) -> None:
        x0, x1 = (v.to(device, non_blocking=True) for v in views)
        if cuda:
            x0, x1 = (v.contiguous(memory_format=torch.channels_last) for v in (x0, x1))
        with autocast:
            if method == "BYOL":
                m = cosine_schedule(index, 2 * steps_per_epoch, 0.99, 1.0)
                update_momentum(model.backbone, model.backbone_momentum, m=m)
                update_momentum(model.projection_head, model.projection_head_momentum, m=m)
                p0, p1 = model(x0), model(x1)
                z0, z1 = model.forward_momentum(x0), model.forward_momentum(x1)
                loss = 0.5 * (criterion(p0, z1) + criterion(p1, z0))
            else:
                loss = criterion(model(x0), model(x1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    model.train()
    for i, (views, _) in enumerate(loader):  # warm-up: workers up, cuDNN's choices made
        if i == warmup:
            break
        step(views, i)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for i, (views, _) in enumerate(loader):
        step(views, steps_per_epoch + i)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    rate = steps_per_epoch * batch / seconds
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    return {"images_per_s": rate, "epoch_s": 50_000 / rate, "peak_gib": peak, "workers": workers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--images", type=int, default=None, help="images per timed epoch (default: 64 on CPU, 50000)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 8 on CPU, 256 (the configs') on CUDA")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: the cores but one)")
    parser.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from throughput import measure as ours

    print(f"torch {torch.__version__}; CPU threads {torch.get_num_threads()}"
          + (f"; GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "; no GPU"))
    print(f"{'method':8s}{'device':8s}{'batch':>7s}{'ours img/s':>12s}{'lightly img/s':>15s}{'ours/lightly':>14s}")
    for device in args.devices:
        cuda = device == "cuda"
        batch = args.batch_size or (256 if cuda else 8)
        images = args.images or (50_000 if cuda else 8 * batch)
        size, warmup = (32, 10) if cuda else (16, 1)
        workers = 0 if not cuda and args.workers is None else args.workers
        for method in args.methods:
            crop = [] if cuda else ["--data.init_args.views.init_args.crop_size", str(size)]
            mine = ours(str(CONFIGS[method]), "full", device, batch, images // batch - warmup, warmup,
                        workers if workers is not None else max(1, (os.cpu_count() or 2) - 1), crop)
            theirs = measure(method, device, batch, images, size, warmup, workers)
            print(f"{method:8s}{device:8s}{batch:7d}{mine['images_per_s']:12.1f}{theirs['images_per_s']:15.1f}"
                  f"{mine['images_per_s'] / theirs['images_per_s']:14.2f}", flush=True)


if __name__ == "__main__":
    main()
