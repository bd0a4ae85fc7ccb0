"""Gated convolutions (Yu et al., "Free-Form Image Inpainting with Gated Convolution", arXiv 1806.03589)
and the local response normalisation SC-FEGAN puts on their feature branch (Jo & Park, arXiv 1902.06838).

A gated convolution learns a soft, per-channel and per-pixel gate next to its features (1806.03589,
section 3.1, eq. 1)::

    Gating = conv_g(x);  Feature = conv_f(x);  y = phi(Feature) * sigmoid(Gating)

so that a layer can learn where the input is valid (outside a hole), where a user's sketch or
colour is, and let only that through. SC-FEGAN (section 3.2) adds local response normalisation
"after feature map convolution layers excluding other soft gates"; its released demo
(run-youngjoo/SC-FEGAN, ``ops.py``) applies it to ``conv_f(x)`` before the leaky ReLU, with
TensorFlow's ``tf.nn.lrn`` defaults (depth radius 5, alpha 1, beta 0.5) and bias 5e-5.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

__all__ = ["tf_local_response_norm", "GatedConv2d", "GatedConvTranspose2d"]

Activation = Literal["leaky_relu", "elu", "none"]


def tf_local_response_norm(depth_radius: int = 5, bias: float = 5e-5, alpha: float = 1.0,
                           beta: float = 0.5) -> nn.LocalResponseNorm:
    """``tf.nn.lrn`` as a torch module: ``x / (bias + alpha * sum_{|c'-c| <= r} x_c'^2) ** beta``.

    PyTorch's ``LocalResponseNorm(size, alpha, beta, k)`` divides the window sum by ``size``, so the
    TensorFlow layer is ``size = 2r + 1`` and ``alpha * size``. Defaults are SC-FEGAN's
    (``tf.nn.lrn(x, bias=0.00005)``, the other arguments TensorFlow's defaults).
    """
    size = 2 * depth_radius + 1
    return nn.LocalResponseNorm(size, alpha=alpha * size, beta=beta, k=bias)


def _activation(name: Activation, negative_slope: float) -> nn.Module:
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope)
    if name == "elu":
        return nn.ELU()
    if name == "none":
        return nn.Identity()
    raise ValueError(f"activation must be 'leaky_relu', 'elu' or 'none', got {name!r}")


class GatedConv2d(nn.Module):
    """``y = phi(LRN(conv_f(x))) * sigmoid(conv_g(x))`` with "same" padding (``ceil(H / stride)`` out).

    Two convolutions of the same shape (features and gate), as in SC-FEGAN's ``gate_conv``; DeepFill v2
    (JiahuiYu/generative_inpainting, ``gen_conv``) computes both with one convolution of twice the
    channels, which is the same function. ``phi`` is SC-FEGAN's leaky ReLU (slope 0.2, TensorFlow's
    default) or DeepFill v2's ELU; ``activation="none"`` keeps the gate but no ``phi`` (SC-FEGAN's
    output layer).

    Args:
        in_channels, out_channels, kernel_size, stride, dilation: as ``nn.Conv2d``.
        activation: ``phi``.
        lrn: local response normalisation of the features (``tf_local_response_norm``) before ``phi``.
        negative_slope: of the leaky ReLU.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                 activation: Activation = "leaky_relu", lrn: bool = False, negative_slope: float = 0.2) -> None:
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.feature = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation)
        self.gate = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation)
        self.norm = tf_local_response_norm() if lrn else nn.Identity()
        self.phi = _activation(activation, negative_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_out, H / s, W / s)
        return self.phi(self.norm(self.feature(x))) * torch.sigmoid(self.gate(x))


class GatedConvTranspose2d(nn.Module):
    """A gated transposed convolution that doubles (``stride`` times) the resolution exactly:
    ``y = phi(LRN(deconv_f(x))) * sigmoid(deconv_g(x))``.

    SC-FEGAN's decoder upsamples with 5x5, stride-2 gated transposed convolutions (paper section 3.2;
    ``gate_deconv`` of the released demo). The demo computes its gate as ``sigmoid`` of the already
    activated features, with the feature weights; we give the gate its own weights, the gated form
    of the paper (eq. 1 of 1806.03589), so the layer is a gated convolution like the others.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 2,
                 activation: Activation = "leaky_relu", lrn: bool = False, negative_slope: float = 0.2) -> None:
        super().__init__()
        padding = (kernel_size - 1) // 2
        output_padding = stride + 2 * padding - kernel_size  # out = in * stride
        if not 0 <= output_padding < stride:
            raise ValueError(f"kernel_size {kernel_size} and stride {stride} cannot upsample exactly x{stride}")
        args = (in_channels, out_channels, kernel_size, stride, padding, output_padding)
        self.feature = nn.ConvTranspose2d(*args)
        self.gate = nn.ConvTranspose2d(*args)
        self.norm = tf_local_response_norm() if lrn else nn.Identity()
        self.phi = _activation(activation, negative_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C_in, H, W) -> (B, C_out, s H, s W)
        return self.phi(self.norm(self.feature(x))) * torch.sigmoid(self.gate(x))

