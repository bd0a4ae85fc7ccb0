"""Perceptual features for the content and style losses: the paper's VGG (ImageNet weights, a download) or a
small feature network trained here on the photos scikit-image and scikit-learn ship, for offline runs.

Both map images ``(B, 3, H, W)`` in [0, 1] to four feature maps at strides 1, 2, 4 and 8, the first ReLU of
each block: the paper's content loss compares the deepest (VGG-19 relu4_1), its style loss the mean and standard
deviation of all four (relu1_1 ... relu4_1; AdaIN, arXiv 1703.06868 section 6; official ``model/RAIN.py``).
``features: vgg16`` uses torchvision's VGG-16 (``lit_digest.core.vgg``; the paper's VGG-19 weights of
AdaIN are not a torchvision download). ``features: trained`` uses ``StyleFeatureNet`` with the weights shipped
in ``lit_digest/nerf/feature_net.pt``, which ``python -m lit_digest.nerf.features`` rebuilds: a VGG-like
network (two 3x3 convolutions per block) trained to tell apart random crops of 14 photos from the mean and
standard deviation of its four feature maps, the statistics the style loss compares.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from lit_digest.core.console import script
from lit_digest.core.vgg import VGG16Features, load_vgg16_features
from lit_digest.nerf.images import bundled_photos, fit_short_side, random_resized_crop, read_rgb
from lit_digest.nerf.losses import style_statistics

__all__ = ["StyleFeatureNet", "VGGStyleFeatures", "SHIPPED_WEIGHTS", "load_style_features", "train_feature_net",
           "main"]

SHIPPED_WEIGHTS = Path(__file__).resolve().parent / "feature_net.pt"
FeatureKind = Literal["trained", "vgg16"]


class StyleFeatureNet(nn.Module):
    """Four VGG-like blocks (3x3 convolution + ReLU twice, 2x2 max-pooling between blocks, the last block's first
    convolution only), returning the first ReLU of each block: ``(B, 3, H, W)`` in [0, 1] -> 4 maps
    ``(B, widths[k], H / 2^k, W / 2^k)``. Frozen and in eval mode once loaded (``freeze``)."""

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 128)) -> None:
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"StyleFeatureNet has 4 blocks, got widths {list(widths)}")
        self.widths = self.channels = tuple(widths)
        ins = (3, *widths[:-1])
        self.first = nn.ModuleList(nn.Conv2d(i, o, 3, padding=1, padding_mode="replicate") for i, o in zip(ins, widths))
        self.second = nn.ModuleList(nn.Conv2d(o, o, 3, padding=1, padding_mode="replicate") for o in widths[:-1])

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = (images - 0.45) / 0.25
        out = []
        for k, conv in enumerate(self.first):
            x = F.relu(conv(x))
            out.append(x)  # (B, C_k, H / 2^k, W / 2^k)
            if k < len(self.second):
                x = F.max_pool2d(F.relu(self.second[k](x)), 2, ceil_mode=True)
        return out

    def freeze(self) -> StyleFeatureNet:
        self.requires_grad_(False)
        return self.eval()


class VGGStyleFeatures(nn.Module):
    """``VGG16Features`` at relu1_1, relu2_1, relu3_1 and relu4_1 for images in [0, 1]."""

    channels = (64, 128, 256, 512)

    def __init__(self, vgg: VGG16Features) -> None:
        super().__init__()
        self.vgg = vgg

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.vgg(images * 2 - 1)


def load_style_features(kind: FeatureKind = "trained", weights: str | os.PathLike | None = None,
                        download_vgg: bool = False,
                        options: tuple[str, str, str] = ("model.init_args.feature_weights",
                                                         "model.init_args.download_vgg",
                                                         "model.init_args.features trained")) -> nn.Module:
    """The frozen feature network ``kind``: ``trained`` from ``weights`` (default: the shipped file), ``vgg16``
    from ``weights`` (default: torchvision's cache; ``MissingDataError`` with the URL and the fixes when absent)."""
    if kind == "vgg16":
        vgg = load_vgg16_features(weights, download_vgg, layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1"),
                                  options=options)
        return VGGStyleFeatures(vgg).requires_grad_(False).eval()
    if kind != "trained":
        raise ValueError(f"features must be 'trained' or 'vgg16', got {kind!r}")
    path = Path(weights) if weights is not None else SHIPPED_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"Feature network weights not found at '{path.resolve()}'. Rebuild them with "
                                f"`python -m lit_digest.nerf.features --out {path}`, or set {options[0]}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net = StyleFeatureNet(state["widths"])
        net.load_state_dict(state["state_dict"])
    except Exception as err:
        raise ValueError(f"'{path}' is not a StyleFeatureNet file ({type(err).__name__}: {err}); rebuild it with "
                         f"`python -m lit_digest.nerf.features --out {path}`") from err
    return net.freeze()


def train_feature_net(photos: Sequence[torch.Tensor], steps: int = 800, batch: int = 32, crop: int = 32,
                      widths: Sequence[int] = (16, 32, 64, 128), lr: float = 2e-3, seed: int = 0,
                      log_every: int = 100) -> tuple[StyleFeatureNet, dict[str, float]]:
    """Train ``StyleFeatureNet`` to name the photo a random crop (a uniform 10-100 % of its area, flipped at
    random) comes from, by a linear classifier on ``style_statistics``; Adam, cosine decay. Returns the frozen
    network and the accuracy on fresh crops."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = StyleFeatureNet(widths)
    classifier = nn.Linear(2 * sum(widths), len(photos))
    optimizer = torch.optim.Adam([*net.parameters(), *classifier.parameters()], lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)

    def crops(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, len(photos), (n,), generator=generator)
        images = [random_resized_crop(photos[k], crop, (0.1, 1.0), generator) for k in labels.tolist()]
        flips = torch.rand(n, generator=generator) < 0.5
        batch_images = torch.stack(images)
        return torch.where(flips[:, None, None, None], batch_images.flip(-1), batch_images), labels

    start = time.monotonic()
    for step in range(steps):
        images, labels = crops(batch)
        loss = F.cross_entropy(classifier(style_statistics(net(images))), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if log_every and (step % log_every == 0 or step == steps - 1):
            print(f"feature net step {step}: loss {loss.item():.3f} ({time.monotonic() - start:.0f} s)",
                  file=sys.stderr, flush=True)
    with torch.no_grad():
        images, labels = crops(512)
        accuracy = (classifier(style_statistics(net(images))).argmax(-1) == labels).float().mean().item()
    return net.freeze(), {"accuracy": accuracy, "chance": 1 / len(photos), "seconds": time.monotonic() - start}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lit_digest.nerf.features", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--crop", type=int, default=32, help="side of the training crops (px)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(SHIPPED_WEIGHTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    paths = bundled_photos()
    photos = [fit_short_side(read_rgb(p), 2 * args.crop) for p in paths]
    net, result = train_feature_net(photos, args.steps, args.batch, args.crop, seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"widths": list(net.widths), "state_dict": net.state_dict(), "photos": [p.name for p in paths],
                "settings": {k: v for k, v in vars(args).items() if k != "out"}, "accuracy": result["accuracy"]}, out)
    print(f"feature net: {len(paths)} photos, accuracy {result['accuracy']:.3f} on fresh crops (chance "
          f"{result['chance']:.3f}), {result['seconds']:.0f} s; weights in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(script(main)())
