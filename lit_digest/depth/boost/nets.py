"""The merge network: pix2pix's U-Net generator and PatchGAN discriminator as the paper configures them.

Miangoleh et al. (arXiv 2105.14021, section 4) train "a standard Pix2Pix architecture with a
10-layer U-Net as the generator" to map the low- and high-resolution estimates (2 channels) to one
merged estimate. From the official code (``pix2pix/models/pix2pix4depth_model.py``, ``networks.py``
of compphoto/BoostingMonocularDepth, after Isola et al., arXiv 1611.07004): ``unet_1024`` = 10
down-samplings (1024 px -> 1 px), 64 filters in the outer layer, ``norm='none'`` (which also
leaves every inner convolution without a bias), no dropout, tanh output; the discriminator is
the 70x70 PatchGAN (3 strided layers, 64 filters) on the inputs and the output (3 channels);
weights ~ N(0, 0.02).

Both networks are built from explicit sizes; ``num_downs``, ``ngf`` and ``ndf`` shrink them for
CPUs (the input side must be a multiple of ``2 ** num_downs``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MergeUNet", "PatchDiscriminator", "init_normal"]


def init_normal(module: nn.Module, std: float = 0.02) -> None:
    """pix2pix's ``init_weights(net, 'normal', 0.02)``: convolution weights ~ N(0, std), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class MergeUNet(nn.Module):
    """pix2pix U-Net: ``num_downs`` stride-2 4x4 convolutions with ``ngf, 2ngf, 4ngf, 8ngf, 8ngf, ...`` filters,
    mirrored by 4x4 transposed convolutions with skip connections, tanh output.

    Each inner level feeds its decoder ``cat(leaky_relu(skip), up)``: pix2pix applies the encoder's
    LeakyReLU(0.2) in place, so the skip it concatenates is the activated one. Down: LeakyReLU(0.2)
    then conv; up: ReLU then transposed conv.

    Args:
        in_channels, out_channels: 2 (low-, high-resolution estimates) and 1 (merged).
        num_downs: down-samplings (10 in the paper, for 1024-px inputs); at least 5.
        ngf: filters of the outer layer (64).
        bias: biases in the inner layers (the official ``norm='none'`` has none; the outer transposed
            convolution always has one).
    """

    def __init__(self, in_channels: int = 2, out_channels: int = 1, num_downs: int = 10, ngf: int = 64,
                 bias: bool = False) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"MergeUNet needs num_downs >= 5 (pix2pix's channel plan), got {num_downs}")
        self.num_downs = num_downs
        channels = [ngf, 2 * ngf, 4 * ngf] + [8 * ngf] * (num_downs - 3)
        self.downs = nn.ModuleList([nn.Conv2d(in_channels, ngf, 4, 2, 1, bias=False)])
        self.downs.extend(nn.Conv2d(channels[i - 1], channels[i], 4, 2, 1, bias=bias) for i in range(1, num_downs))
        ups = [nn.ConvTranspose2d(2 * channels[0], out_channels, 4, 2, 1)]  # outer: with bias
        ups += [nn.ConvTranspose2d(2 * channels[i], channels[i - 1], 4, 2, 1, bias=bias)
                for i in range(1, num_downs - 1)]
        ups.append(nn.ConvTranspose2d(channels[-1], channels[-2], 4, 2, 1, bias=bias))  # innermost: no skip below
        self.ups = nn.ModuleList(ups)
        init_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [self.downs[0](x)]  # (B, ngf, H/2, W/2)
        for down in self.downs[1:]:
            feats.append(down(F.leaky_relu(feats[-1], 0.2)))  # level i: (B, c_i, H/2^(i+1), W/2^(i+1))
        y = self.ups[-1](F.relu(feats[-1]))  # innermost: (B, c_{n-2}, ...)
        for i in range(self.num_downs - 2, -1, -1):
            y = torch.cat([F.leaky_relu(feats[i], 0.2), y], 1)  # (B, 2 c_i, H/2^(i+1), W/2^(i+1))
            y = self.ups[i](F.relu(y))
        return torch.tanh(y)  # (B, out, H, W) in (-1, 1)


class PatchDiscriminator(nn.Module):
    """pix2pix's PatchGAN (``netD='basic'``, ``n_layers=3``): ``conv4/2(ndf) -> conv4/2(2ndf) -> conv4/2(4ndf) ->
    conv4/1(8ndf) -> conv4/1(1)``, LeakyReLU(0.2) between, no normalisation (``norm='none'``); one logit per
    70x70 patch at the default depth.

    Args:
        in_channels: inputs + output (3).
        ndf: filters of the first layer (64).
        n_layers: strided layers (3).
        bias: biases of the inner layers (none in the official ``norm='none'`` setting).
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, bias: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=bias), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)
        init_normal(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (B, 1, H', W') logits
