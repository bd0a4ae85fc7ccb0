"""GANs N' Roses networks (Chong & Forsyth, arXiv 2106.06561; sizes from mchong6/GANsNRoses
``model.py``): a generator per direction (the source domain's encoder and the target domain's decoder), an image
discriminator per domain and one discriminator on style codes.

Widths follow StyleGAN2's table ``channels[resolution]`` (official ``model.py``: 512 up to 32 px, then 256, 128,
64 at 64, 128, 256 px), i.e. ``min(channel_max, channel_base // resolution)`` with base 16384 and max 512; the
small defaults here (base 512, max 32: 16 channels at 32 px, 32 below) train on a CPU.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lit_digest.gan.ganroses.layers import ConvLayer, EqualLinear, ResBlock, StyledConv, StyledResBlock, ToRGB

__all__ = ["channel_width", "Encoder", "Decoder", "Generator", "Discriminator", "LatentDiscriminator"]


def channel_width(resolution: int, channel_base: int, channel_max: int) -> int:
    """Feature maps at ``resolution`` px: ``min(channel_max, channel_base // resolution)``."""
    return max(1, min(channel_max, channel_base // resolution))


def _log2(size: int, what: str) -> int:
    log = int(round(math.log2(size))) if size > 0 else -1
    if size < 4 or 2 ** log != size:
        raise ValueError(f"{what} must be a power of two >= 4, got {size}")
    return log


class Encoder(nn.Module):
    """Image ``(B, C, S, S)`` -> content ``(B, ch, S / 2^num_down, ...)`` and style ``(B, latent_dim)``.

    A 1x1 stem, ``num_down`` downsampling residual blocks and ``n_res`` more at the content's resolution; the
    content branch is two 1x1 convolutions, the style branch strided 3x3 convolutions down to 4x4 and two
    linear layers (the official ``Encoder``; ``latent_dim = 8``, ``train.py``'s ``--latent_dim``).
    """

    def __init__(self, size: int, latent_dim: int = 8, num_down: int = 3, n_res: int = 1, channel_base: int = 16384,
                 channel_max: int = 512, image_channels: int = 3) -> None:
        super().__init__()
        log_size = _log2(size, "image_size")
        if not 1 <= num_down <= log_size - 2:
            raise ValueError(f"num_down must be in [1, {log_size - 2}] for {size}-px images (the content code is at "
                             f"least 4x4), got {num_down}")

        def ch(res: int) -> int:
            return channel_width(res, channel_base, channel_max)

        stem: list[nn.Module] = [ConvLayer(image_channels, ch(size), 1)]
        c = ch(size)
        for i in range(log_size, log_size - num_down, -1):
            stem.append(ResBlock(c, ch(2 ** (i - 1)), downsample=True))
            c = ch(2 ** (i - 1))
        stem += [ResBlock(c, c, downsample=False) for _ in range(n_res)]
        self.stem = nn.Sequential(*stem)
        self.content = nn.Sequential(ConvLayer(c, c, 1), ConvLayer(c, c, 1))
        style: list[nn.Module] = []
        for i in range(log_size - num_down, 2, -1):
            style.append(ConvLayer(c, ch(2 ** (i - 1)), 3, downsample=True))
            c = ch(2 ** (i - 1))
        style += [nn.Flatten(), EqualLinear(c * 16, ch(4), activation=True), EqualLinear(ch(4), latent_dim)]
        self.style = nn.Sequential(*style)
        self.size, self.image_channels = size, image_channels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (B, C, S, S)
        if x.shape[1:] != (self.image_channels, self.size, self.size):
            raise ValueError(f"the encoder takes ({self.image_channels}, {self.size}, {self.size}) images, got "
                             f"{tuple(x.shape[1:])}")
        h = self.stem(x)
        return self.content(h), self.style(h)  # (B, ch, S', S'), (B, latent_dim)


class Decoder(nn.Module):
    """Content ``(B, ch, S', S')`` and style ``(B, latent_dim)`` -> image ``(B, C, S, S)``.

    The style goes through a mapping MLP (``n_mlp`` layers to ``style_dim``, learning rate x ``lr_mlp``) and
    modulates every convolution: ``n_res`` styled residual blocks, a styled 3x3 convolution, then per
    resolution an upsampling and a plain styled convolution, the image summed over ``ToRGB`` skips (the official
    ``Generator.decode``: StyleGAN2's synthesis network started from the content code instead of a constant).
    """

    def __init__(self, size: int, latent_dim: int = 8, num_down: int = 3, n_res: int = 1, n_mlp: int = 5,
                 style_dim: int = 512, lr_mlp: float = 0.01, channel_base: int = 16384, channel_max: int = 512,
                 image_channels: int = 3) -> None:
        super().__init__()
        log_size = _log2(size, "image_size")

        def ch(res: int) -> int:
            return channel_width(res, channel_base, channel_max)

        self.mapping = nn.Sequential(*[EqualLinear(latent_dim if i == 0 else style_dim, style_dim, lr_mul=lr_mlp,
                                                   activation=True) for i in range(n_mlp)])
        in_log = log_size - num_down
        c = ch(2 ** in_log)
        self.adain_bottleneck = nn.ModuleList([StyledResBlock(c, style_dim) for _ in range(n_res)])
        self.conv1 = StyledConv(c, c, 3, style_dim)
        self.to_rgb1 = ToRGB(c, style_dim, upsample=False, out_channel=image_channels)
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        for i in range(in_log + 1, log_size + 1):
            out = ch(2 ** i)
            self.convs.append(StyledConv(c, out, 3, style_dim, upsample=True))
            self.convs.append(StyledConv(out, out, 3, style_dim))
            self.to_rgbs.append(ToRGB(out, style_dim, out_channel=image_channels))
            c = out
        self.latent_dim = latent_dim

    def forward(self, content: torch.Tensor, style: torch.Tensor, use_mapping: bool = True) -> torch.Tensor:
        w = self.mapping(style) if use_mapping else style  # (B, style_dim)
        x = content
        for block in self.adain_bottleneck:
            x = block(x, w)
        x = self.conv1(x, w)
        image = self.to_rgb1(x, w)
        for up, conv, to_rgb in zip(self.convs[::2], self.convs[1::2], self.to_rgbs):
            x = conv(up(x, w), w)
            image = to_rgb(x, w, image)
        return image  # (B, C, S, S), unbounded (about [-1, 1] once trained)


class Generator(nn.Module):
    """One direction: the source domain's ``Encoder`` and the target domain's ``Decoder`` (the official
    ``Generator``; ``G_A2B.encode`` gives A's content and A's style, ``G_A2B.decode`` draws B).

    Args:
        size: image side (official: 256).
        latent_dim: style code size (8).
        num_down: downsamplings to the content code. The released selfie2anime checkpoint and notebooks use 4
            (16x16 content at 256 px); ``train.py``'s default is 3.
        n_res: residual blocks at the content's resolution, in the encoder and the decoder (1).
        n_mlp, style_dim, lr_mlp: the mapping network (5 layers of 512, learning rate x 0.01).
        channel_base, channel_max: widths ``min(max, base // resolution)`` (16384 and 512).
        image_channels: 3 (RGB), or 1 for grey images.
    """

    def __init__(self, size: int = 32, latent_dim: int = 8, num_down: int = 2, n_res: int = 1, n_mlp: int = 5,
                 style_dim: int = 64, lr_mlp: float = 0.01, channel_base: int = 512, channel_max: int = 32,
                 image_channels: int = 3) -> None:
        super().__init__()
        widths = dict(channel_base=channel_base, channel_max=channel_max, image_channels=image_channels)
        self.encoder = Encoder(size, latent_dim, num_down, n_res, **widths)
        self.decoder = Decoder(size, latent_dim, num_down, n_res, n_mlp, style_dim, lr_mlp, **widths)
        self.size, self.latent_dim, self.image_channels = size, latent_dim, image_channels

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(content, style)`` of source-domain images."""
        return self.encoder(x)

    def style_encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)[1]

    def decode(self, content: torch.Tensor, style: torch.Tensor, use_mapping: bool = True) -> torch.Tensor:
        """Target-domain images of ``content`` in ``style`` (a target-domain style code)."""
        return self.decoder(content, style, use_mapping)

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        """Translate ``x`` with target style codes ``style`` ``(B, latent_dim)`` (default: drawn from N(0, I))."""
        content, _ = self.encode(x)
        if style is None:
            style = torch.randn(x.shape[0], self.latent_dim, device=x.device, dtype=x.dtype)
        return self.decode(content, style)


class Discriminator(nn.Module):
    """Three scores per image (the official ``Discriminator``): patch logits ``(B, 1, local, local)``, coarser
    patch logits ``(B, 1, global, global)``, and one logit ``(B, 1)`` computed from the standard deviation over
    the batch of features: it judges the spread of a batch, which for the generator's batches (one content,
    many styles) is the diversity of the outputs.

    Args:
        size: image side.
        local_size, global_size: resolutions of the two patch branches (official: 32 and 8 at 256 px).
        std_dim: features whose batch deviation is scored (128).
        channel_base, channel_max, image_channels: as the generator's.
    """

    def __init__(self, size: int = 32, local_size: int = 8, global_size: int = 4, std_dim: int = 128,
                 channel_base: int = 512, channel_max: int = 32, image_channels: int = 3) -> None:
        super().__init__()
        log_size = _log2(size, "image_size")
        for name, res in (("local_size", local_size), ("global_size", global_size)):
            if _log2(res, name) > log_size:
                raise ValueError(f"{name} must be <= image_size {size}, got {res}")

        def ch(res: int) -> int:
            return channel_width(res, channel_base, channel_max)

        def branch(out_size: int) -> list[nn.Module]:
            layers: list[nn.Module] = [ConvLayer(image_channels, ch(size), 1)]
            for i in range(log_size, int(math.log2(out_size)), -1):
                layers.append(ResBlock(ch(2 ** i), ch(2 ** (i - 1))))
            return layers

        self.l_branch = nn.Sequential(*branch(local_size), ConvLayer(ch(local_size), 1, 1, activate=False))
        self.g_branch = nn.Sequential(*branch(global_size))
        self.g_adv = ConvLayer(ch(global_size), 1, 1, activate=False)
        half = max(global_size // 2, 1)
        self.g_std = nn.Sequential(ConvLayer(ch(global_size), ch(half), 3, downsample=global_size > 1), nn.Flatten(),
                                   EqualLinear(ch(half) * half * half, std_dim, activation=True))
        self.g_final = EqualLinear(std_dim, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # (B, C, S, S)
        local = self.l_branch(x)  # (B, 1, local, local)
        h = self.g_branch(x)
        features = self.g_std(h)  # (B, std_dim)
        std = torch.sqrt(features.var(0, keepdim=True, unbiased=False) + 1e-8).expand(x.shape[0], -1)
        return [local, self.g_adv(h), self.g_final(std)]


class FCMinibatchStd(nn.Module):
    """Appends the mean over features of the batch standard deviation as one more input of a linear layer."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.fc = EqualLinear(in_dim + 1, out_dim, activation=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, D)
        std = torch.sqrt(x.var(0, unbiased=False) + 1e-8).mean().view(1, 1).expand(x.shape[0], 1)
        return self.fc(torch.cat([x, std], 1))


class LatentDiscriminator(nn.Module):
    """Style code ``(B, latent_dim)`` -> ``[(B, 1)]`` logit: four 256-wide layers, a minibatch-deviation layer and
    a linear output (the official ``LatDiscriminator``). It tells codes drawn from N(0, I) from encoded ones, so
    the encoders learn to produce N(0, I) codes."""

    def __init__(self, latent_dim: int = 8, width: int = 256) -> None:
        super().__init__()
        layers: list[nn.Module] = [EqualLinear(latent_dim, width, activation=True)]
        layers += [EqualLinear(width, width, activation=True) for _ in range(3)]
        layers += [FCMinibatchStd(width, width), EqualLinear(width, 1)]
        self.fc = nn.Sequential(*layers)

    def forward(self, style: torch.Tensor) -> list[torch.Tensor]:
        return [self.fc(style)]
