"""GenRep's views: how fast a frozen generator renders them (anchors and walks, then the pixel augmentations), and
what rendering them on the fly costs a SimCLR training step against views pre-generated to memory; CPU, and
CUDA when present.

    python benchmarks/genrep.py                    # CPU (and CUDA if present), about a minute on CPU
    python benchmarks/genrep.py --devices cuda --batch-size 512 --steps 50

Generators: the 28-px grey DCGAN of configs/genrep/dcgan/fashion_mnist.yaml (width 32) and a 64-px colour
DCGAN (width 64); random weights (speed does not depend on them). Training step: SimCLR with the encoder of
configs/genrep/sigma_sweep.yaml (SmallConvNet width 16) on the 28-px views, ``online`` (render + augment +
step) against ``fixed`` (uint8 anchors and walks from memory, augment + step), the pre-generated mode.
"""

from __future__ import annotations

import argparse

import torch
from timing import machine, seconds_per_call

from lit_digest.core.optim import Optim
from lit_digest.ssl import SimCLR, SimCLRViews, SmallConvNet
from lit_digest.ssl.genrep import DCGANGenerator, GeneratedViewsDataModule

VIEWS = dict(min_scale=0.2, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, blur_p=0.0)
GENERATORS = {"dcgan-28px-grey": dict(latent_dim=100, width=32, out_channels=1, image_size=28),
              "dcgan-64px-colour": dict(latent_dim=128, width=64, out_channels=3, image_size=64)}


def datamodule(name: str, device: str, sigma: float = 0.5) -> GeneratedViewsDataModule:
    spec = GENERATORS[name]
    dm = GeneratedViewsDataModule(DCGANGenerator(**spec), sigma=sigma,
                                  views=SimCLRViews(crop_size=spec["image_size"], **VIEWS))
    dm.setup()
    dm.generative_model.to(device)
    return dm


def render_rate(name: str, device: str, batch: int, steps: int, warmup: int) -> tuple[float, float]:
    """(images/s rendered by the generator alone, images/s with the pixel augmentations), two per sample."""
    dm = datamodule(name, device)
    g = torch.Generator(device=device).manual_seed(0)
    render = seconds_per_call(lambda: dm.sample_views(batch, device, g), steps, warmup, device)
    images, _, _ = dm.sample_views(batch, device, g)
    augment = seconds_per_call(lambda: dm.augment(images, g), steps, warmup, device)
    return 2 * batch / render, 2 * batch / (render + augment)


def step_ms(mode: str, device: str, batch: int, steps: int, warmup: int) -> float:
    """Milliseconds per SimCLR training step (forward, backward, SGD) on 28-px views, rendered on the fly
    (``online``) or read from a pre-generated uint8 set (``fixed``)."""
    torch.manual_seed(0)
    dm = datamodule("dcgan-28px-grey", device)
    model = SimCLR(SmallConvNet(1, 16), proj_hidden_dim=64, proj_dim=128, temperature=0.1,
                   optim=Optim(name="sgd", lr=0.03)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9)
    g = torch.Generator(device=device).manual_seed(0)
    stored, _, _ = dm.sample_views(batch, device, g)
    stored = [(x * 255).round().to(torch.uint8) for x in stored]
    labels = torch.full((batch,), -1, device=device)

    def step() -> None:
        images = dm.sample_views(batch, device, g)[0] if mode == "online" else stored
        views = dm.augment(images, g)
        feats = [model.backbone(v) for v in views]
        loss = model.contrastive_loss(torch.stack([model.projector(f) for f in feats], dim=1), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return 1000 * seconds_per_call(step, steps, warmup, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    parser.add_argument("--batch-size", type=int, default=None, help="default: 128 on CPU, 512 on CUDA")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 3 on CPU, 30 on CUDA)")
    args = parser.parse_args()
    print(machine("GenRep views"))
    for device in args.devices:
        batch = args.batch_size or (512 if device == "cuda" else 128)
        steps = args.steps or (30 if device == "cuda" else 3)
        warmup = 5 if device == "cuda" else 1
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        print(f"\n{device}, batch {batch} anchors (x2 images)")
        print(f"{'generator':20s}{'rendered img/s':>16s}{'+ augmented img/s':>20s}")
        for name in GENERATORS:
            render, augmented = render_rate(name, device, batch, steps, warmup)
            print(f"{name:20s}{render:16.0f}{augmented:20.0f}", flush=True)
        print(f"{'SimCLR step':20s}{'ms/step':>16s}{'images/s':>20s}")
        for mode in ("fixed", "online"):
            ms = step_ms(mode, device, batch, steps, warmup)
            print(f"{mode:20s}{ms:16.1f}{2 * batch / ms * 1000:20.0f}", flush=True)
        if device == "cuda":
            print(f"peak CUDA memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
