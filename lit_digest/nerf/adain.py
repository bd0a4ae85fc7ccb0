"""The per-frame 2D baseline: AdaIN style transfer (Huang & Belongie, arXiv 1703.06868) with the same feature
network as stage 2, applied to each rendered view on its own.

``AdaIN(x, y) = std(y) (x - mean(x)) / std(x) + mean(y)`` per channel of the deepest features (section 5); a
decoder trained to map those back to an image with ``L = L_c + 10 L_s`` (section 6 and the official
``train.py``: content = MSE to the AdaIN target, style = MSE of the means and of the standard deviations at
every layer, ``style_weight 10``). The decoder mirrors the encoder (nearest upsampling as the official ``net.decoder``;
replicate padding instead of its reflection padding, which a 1-pixel map of a small patch cannot take).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lit_digest.nerf.images import random_resized_crop

__all__ = ["adain", "AdaINDecoder", "stylise", "adain_style_loss", "train_adain_decoder"]


def adain(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Features ``(B, C, H, W)`` re-normalised to the per-channel mean and std of ``style`` ``(B or 1, C, h, w)``."""
    c = content.flatten(2)
    s = style.flatten(2)
    c_mean, s_mean = c.mean(-1, keepdim=True), s.mean(-1, keepdim=True)
    c_std = (c.var(-1, keepdim=True, correction=int(c.shape[-1] > 1)) + eps).sqrt()
    s_std = (s.var(-1, keepdim=True, correction=int(s.shape[-1] > 1)) + eps).sqrt()
    return ((c - c_mean) / c_std * s_std + s_mean).view_as(content)


class AdaINDecoder(nn.Module):
    """Deepest features ``(B, C_4, H / 8, W / 8)`` -> an image ``(B, 3, H, W)``: the encoder's blocks in reverse,
    two 3x3 convolutions and a 2x nearest upsampling per block."""

    def __init__(self, channels: Sequence[int] = (16, 32, 64, 128)) -> None:
        super().__init__()
        c1, c2, c3, c4 = channels
        layers: list[nn.Module] = []
        for a, b in ((c4, c3), (c3, c2), (c2, c1)):
            layers += [nn.Conv2d(a, b, 3, padding=1, padding_mode="replicate"), nn.ReLU(), nn.Upsample(scale_factor=2),
                       nn.Conv2d(b, b, 3, padding=1, padding_mode="replicate"), nn.ReLU()]
        layers.append(nn.Conv2d(c1, 3, 3, padding=1, padding_mode="replicate"))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        out = self.net(features)
        return out if size is None or tuple(out.shape[-2:]) == tuple(size) else \
            F.interpolate(out, size=size, mode="bilinear", align_corners=False)


def adain_style_loss(output: list[torch.Tensor], style: list[torch.Tensor]) -> torch.Tensor:
    """AdaIN's style loss: over the layers, MSE of the channel means plus MSE of the channel stds."""
    loss = torch.zeros((), device=output[0].device)
    for o, s in zip(output, style):
        o, s = o.flatten(2), s.flatten(2).expand(o.shape[0], -1, -1)
        std = [(x.var(-1, correction=int(x.shape[-1] > 1)) + 1e-5).sqrt() for x in (o, s)]
        loss = loss + F.mse_loss(o.mean(-1), s.mean(-1)) + F.mse_loss(*std)
    return loss


@torch.no_grad()
def stylise(encoder: nn.Module, decoder: AdaINDecoder, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Images ``(B, 3, H, W)`` in the style of one image ``(1, 3, S, S)``, each on its own, in [0, 1]."""
    target = adain(encoder(content)[-1], encoder(style)[-1])
    return decoder(target, content.shape[-2:]).clamp(0, 1)


def train_adain_decoder(encoder: nn.Module, contents: torch.Tensor, styles: Sequence[torch.Tensor], steps: int,
                        batch: int = 8, size: int = 32, style_weight: float = 10.0, lr: float = 1e-3,
                        seed: int = 0, log_every: int = 200) -> AdaINDecoder:
    """Train a decoder for the frozen ``encoder`` on content images ``(N, 3, H, W)`` (random square crops of
    ``size``, flipped at random) and style images ``(3, h, w)`` (random crops), Adam with cosine decay."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    decoder = AdaINDecoder(encoder.channels)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    start = time.monotonic()
    for step in range(steps):
        picks = torch.randint(0, len(contents), (batch,), generator=generator).tolist()
        content = torch.stack([random_resized_crop(contents[k], size, (0.5, 1.0), generator) for k in picks])
        flips = torch.rand(batch, generator=generator) < 0.5
        content = torch.where(flips[:, None, None, None], content.flip(-1), content)
        style = torch.stack([random_resized_crop(styles[int(torch.randint(0, len(styles), (), generator=generator))],
                                                 size, generator=generator) for _ in range(batch)])
        with torch.no_grad():
            content_features, style_features = encoder(content), encoder(style)
            target = adain(content_features[-1], style_features[-1])
        out = encoder(decoder(target, content.shape[-2:]))
        loss_c = F.mse_loss(out[-1], target)
        loss_s = sum(adain_style_loss([o[k:k + 1] for o in out], [s[k:k + 1] for s in style_features])
                     for k in range(batch)) / batch
        loss = loss_c + style_weight * loss_s
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if log_every and (step % log_every == 0 or step == steps - 1):
            print(f"adain decoder step {step}: content {loss_c.item():.4f}, style {loss_s.item():.4f} "
                  f"({time.monotonic() - start:.0f} s)", file=sys.stderr, flush=True)
    return decoder.requires_grad_(False).eval()
