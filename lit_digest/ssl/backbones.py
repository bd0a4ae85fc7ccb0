"""Encoders that map images to a flat feature vector.

Every backbone here exposes ``num_features`` (the size of its output) so that
heads can be built from explicit sizes; any other ``nn.Module`` works too if
the method is given ``feature_dim``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torchvision
from torch import nn

__all__ = ["ResNet", "SmallConvNet", "default_encoder"]


class ResNet(nn.Module):
    """A torchvision ResNet without its classifier: ``(B, C, H, W) -> (B, num_features)``.

    Args:
        depth: 18, 34 or 50 (torchvision's ``resnet{depth}``, randomly initialised).
        cifar_stem: replace the 7x7/stride-2 stem and its max-pool by a 3x3/stride-1 conv
            and no pooling, the usual choice for 32x32 inputs (SimCLR arXiv 2002.05709,
            appendix B.9; solo-learn's CIFAR backbones do the same).
        in_channels: 3 for colour, 1 for grey images.
        zero_init_residual: start every residual branch at zero (Goyal et al. 1706.02677).
    """

    def __init__(
        self,
        depth: Literal[18, 34, 50] = 18,
        cifar_stem: bool = False,
        in_channels: int = 3,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        builders = {18: torchvision.models.resnet18, 34: torchvision.models.resnet34,
                    50: torchvision.models.resnet50}
        if depth not in builders:
            raise ValueError(f"ResNet depth must be one of {sorted(builders)}, got {depth}")
        net = builders[depth](weights=None, zero_init_residual=zero_init_residual)
        self.new_stem = cifar_stem or in_channels != 3
        if cifar_stem:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        elif in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.num_features: int = net.fc.in_features
        self.zero_init_residual = zero_init_residual
        net.fc = nn.Identity()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, num_features)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """A new draw of the constructor's initialisation: torchvision's (Kaiming-normal fan-out convolutions,
        BatchNorm 1 and 0, zero last BatchNorm per block with ``zero_init_residual``), the replaced stem
        convolution at PyTorch's default as built."""
        for m in self.net.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()
        if self.new_stem:
            self.net.conv1.reset_parameters()
        if self.zero_init_residual:
            for m in self.net.modules():
                last = getattr(m, "bn3", None) or getattr(m, "bn2", None) if hasattr(m, "conv2") else None
                if isinstance(last, nn.BatchNorm2d):
                    nn.init.zeros_(last.weight)


class SmallConvNet(nn.Module):
    """A four-layer conv net for CPU tests and the demo (a few hundred thousand parameters).

    ``conv-BN-ReLU`` blocks of widths ``width, 2*width, 4*width, 4*width``, the middle two
    with stride 2, then global average pooling: ``(B, C, H, W) -> (B, 4 * width)``.
    """

    def __init__(self, in_channels: int = 3, width: int = 32) -> None:
        super().__init__()
        widths = [width, 2 * width, 4 * width, 4 * width]
        strides = [1, 2, 2, 1]
        layers: list[nn.Module] = []
        c_in = in_channels
        for c_out, stride in zip(widths, strides):
            layers += [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features: int = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)  # (B, num_features)

    def reset_parameters(self) -> None:
        """A new draw of the constructor's initialisation (PyTorch's defaults for every layer)."""
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters"):
                m.reset_parameters()


def default_encoder(backbone: nn.Module | None) -> nn.Module:
    """``backbone``, or when it is None the methods' default encoder ``SmallConvNet(in_channels=3, width=16)``, the
    encoder of the measured CIFAR-subset runs (docs/ssl.md): small enough that a method built with its defaults
    trains a few steps of batch 256 in seconds on a CPU. The papers' CIFAR ResNet-18 (``ResNet(18,
    cifar_stem=True)``, in ``configs/<method>/cifar10.yaml``) takes about 30 s per such step there (15 images/s on
    2 CPU threads, README "Benchmarks")."""
    return SmallConvNet(width=16) if backbone is None else backbone
