"""StyleGAN2's layers in plain PyTorch: no custom CUDA ops, so they run on a CPU and on any GPU.

GANs N' Roses builds its networks from rosinality/stylegan2-pytorch's layers (Karras et al., "Analyzing and
Improving the Image Quality of StyleGAN", arXiv 1912.04958), as copied into the official code
(mchong6/GANsNRoses ``model.py``). The official ``op/`` folder holds the compiled ``upfirdn2d`` and
``fused_leaky_relu`` kernels; here ``upfirdn2d`` is a depthwise convolution and the fused activation a bias
plus ``leaky_relu * sqrt(2)``, which compute the same functions.

Names and parameter shapes follow the official modules so that its checkpoints map onto ours by name
(``lit_digest.gan.ganroses.official``): only ``ConvLayer`` names its parts (``blur``, ``conv``, ``activate``)
where the official one is an ``nn.Sequential``, and the blur kernels are constants, not saved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["BLUR_KERNEL", "make_kernel", "upfirdn2d", "Blur", "Upsample", "EqualConv2d", "EqualLinear",
           "FusedLeakyReLU", "ScaledLeakyReLU", "ConvLayer", "ResBlock", "ModulatedConv2d", "StyledConv",
           "StyledResBlock", "ToRGB"]

BLUR_KERNEL = (1, 3, 3, 1)  # StyleGAN2's binomial low-pass filter


def make_kernel(k: Sequence[float]) -> torch.Tensor:
    """The separable 2-d filter ``k k^T``, normalised to sum 1: ``(len(k), len(k))``."""
    k = torch.tensor(k, dtype=torch.float32)
    k = k[None, :] * k[:, None] if k.ndim == 1 else k
    return k / k.sum()


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)
              ) -> torch.Tensor:
    """Upsample by zero insertion, pad (negative: crop), filter with ``kernel``, keep every ``down``-th pixel:
    ``(B, C, H, W) -> (B, C, (H * up + pad0 + pad1 - k) // down + 1, ...)``. The native reference of the official
    ``op/upfirdn2d.py`` as one depthwise convolution (the kernel flipped, as there: a true convolution)."""
    b, c, h, w = x.shape
    if up > 1:
        spread = x.new_zeros(b, c, h * up, w * up)
        spread[..., ::up, ::up] = x
        x = spread
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    weight = torch.flip(kernel, [0, 1]).to(x.dtype)[None, None].expand(c, 1, *kernel.shape)  # (C, 1, k, k)
    return F.conv2d(x, weight, stride=down, groups=c)


class Blur(nn.Module):
    """Low-pass ``kernel`` with padding ``pad`` (times ``upsample_factor^2`` after a zero-insertion upsampling)."""

    def __init__(self, kernel: Sequence[float], pad: tuple[int, int], upsample_factor: int = 1) -> None:
        super().__init__()
        self.register_buffer("kernel", make_kernel(kernel) * upsample_factor ** 2, persistent=False)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """2x upsampling with the low-pass filter (the skip path of StyleGAN2's output branch)."""

    def __init__(self, kernel: Sequence[float] = BLUR_KERNEL, factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel) * factor ** 2, persistent=False)
        p = len(kernel) - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class EqualConv2d(nn.Module):
    """A convolution with the equalised learning rate (Karras et al., arXiv 1710.10196, section 4.1): weights
    drawn from N(0, 1) and scaled by ``1 / sqrt(fan_in)`` at every call."""

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channel, in_channel, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_channel * kernel_size ** 2)
        self.stride, self.padding = stride, padding
        self.bias = nn.Parameter(torch.zeros(out_channel)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class EqualLinear(nn.Module):
    """A linear layer with the equalised learning rate and a learning-rate multiplier ``lr_mul`` (StyleGAN's
    mapping network learns 100x slower: ``lr_mlp = 0.01`` in the official ``train.py``); ``activation``: the
    fused leaky ReLU after the bias."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activation: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init))) if bias else None
        self.scale, self.lr_mul, self.activation = lr_mul / math.sqrt(in_dim), lr_mul, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias * self.lr_mul if self.bias is not None else None
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias)


def fused_leaky_relu(x: torch.Tensor, bias: torch.Tensor | None, negative_slope: float = 0.2,
                     scale: float = math.sqrt(2)) -> torch.Tensor:
    """``leaky_relu(x + bias) * sqrt(2)``, the bias on dimension 1 (the official ``op/fused_act.py``)."""
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x, negative_slope) * scale


class FusedLeakyReLU(nn.Module):
    """``leaky_relu(x + bias, 0.2) * sqrt(2)`` with a learned bias per channel."""

    def __init__(self, channel: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias)


class ScaledLeakyReLU(nn.Module):
    """``leaky_relu(x, 0.2) * sqrt(2)`` without a bias."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, 0.2) * math.sqrt(2)


class ConvLayer(nn.Module):
    """[blur] -> equalised conv (stride 2 when ``downsample``) -> [fused leaky ReLU]: the official ``ConvLayer``.
    With ``activate`` the bias lives in the activation, else in the convolution (when ``bias``)."""

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, downsample: bool = False,
                 bias: bool = True, activate: bool = True, blur_kernel: Sequence[float] = BLUR_KERNEL) -> None:
        super().__init__()
        self.blur = None
        if downsample:
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2, p // 2))
        self.conv = EqualConv2d(in_channel, out_channel, kernel_size, stride=2 if downsample else 1,
                                padding=0 if downsample else kernel_size // 2, bias=bias and not activate)
        self.activate = (FusedLeakyReLU(out_channel) if bias else ScaledLeakyReLU()) if activate else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.blur is not None:
            x = self.blur(x)
        x = self.conv(x)
        return self.activate(x) if self.activate is not None else x


class ResBlock(nn.Module):
    """Two convolutions (the second halving the resolution when ``downsample``) plus a 1x1 skip, summed and
    divided by sqrt(2)."""

    def __init__(self, in_channel: int, out_channel: int, downsample: bool = True) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channel, in_channel, 3)
        self.conv2 = ConvLayer(in_channel, out_channel, 3, downsample=downsample)
        self.skip = (ConvLayer(in_channel, out_channel, 1, downsample=downsample, activate=False, bias=False)
                     if downsample or in_channel != out_channel else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.skip is None else self.skip(x)
        return (self.conv2(self.conv1(x)) + skip) / math.sqrt(2)


class ModulatedConv2d(nn.Module):
    """StyleGAN2's weight-modulated convolution (arXiv 1912.04958, section 2.2, eq. 1-3)::

        s = A(w)                                      per-sample input scales, (B, C_in); A is affine, bias 1
        W'_{b,o,i,k} = s_{b,i} W_{o,i,k} / sqrt(fan_in)                        modulate
        W''_{b,o,i,k} = W'_{b,o,i,k} / sqrt(sum_{i,k} W'_{b,o,i,k}^2 + 1e-8)   demodulate
        y_b = W''_b * x_b                                                       one convolution per sample

    computed here without per-sample weights: scale the input by ``s``, convolve with the shared ``W``, scale
    the output by the demodulation factors (the same sums; StyleGAN2-ADA's non-fused path). ``upsample``: a
    stride-2 transposed convolution then the blur (the official layer's order).
    """

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, style_dim: int, demodulate: bool = True,
                 upsample: bool = False, blur_kernel: Sequence[float] = BLUR_KERNEL) -> None:
        super().__init__()
        self.in_channel, self.out_channel, self.kernel_size = in_channel, out_channel, kernel_size
        self.upsample, self.demodulate = upsample, demodulate
        self.blur = None
        if upsample:
            p = (len(blur_kernel) - 2) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + 1, p // 2 + 1), upsample_factor=2)
        self.scale = 1 / math.sqrt(in_channel * kernel_size ** 2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W), (B, style_dim)
        s = self.modulation(style)  # (B, C_in)
        weight = self.weight[0] * self.scale  # (C_out, C_in, k, k)
        x = x * s[:, :, None, None]
        if self.upsample:
            x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
            x = self.blur(x)
        else:
            x = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:  # sum_{i,k} (s_i W_oik)^2 = (s^2) @ (sum_k W_oik^2)^T
            demod = torch.rsqrt(s.pow(2) @ weight.pow(2).sum((2, 3)).t() + 1e-8)  # (B, C_out)
            x = x * demod[:, :, None, None]
        return x


