"""One layer of a conv / pooling / upsampling stack as a spec, and its output size.

The size formulas are PyTorch's (``torch.nn`` docs of ``Conv2d``, ``ConvTranspose2d``,
``MaxPool2d``, ``AvgPool2d``, ``Upsample``), with the same validity rules, so that a spec is
accepted exactly when the torch layer runs (``tests/tools`` runs both on the ``meta`` device):

- convolution: ``out = floor((L + 2p - d(k-1) - 1) / s) + 1``; ``padding="same"`` keeps ``L``
  (stride 1 only; the extra pixel of an even kernel goes right), ``"valid"`` is ``p = 0``; a
  ``padding_mode`` other than ``zeros`` pads by reflection/replication/wrapping and needs
  ``p < L`` (reflect) or ``p <= L`` (circular);
- transposed convolution: ``out = (L - 1)s - 2p + d(k-1) + output_padding + 1`` with
  ``output_padding < max(s, d)``;
- pooling: as convolution, with ``ceil_mode`` rounding up unless the last window would start in
  the right padding; ``p <= k/2``; average pooling has no dilation;
- adaptive pooling: ``out`` is given; upsampling: ``floor(L * scale)`` or a given size.

A spec is written ``kind:key=value,...`` on the command line (``parse_layer``), e.g.
``conv:k=3,s=2,p=1,c=64``, ``convT:k=4,s=2,p=1``, ``maxpool:k=3,s=2,p=1,ceil=1``,
``up:scale=2,mode=bilinear``; ``k=3x5`` gives one value per spatial dimension.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Layer", "ShapeError", "parse_layer", "output_size", "padding_pairs", "per_dim", "KINDS"]

Kind = Literal["conv", "conv_transpose", "max_pool", "avg_pool", "adaptive_pool", "upsample"]
KINDS: tuple[str, ...] = ("conv", "conv_transpose", "max_pool", "avg_pool", "adaptive_pool", "upsample")
_ALIASES = {"conv": "conv", "convt": "conv_transpose", "conv_transpose": "conv_transpose", "deconv": "conv_transpose",
            "maxpool": "max_pool", "max_pool": "max_pool", "avgpool": "avg_pool", "avg_pool": "avg_pool",
            "adaptive": "adaptive_pool", "adaptive_pool": "adaptive_pool", "up": "upsample", "upsample": "upsample"}
_INTERPOLATION = ("nearest", "nearest-exact", "linear", "bilinear", "trilinear", "bicubic")


class ShapeError(ValueError):
    """A layer that PyTorch would refuse for this input size (the message says why)."""


@dataclass(frozen=True)
class Layer:
    """One layer; a single number broadcasts over the spatial dimensions.

    Args:
        kind: ``conv``, ``conv_transpose``, ``max_pool``, ``avg_pool``, ``adaptive_pool`` or ``upsample``.
        kernel, stride, dilation: per dimension; ``stride=None`` is 1 for convolutions and the
            kernel for pooling (PyTorch's defaults).
        padding: per dimension, or ``"same"`` / ``"valid"`` (convolution).
        output_padding: transposed convolution only.
        ceil_mode: pooling.
        padding_mode: ``zeros``, ``reflect``, ``replicate`` or ``circular`` (convolution).
        scale, size, mode, align_corners: upsampling (``scale`` or ``size``); ``size`` is also the
            output of adaptive pooling.
        channels: output channels (``None`` keeps the input's); only for the table.
        name: shown in the table.
    """

    kind: Kind
    kernel: tuple[int, ...] = (1,)
    stride: tuple[int, ...] | None = None
    padding: tuple[int, ...] | str = (0,)
    dilation: tuple[int, ...] = (1,)
    output_padding: tuple[int, ...] = (0,)
    ceil_mode: bool = False
    padding_mode: str = "zeros"
    scale: tuple[float, ...] | None = None
    size: tuple[int, ...] | None = None
    mode: str = "nearest"
    align_corners: bool = False
    channels: int | None = None
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ShapeError(f"unknown layer kind {self.kind!r}: use one of {', '.join(KINDS)}")
        for attr in ("kernel", "stride", "dilation", "output_padding", "scale", "size"):
            value = getattr(self, attr)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, attr, tuple(value) if isinstance(value, Sequence) else (value,))
        if not isinstance(self.padding, (str, tuple)):
            object.__setattr__(self, "padding", tuple(self.padding) if isinstance(self.padding, Sequence)
                               else (self.padding,))
        if isinstance(self.padding, str) and self.padding not in ("same", "valid"):
            raise ShapeError(f"padding must be integers, 'same' or 'valid', got {self.padding!r}")
        if self.padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ShapeError(f"padding_mode must be zeros, reflect, replicate or circular, got {self.padding_mode!r}")
        if self.kind == "upsample":
            if (self.scale is None) == (self.size is None):
                raise ShapeError("an upsampling layer needs exactly one of scale and size")
            if self.mode not in _INTERPOLATION:
                raise ShapeError(f"upsampling mode must be one of {', '.join(_INTERPOLATION)}, got {self.mode!r}")
        if self.kind == "adaptive_pool" and self.size is None:
            raise ShapeError("an adaptive pooling layer needs its output size")
        for attr in ("kernel", "dilation"):
            if any(v < 1 for v in getattr(self, attr)):
                raise ShapeError(f"{self.kind}: {attr} must be >= 1, got {getattr(self, attr)}")
        if self.stride is not None and any(v < 1 for v in self.stride):
            raise ShapeError(f"{self.kind}: stride must be >= 1, got {self.stride}")

    def describe(self) -> str:
        """A short text of the layer for the table."""
        if self.kind == "upsample":
            what = f"scale={_fmt(self.scale)}" if self.scale is not None else f"size={_fmt(self.size)}"
            return f"upsample {what} {self.mode}"
        if self.kind == "adaptive_pool":
            return f"adaptive_pool size={_fmt(self.size)}"
        parts = [f"k={_fmt(self.kernel)}", f"s={_fmt(self.stride_or_default())}"]
        parts.append(f"p={self.padding if isinstance(self.padding, str) else _fmt(self.padding)}")
        if any(d != 1 for d in self.dilation):
            parts.append(f"d={_fmt(self.dilation)}")
        if any(o != 0 for o in self.output_padding):
            parts.append(f"op={_fmt(self.output_padding)}")
        if self.ceil_mode:
            parts.append("ceil")
        if self.padding_mode != "zeros":
            parts.append(self.padding_mode)
        return f"{self.kind} " + ",".join(parts)

    def stride_or_default(self) -> tuple[int, ...]:
        if self.stride is not None:
            return self.stride
        return self.kernel if self.kind in ("max_pool", "avg_pool") else (1,)


def _fmt(values: Sequence | None) -> str:
    if values is None:
        return "-"
    values = list(values)
    if all(v == values[0] for v in values):
        values = values[:1]
    return "x".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def per_dim(values: Sequence, n: int, what: str = "value") -> tuple:
    """``values`` broadcast to ``n`` spatial dimensions (one value, or exactly ``n``)."""
    values = tuple(values)
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise ShapeError(f"{what} has {len(values)} values for {n} spatial dimensions")
    return values


def padding_pairs(layer: Layer, n: int) -> tuple[tuple[int, int], ...]:
    """(left, right) padding per dimension; ``"same"`` puts the odd pixel on the right (as PyTorch)."""
    if layer.padding == "valid":
        return ((0, 0),) * n
    if layer.padding == "same":
        pairs = []
        for k, d in zip(per_dim(layer.kernel, n, "kernel"), per_dim(layer.dilation, n, "dilation")):
            total = d * (k - 1)
            pairs.append((total // 2, total - total // 2))
        return tuple(pairs)
    return tuple((p, p) for p in per_dim(layer.padding, n, "padding"))


def _conv_size(layer: Layer, n_in: int, k: int, s: int, d: int, left: int, right: int) -> int:
    span = d * (k - 1) + 1
    if layer.padding_mode == "reflect" and max(left, right) >= n_in:
        raise ShapeError(f"{layer.describe()}: reflect padding {max(left, right)} needs an input larger than "
                         f"the padding, got {n_in}")
    if layer.padding_mode == "circular" and max(left, right) > n_in:
        raise ShapeError(f"{layer.describe()}: circular padding {max(left, right)} wraps around an input of {n_in}")
    if n_in + left + right < span:
        raise ShapeError(f"{layer.describe()}: the (dilated) kernel {span} is larger than the padded input "
                         f"{n_in} + {left + right}")
    return (n_in + left + right - span) // s + 1


def _pool_size(layer: Layer, n_in: int, k: int, s: int, d: int, p: int) -> int:
    if p > k // 2:
        raise ShapeError(f"{layer.describe()}: padding {p} must be at most half the kernel {k}")
    span = d * (k - 1) + 1
    numerator = n_in + 2 * p - span
    out = (numerator + (s - 1 if layer.ceil_mode else 0)) // s + 1
    if layer.ceil_mode and (out - 1) * s >= n_in + p:
        out -= 1  # the last window may not start in the right padding
    if out < 1:
        raise ShapeError(f"{layer.describe()}: output size {out} is too small for an input of {n_in}")
    return out


def output_size(layer: Layer, size: Sequence[int]) -> tuple[int, ...]:
    """The spatial output size of ``layer`` for a spatial input ``size``; ``ShapeError`` where PyTorch refuses."""
    n = len(size)
    if any(v < 1 for v in size):
        raise ShapeError(f"{layer.describe()}: empty input {tuple(size)}")
    if layer.kind == "upsample":
        if layer.size is not None:
            return tuple(int(v) for v in per_dim(layer.size, n, "size"))
        out = tuple(int(math.floor(v * f)) for v, f in zip(size, per_dim(layer.scale, n, "scale")))
        if any(v < 1 for v in out):
            raise ShapeError(f"{layer.describe()}: output {out} is empty")
        return out
    if layer.kind == "adaptive_pool":
        return tuple(int(v) for v in per_dim(layer.size, n, "size"))
    kernel = per_dim(layer.kernel, n, "kernel")
    stride = per_dim(layer.stride_or_default(), n, "stride")
    dilation = per_dim(layer.dilation, n, "dilation")
    if layer.kind == "conv":
        if layer.padding == "same" and any(s != 1 for s in stride):
            raise ShapeError(f"{layer.describe()}: padding='same' needs stride 1 (PyTorch)")
        return tuple(_conv_size(layer, v, k, s, d, left, right) for v, k, s, d, (left, right)
                     in zip(size, kernel, stride, dilation, padding_pairs(layer, n)))
    if isinstance(layer.padding, str):
        raise ShapeError(f"{layer.describe()}: padding {layer.padding!r} is for convolutions only")
    padding = per_dim(layer.padding, n, "padding")
    if layer.kind == "conv_transpose":
        if layer.padding_mode != "zeros":
            raise ShapeError(f"{layer.describe()}: transposed convolutions pad with zeros only")
        out = []
        for v, k, s, d, p, op in zip(size, kernel, stride, dilation, padding,
                                     per_dim(layer.output_padding, n, "output_padding")):
            if op >= max(s, d):
                raise ShapeError(f"{layer.describe()}: output_padding {op} must be smaller than stride or dilation")
            o = (v - 1) * s - 2 * p + d * (k - 1) + op + 1
            if o < 1:
                raise ShapeError(f"{layer.describe()}: output size {o} is too small for an input of {v}")
            out.append(o)
        return tuple(out)
    if layer.kind == "avg_pool" and any(d != 1 for d in dilation):
        raise ShapeError(f"{layer.describe()}: average pooling has no dilation")
    if layer.kind == "avg_pool" and n == 3 and any(v < k for v, k in zip(size, kernel)):
        raise ShapeError(f"{layer.describe()}: 3-d average pooling needs an input {tuple(size)} at least as large "
                         f"as its kernel (PyTorch's check)")
    return tuple(_pool_size(layer, v, k, s, d, p) for v, k, s, d, p in zip(size, kernel, stride, dilation, padding))


_KEYS = {"k": "kernel", "kernel": "kernel", "s": "stride", "stride": "stride", "p": "padding", "padding": "padding",
         "d": "dilation", "dilation": "dilation", "op": "output_padding", "output_padding": "output_padding",
         "ceil": "ceil_mode", "ceil_mode": "ceil_mode", "pad": "padding_mode", "padding_mode": "padding_mode",
         "scale": "scale", "size": "size", "out": "size", "mode": "mode", "align": "align_corners",
         "align_corners": "align_corners", "c": "channels", "channels": "channels", "name": "name"}


def parse_layer(text: str) -> Layer:
    """``kind:key=value,...`` -> ``Layer`` (see the module docstring); keys: k s p d op ceil pad scale size mode
    align c name."""
    kind, _, rest = text.partition(":")
    key = kind.strip().lower()
    if key not in _ALIASES:
        raise ShapeError(f"unknown layer {kind!r} in {text!r}: use conv, convT, maxpool, avgpool, adaptive or up")
    options: dict = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        name, eq, value = item.partition("=")
        if not eq or name.strip() not in _KEYS:
            raise ShapeError(f"cannot read {item!r} in {text!r}: write key=value with keys {sorted(set(_KEYS))}")
        attr, value = _KEYS[name.strip()], value.strip()
        if attr in ("mode", "padding_mode", "name"):
            options[attr] = value
        elif attr in ("ceil_mode", "align_corners"):
            options[attr] = value.lower() in ("1", "true", "yes")
        elif attr == "channels":
            options[attr] = int(value)
        elif attr == "padding" and value in ("same", "valid"):
            options[attr] = value
        elif attr == "scale":
            options[attr] = tuple(float(v) for v in value.split("x"))
        else:
            options[attr] = tuple(int(v) for v in value.split("x"))
    return Layer(_ALIASES[key], **options)
