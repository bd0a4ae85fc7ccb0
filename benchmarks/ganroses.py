"""GANs N' Roses speed and memory: training (one discriminator step with lazy R1 every 16 batches, one generator
step, through Lightning's Trainer) and inference (one image in 8 styles; video frames in one style, the fast path
that maps the style once and batches the frames, beside one plain call per frame).

Settings (random inputs; the work does not depend on the values):

- ``cpu-32``: the defaults (configs/ganroses/att_faces.yaml: 32 px, 16-32 channels), batch 8 per domain;
- ``paper-256``: the official networks (256 px, num_down 4, 64-512 channels, style_dim 512), batch 4 per domain,
  no VGG (training on CUDA only; inference on the CPU too).

    python benchmarks/ganroses.py                  # cpu-32 (train, infer), paper-256 (infer) on the CPU; all on CUDA
    python benchmarks/ganroses.py --settings paper-256 --steps 20

Images/s counts the images of both domains (2 x batch per training step), translated images for inference.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import StepTimer, add_threads, apply_threads, machine, peak_gib, seconds_per_call  # noqa: E402

from lit_digest.core.lightning import LightningDataModule, Trainer  # noqa: E402
from lit_digest.gan.ganroses import GANsNRoses  # noqa: E402
from lit_digest.gan.ganroses.official import PAPER  # noqa: E402
from lit_digest.gan.ganroses.predict import translate_frames  # noqa: E402

SETTINGS = {  # name: (model sizes, batch, train devices, infer devices)
    "cpu-32": ({}, 8, ("cpu", "cuda"), ("cpu", "cuda")),
    "paper-256": (PAPER, 4, ("cuda",), ("cpu", "cuda")),
}


class SameBatch(LightningDataModule):
    def __init__(self, size: int, batch: int, steps: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.batch = {}
        for x in ("A", "B"):
            self.batch[x] = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
            self.batch[f"{x}_real"] = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
            self.batch[f"{x}_group"] = torch.zeros(batch, dtype=torch.long)
        self.steps = steps

    def train_dataloader(self) -> DataLoader:
        return DataLoader([self.batch] * self.steps, batch_size=None)


def train(name: str, device: str, steps: int, warmup: int) -> dict[str, float]:
    sizes, batch, *_ = SETTINGS[name]
    torch.manual_seed(0)
    model = GANsNRoses(**sizes)
    timer = StepTimer(warmup)
    trainer = Trainer(accelerator=device, devices=1, max_steps=2 * (warmup + steps), logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      limit_val_batches=0, callbacks=[timer])
    trainer.fit(model, SameBatch(model.hparams.image_size, batch, warmup + steps))
    elapsed = timer.end - timer.start
    return {"images_per_s": 2 * batch * timer.steps / elapsed, "step_s": elapsed / timer.steps,
            "peak_gib": peak_gib(device)}


@torch.no_grad()
def infer(name: str, device: str, repeats: int, frames: int = 16) -> dict[str, float]:
    sizes, *_ = SETTINGS[name]
    torch.manual_seed(0)
    model = GANsNRoses(**sizes).eval().to(device)
    size = model.hparams.image_size
    image, styles = torch.rand(1, 3, size, size, device=device) * 2 - 1, torch.randn(8, 8, device=device)
    video = list(torch.rand(frames, 3, size, size) * 2 - 1)
    style = torch.randn(8)

    def clock(fn) -> float:
        return seconds_per_call(fn, repeats, 1, device)

    grid = clock(lambda: model.translate(image, styles))
    fast = clock(lambda: translate_frames(model, video, style, batch_size=frames))
    plain = clock(lambda: [model(f[None].to(device), style[None].to(device)) for f in video])
    return {"styles_per_s": 8 / grid, "frames_per_s": frames / fast, "plain_frames_per_s": frames / plain,
            "peak_gib": peak_gib(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    add_threads(parser)
    args = parser.parse_args()
    apply_threads(args)
    cuda = torch.cuda.is_available()
    print(machine("GANs N' Roses"))
    print(f"{'setting':11s}{'device':8s}{'what':24s}{'images/s':>11s}{'peak GiB':>10s}")
    for name in args.settings:
        _, batch, train_devices, infer_devices = SETTINGS[name]
        for device in train_devices:
            if device == "cuda" and not cuda:
                continue
            r = train(name, device, args.steps, args.warmup)
            print(f"{name:11s}{device:8s}{f'train, batch {batch}+{batch}':24s}{r['images_per_s']:11.1f}"
                  f"{r['peak_gib']:10.2f}", flush=True)
        for device in infer_devices:
            if device == "cuda" and not cuda:
                continue
            r = infer(name, device, args.repeats)
            for what, key in (("1 image, 8 styles", "styles_per_s"), ("frames, fast path", "frames_per_s"),
                              ("frames, one call each", "plain_frames_per_s")):
                print(f"{name:11s}{device:8s}{what:24s}{r[key]:11.1f}{r['peak_gib']:10.2f}", flush=True)
    print("peak GiB: CPU, the process's peak resident memory (ru_maxrss); CUDA, torch.cuda.max_memory_allocated")


if __name__ == "__main__":
    main()
