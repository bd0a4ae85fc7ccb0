"""A small fully-convolutional depth estimator with a deliberately small receptive field.

The paper's analysis (arXiv 2105.14021, section 3) rests on two properties of a monocular depth
network: its *receptive field*, fixed in pixels, so that at high input resolutions pixels far from
any contextual cue get no context and the structure breaks; and its *capacity*, which limits the
detail it produces at low resolutions. ``SmallDepthNet`` makes both explicit: two stride-2 stages,
a dilated middle and a skip-connected decoder give a theoretical receptive field of 45 px at the
default sizes (``python -m lit_digest.tools.shapes --input 3x48x48 --module
lit_digest.depth.nets.SmallDepthNet`` prints it layer by layer), about the 48-px images it is
trained on, as MiDaS' field is about its 384-px training size (the official code uses 384 as
MiDaS' "receptive field", ``run.py``).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SmallDepthNet"]


def _conv(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, dilation, dilation), nn.ReLU(inplace=True))


class SmallDepthNet(nn.Module):
    """Image ``(B, 3, H, W)`` in [0, 1] -> relative depth ``(B, 1, H, W)`` (up to scale and shift), ``H`` and
    ``W`` multiples of 4.

    Encoder ``conv3(w) -> conv3/2(2w) -> conv3(2w) -> conv3/2(4w) -> conv3 dil 2(4w) -> conv3(4w)``, decoder
    ``up x2 -> cat skip -> conv3(2w) -> up x2 -> cat skip -> conv3(w) -> conv3(1)``; ReLU throughout, no
    normalisation (a batch statistic would leak global context into every pixel).

    Args:
        width: ``w``, channels of the first stage.
        in_channels: 3 for RGB.
    """

    def __init__(self, width: int = 16, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = _conv(in_channels, width)
        self.down1 = nn.Sequential(_conv(width, 2 * width, stride=2), _conv(2 * width, 2 * width))
        self.down2 = nn.Sequential(_conv(2 * width, 4 * width, stride=2), _conv(4 * width, 4 * width, dilation=2),
                                   _conv(4 * width, 4 * width))
        self.up = nn.Upsample(scale_factor=2.0, mode="nearest")
        self.dec1 = _conv(6 * width, 2 * width)
        self.dec2 = _conv(3 * width, width)
        self.head = nn.Conv2d(width, 1, 3, padding=1)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)[:, :in_channels])
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)[:, :in_channels])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std  # ImageNet statistics, as MiDaS' input transform
        s1 = self.stem(x)  # (B, w, H, W)
        s2 = self.down1(s1)  # (B, 2w, H/2, W/2)
        s3 = self.down2(s2)  # (B, 4w, H/4, W/4)
        y = self.dec1(torch.cat([self.up(s3), s2], 1))  # (B, 2w, H/2, W/2)
        y = self.dec2(torch.cat([self.up(y), s1], 1))  # (B, w, H, W)
        return self.head(y)  # (B, 1, H, W)