class StyledConv(nn.Module):
    """Modulated convolution + fused leaky ReLU (the official ``StyledConv``: StyleGAN2's noise inputs removed)."""

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, style_dim: int, upsample: bool = False,
                 demodulate: bool = True) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, out_channel, kernel_size, style_dim, demodulate=demodulate,
                                    upsample=upsample)
        self.activate = FusedLeakyReLU(out_channel)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.activate(self.conv(x, style))


class StyledResBlock(nn.Module):
    """Two styled 3x3 convolutions with a residual connection, divided by sqrt(2): the decoder's bottleneck."""

    def __init__(self, channel: int, style_dim: int) -> None:
        super().__init__()
        self.conv1 = StyledConv(channel, channel, 3, style_dim)
        self.conv2 = StyledConv(channel, channel, 3, style_dim)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x, style), style) + x) / math.sqrt(2)


class ToRGB(nn.Module):
    """A modulated 1x1 convolution to image channels without demodulation, plus a bias, added to the upsampled
    skip image of the previous resolution (StyleGAN2's output skips, arXiv 1912.04958 figure 7)."""

    def __init__(self, in_channel: int, style_dim: int, upsample: bool = True, out_channel: int = 3) -> None:
        super().__init__()
        self.upsample = Upsample() if upsample else None
        self.conv = ModulatedConv2d(in_channel, out_channel, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, out_channel, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out
