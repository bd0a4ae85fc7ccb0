"""The Network-in-Network encoder of RotNet's and AET's CIFAR code."""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["NetworkInNetwork", "conv_bn_relu", "default_nin"]


def conv_bn_relu(c_in: int, c_out: int, kernel_size: int) -> nn.Sequential:
    """``Conv (no bias, 'same' padding) -> BN -> ReLU``: the official ``BasicBlock``."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel_size, padding=(kernel_size - 1) // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def _pooled(size: int) -> int:
    return (size - 1) // 2 + 1  # a 3x3 pooling, stride 2, padding 1


class NetworkInNetwork(nn.Module):
    """Network-in-Network (Lin et al., arXiv 1312.4400) as RotNet builds it for CIFAR (Gidaris et al., arXiv
    1803.07728, ``FeatureLearningRotNet/architectures/NetworkInNetwork.py``) and AET's official code copies
    (``cifar/*/NetworkInNetwork.py``, built with ``_num_stages=4, _use_avg_on_conv3=False``).

    ``num_blocks`` blocks of three ``conv-BN-ReLU`` layers, 192 channels (``width``):

    1. 5x5 -> 192, 1x1 -> 160, 1x1 -> 96, max-pool 3/2: ``(96, H/2, W/2)``;
    2. 5x5 -> 192, 1x1 -> 192, 1x1 -> 192, average-pool 3/2: ``(192, H/4, W/4)``;
    3. and on: 3x3 -> 192, 1x1 -> 192, 1x1 -> 192 (block 3 pools once more with ``pool_after_block3``);

    then global average pooling: ``forward`` gives ``(B, width)`` features of block ``feature_block`` (the last
    by default). The paper evaluates the feature maps of block 2 (``feature_maps(x, 2)``, 192x8x8 at 32 px);
    ``feature_block: 2`` makes ``forward`` pool those, for kNN and linear evaluation. Initialisation as the
    official code: convolutions ``N(0, 2 / (k * k * out_channels))``, BatchNorm weights 1 and biases 0.
    """

    def __init__(self, in_channels: int = 3, num_blocks: int = 4, width: int = 192, pool_after_block3: bool = False,
                 feature_block: int | None = None) -> None:
        super().__init__()
        if num_blocks < 3:
            raise ValueError(f"NetworkInNetwork needs num_blocks >= 3 (the official assertion), got {num_blocks}")
        if width < 12:
            raise ValueError(f"NetworkInNetwork: width must be at least 12, got {width}")
        feature_block = num_blocks if feature_block is None else feature_block
        if not 1 <= feature_block <= num_blocks:
            raise ValueError(f"NetworkInNetwork: feature_block must be in [1, {num_blocks}], got {feature_block}")
        self.in_channels, self.num_blocks, self.width = in_channels, num_blocks, width
        self.pool_after_block3, self.feature_block = pool_after_block3, feature_block
        narrow, narrower = width * 5 // 6, width // 2  # 160 and 96 at width 192
        blocks = [
            nn.Sequential(conv_bn_relu(in_channels, width, 5), conv_bn_relu(width, narrow, 1),
                          conv_bn_relu(narrow, narrower, 1), nn.MaxPool2d(3, stride=2, padding=1)),
            nn.Sequential(conv_bn_relu(narrower, width, 5), conv_bn_relu(width, width, 1),
                          conv_bn_relu(width, width, 1), nn.AvgPool2d(3, stride=2, padding=1)),
        ]
        for k in range(3, num_blocks + 1):
            layers = [conv_bn_relu(width, width, 3), conv_bn_relu(width, width, 1), conv_bn_relu(width, width, 1)]
            if k == 3 and pool_after_block3 and num_blocks > 3:
                layers.append(nn.AvgPool2d(3, stride=2, padding=1))
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.ModuleList(blocks)
        self.num_features: int = self.block_channels(feature_block)
        self.reset_parameters()

    def block_channels(self, block: int) -> int:
        """Channels of block ``block``'s output (1-indexed)."""
        return self.width // 2 if block == 1 else self.width

    def block_shape(self, block: int, image_size: int) -> tuple[int, int, int]:
        """``(channels, height, width)`` of block ``block``'s output for square ``image_size`` inputs."""
        if not 1 <= block <= self.num_blocks:
            raise ValueError(f"NetworkInNetwork has blocks 1 to {self.num_blocks}, asked for block {block}")
        size = image_size
        for k in range(1, block + 1):
            if k in (1, 2) or (k == 3 and self.pool_after_block3 and self.num_blocks > 3):
                size = _pooled(size)
        return self.block_channels(block), size, size

    def feature_maps(self, x: torch.Tensor, block: int) -> torch.Tensor:
        """The output of block ``block`` (1-indexed): ``(B, C, h, w)``."""
        if not 1 <= block <= self.num_blocks:
            raise ValueError(f"NetworkInNetwork has blocks 1 to {self.num_blocks}, asked for block {block}")
        for layer in self.blocks[:block]:
            x = layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_maps(x, self.feature_block).mean(dim=(2, 3))  # (B, num_features)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.normal_(0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()


def default_nin(backbone: nn.Module | None) -> nn.Module:
    """``backbone``, or when it is None the AET systems' default encoder ``NetworkInNetwork(width=32)``: the NIN
    of the paper at a sixth of its width (192), the width of the measured ``python -m lit_digest.ssl.aet.compare``
    run, so that a method built with its defaults trains a few steps of batch 256 in seconds on a CPU (the paper's
    width takes about 8 s per such step there). ``configs/aet/*.yaml`` build the paper's."""
    return NetworkInNetwork(width=32) if backbone is None else backbone
