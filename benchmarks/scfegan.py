"""SC-FEGAN training throughput: one critic step (with the gradient penalty's double backward) plus one generator
step, in images per second, and the peak memory of the step.

Settings (random inputs; the work does not depend on the values):

- ``cpu-64``: the networks of configs/scfegan/att_faces.yaml (5 levels, 32-128 ch) at 64 px, batch 16, no VGG;
- ``paper-128``: the paper's networks (7 levels, 64-512 ch, SN-PatchGAN 64-256 ch, 3x3) at 128 px, batch 2,
  with the perceptual and style terms on VGG-16 pool1-3 (random weights: the same work);
- ``paper-512``: the paper's setting at 512 px, batch 8, with VGG (CUDA only).

    python benchmarks/scfegan.py                 # cpu-64 and paper-128 on the CPU; paper-512 on the GPU if any
    python benchmarks/scfegan.py --settings paper-512 --steps 20
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import add_threads, apply_threads, machine, peak_gib, rss_mib, seconds_per_call  # noqa: E402

from lit_digest.gan import SCFEGAN, SCFEGANGenerator, SNPatchGAN, VGG16Features  # noqa: E402

SETTINGS = {
    # name: (image size, batch, generator widths, kernels, dilations, critic widths, VGG, devices)
    # the GPU suite's quick mode (no device of its own: only benchmarks/gpu_suite.py runs it)
    "tiny-32": (32, 2, (8, 16, 32, 32, 32), (7, 5, 5, 3, 3), (2, 4), (8, 16, 32, 32, 32), False, ()),
    "cpu-64": (64, 16, (32, 64, 128, 128, 128), (7, 5, 5, 3, 3), (2, 4), (32, 64, 128, 128, 128), False, ("cpu",)),
    "paper-128": (128, 2, (64, 128, 256, 512, 512, 512, 512), (7, 5, 5, 3, 3, 3, 3), (2, 4, 8, 16),
                  (64, 128, 256, 256, 256, 256), True, ("cpu", "cuda")),
    "paper-512": (512, 8, (64, 128, 256, 512, 512, 512, 512), (7, 5, 5, 3, 3, 3, 3), (2, 4, 8, 16),
                  (64, 128, 256, 256, 256, 256), True, ("cuda",)),
}


def build(name: str, device: str) -> tuple[SCFEGAN, dict[str, torch.Tensor]]:
    size, batch, widths, kernels, dilations, critic, vgg, _ = SETTINGS[name]
    torch.manual_seed(0)
    model = SCFEGAN(SCFEGANGenerator(widths=widths, kernels=kernels, dilations=dilations),
                    SNPatchGAN(in_channels=8, widths=critic, kernel_size=3), perceptual_style=vgg)
    model.set_vgg(VGG16Features() if vgg else None)
    model.to(device)
    if model.vgg is not None:
        model.vgg.to(device)
    shape = (batch, 1, size, size)
    data = {"image": torch.rand(batch, 3, size, size) * 2 - 1, "mask": (torch.rand(shape) > 0.6).float(),
            "sketch": (torch.rand(shape) > 0.9).float(), "colour": torch.rand(batch, 3, size, size) * 2 - 1,
            "noise": (torch.randn(shape) >= 1).float()}
    return model, {k: v.to(device) for k, v in data.items()}


def train_step(model: SCFEGAN, batch: dict[str, torch.Tensor], opt_g, opt_d, step: int) -> None:
    """``SCFEGAN.training_step`` without a Trainer: the critic's update, then the generator's."""
    generated, completed = model.complete(batch["image"], batch["mask"], batch["sketch"], batch["colour"],
                                          batch["noise"])
    opt_d.zero_grad(set_to_none=True)
    model.discriminator_loss(batch, completed, step)["loss"].backward()
    opt_d.step()
    model.discriminator.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    model.generator_loss(batch, generated, completed)["loss"].backward()
    opt_g.step()
    model.discriminator.requires_grad_(True)


def measure(name: str, device: str, steps: int, warmup: int) -> dict[str, float]:
    model, batch = build(name, device)
    opt_g = torch.optim.Adam(model.generator.parameters(), 1e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(model.discriminator.parameters(), 1e-4, betas=(0.5, 0.999))
    rss_before, step = rss_mib(), itertools.count()
    step_s = seconds_per_call(lambda: train_step(model, batch, opt_g, opt_d, next(step)), steps, warmup, device,
                              reset_peak=True)
    return {"images_per_s": batch["image"].shape[0] / step_s, "step_s": step_s, "peak_gib": peak_gib(device),
            "rss_growth_mib": rss_mib() - rss_before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    add_threads(parser)
    args = parser.parse_args()
    apply_threads(args)
    cuda = torch.cuda.is_available()
    print(machine("SC-FEGAN G+D training step"))
    print(f"{'setting':11s}{'device':8s}{'size':>6s}{'batch':>7s}{'images/s':>11s}{'s/step':>9s}{'peak GiB':>10s}")
    for name in args.settings:
        size, batch, *_, devices = SETTINGS[name]
        for device in devices:
            if device == "cuda" and not cuda:
                continue
            r = measure(name, device, args.steps, args.warmup)
            peak = f"{r['peak_gib']:10.2f}" if device == "cuda" else f"{r['peak_gib']:9.2f}*"
            print(f"{name:11s}{device:8s}{size:6d}{batch:7d}{r['images_per_s']:11.2f}{r['step_s']:9.3f}{peak}",
                  flush=True)
    print("* CPU: the process's peak resident memory (ru_maxrss); CUDA: torch.cuda.max_memory_allocated")


if __name__ == "__main__":
    main()
