"""A network as a small graph of layers: output shapes, receptive field, effective stride.

``Network.from_layers([...])`` is a plain stack; ``Network.from_module(module)`` traces any
``nn.Module`` with ``torch.fx`` (skip connections, ``torch.cat``, ``+``, ``F.interpolate`` to
another tensor's size), keeping the leaf layers that change the geometry and treating
activations and BatchNorm as pointwise; InstanceNorm, GroupNorm, LayerNorm, Linear and reshapes
mix all positions ("global").

Two receptive fields, per spatial dimension:

- ``fields``: the closed form for an interior pixel, layer by layer (Araujo, Norris, Sim,
  "Computing Receptive Fields of Convolutional Neural Networks", Distill 2019): size ``r``,
  effective stride (jump) ``j`` and the centre ``start`` of the first output pixel's field, with
  ``r += (k_eff - 1) j``, ``start += ((k_eff - 1)/2 - p_left) j``, ``j *= s`` for a convolution
  or pooling (``k_eff = d(k - 1) + 1``); a transposed convolution adds ``ceil(k_eff/s) - 1``
  input pixels and divides ``j`` by ``s``; branches that meet take the hull of their fields.
- ``input_region``: the exact input box that one output pixel depends on, found by carrying its
  index interval back through every layer (borders, padding modes, ceil mode, interpolation taps
  included). ``tests/tools`` checks it against the gradient of that pixel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from lit_digest.tools.shapes.layers import Layer, ShapeError, output_size, padding_pairs, per_dim

__all__ = ["Network", "Node", "Field"]


@dataclass
class Node:
    """One step: ``op`` is ``input``, ``layer``, ``pointwise``, ``cat`` (channels), ``global`` or ``shape``
    (a value without geometry: ``x.shape[2:]``, kept to size an interpolation, or a constant tensor)."""

    name: str
    op: str
    inputs: tuple[int, ...] = ()
    layer: Layer | None = None
    what: str = ""
    value: Callable | None = field(default=None, repr=False)  # ``shape`` nodes: values of inputs -> value


@dataclass(frozen=True)
class Field:
    """Receptive field of one node, per spatial dimension, in input pixels."""

    size: tuple[float, ...]
    jump: tuple[float, ...]
    start: tuple[float, ...]
    is_global: bool = False


class Network:
    """A DAG of ``Node``s; node 0 is the input."""

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = nodes

    @classmethod
    def from_layers(cls, layers: Sequence[Layer]) -> Network:
        nodes = [Node("input", "input")]
        for i, layer in enumerate(layers):
            nodes.append(Node(layer.name or f"{i}", "layer", (i,), layer, layer.describe()))
        return cls(nodes)

    @classmethod
    def from_module(cls, module) -> Network:
        from lit_digest.tools.shapes.trace import trace_module  # imports torch

        return cls(trace_module(module))

    # -- shapes -----------------------------------------------------------------------------
    def shapes(self, input_shape: Sequence[int]) -> list:
        """The output of every node: ``(C, *spatial)`` for tensors (``C`` may be None when unknown), the Python
        value for ``shape`` nodes. ``input_shape`` is ``(C, *spatial)`` without the batch."""
        out: list = []
        for node in self.nodes:
            try:
                out.append(self._shape(node, [out[i] for i in node.inputs], tuple(input_shape)))
            except ShapeError as err:
                raise ShapeError(f"node {node.name}: {err}") from None
        return out

    def _shape(self, node: Node, ins: list, input_shape: tuple) -> tuple | object:
        if node.op == "input":
            return input_shape
        if node.op == "shape":
            return node.value(*ins)
        tensors = [s for s, i in zip(ins, node.inputs) if self.nodes[i].op != "shape"]
        first = tensors[0]
        if node.op == "layer":
            layer = node.layer
            sizes = [s for s, i in zip(ins, node.inputs) if self.nodes[i].op == "shape"]
            if sizes:  # ``F.interpolate(x, size=y.shape[2:])``
                layer = node.layer = replace(layer, size=tuple(int(v) for v in sizes[0]))
            channels = layer.channels if layer.channels is not None else first[0]
            return (channels, *output_size(layer, first[1:]))
        if node.op == "global":
            return (None,)
        spatial = {tuple(s[1:]) for s in tensors}
        if len(spatial) > 1:
            raise ShapeError(f"inputs of different spatial sizes meet: {sorted(spatial)}")
        if node.op == "cat":
            channels = None if any(s[0] is None for s in tensors) else sum(s[0] for s in tensors)
            return (channels, *first[1:])
        return first

    # -- receptive fields -------------------------------------------------------------------
    def fields(self, input_shape: Sequence[int]) -> list[Field | None]:
        """Closed-form receptive field of every tensor node (None for ``shape`` nodes)."""
        shapes = self.shapes(input_shape)
        n = len(input_shape) - 1
        whole = tuple(float(v) for v in input_shape[1:])
        result: list[Field | None] = []
        for node, shape in zip(self.nodes, shapes):
            ins = [result[i] for i in node.inputs if self.nodes[i].op != "shape"]
            if node.op == "input":
                f = Field((1.0,) * n, (1.0,) * n, (0.0,) * n)
            elif node.op == "shape":
                f = None
            elif node.op == "global" or any(x.is_global for x in ins):
                f = Field(whole, ins[0].jump if ins else (1.0,) * n, tuple((v - 1) / 2 for v in whole), True)
            elif node.op == "layer":
                f = _layer_field(node.layer, ins[0], shapes[node.inputs[0]][1:], shape[1:])
            else:
                f = _hull(ins)
            result.append(f)
        return result

    def input_region(self, input_shape: Sequence[int], index: Sequence[int] | None = None,
                     node: int = -1) -> tuple[tuple[int, int], ...]:
        """The exact input box ``((lo, hi), ...)`` (inclusive) that output pixel ``index`` of ``node`` reads;
        ``index=None`` is the centre pixel (``size // 2``).

        Every layer here acts on each dimension apart, so the pixels one output reads are a product of one
        index set per dimension: the sets are carried back exactly (dilation leaves gaps, padding folds
        indices back or drops them) and the box is their range."""
        shapes = self.shapes(input_shape)
        target = node % len(self.nodes)
        size = shapes[target][1:]
        index = tuple(v // 2 for v in size) if index is None else tuple(index)
        if len(index) != len(size) or any(not 0 <= i < v for i, v in zip(index, size)):
            raise ShapeError(f"pixel {index} is outside the output {tuple(size)}")
        reads: dict[int, list[set[int]]] = {target: [{i} for i in index]}
        for k in range(target, 0, -1):
            if k not in reads:
                continue
            node_k, sets = self.nodes[k], reads.pop(k)
            for i in node_k.inputs:
                if self.nodes[i].op == "shape":
                    continue
                in_size = shapes[i][1:]
                if node_k.op == "global":
                    need = [set(range(v)) for v in in_size]
                elif node_k.op == "layer":
                    need = [_back(node_k.layer, d, wanted, in_size[d], shapes[k][1 + d], len(sets))
                            for d, wanted in enumerate(sets)]
                else:
                    need = [set(wanted) for wanted in sets]
                if not all(need):
                    continue  # this path reads padding only
                old = reads.get(i)
                reads[i] = need if old is None else [a | b for a, b in zip(old, need)]
        if 0 not in reads:
            raise ShapeError("the output does not depend on the input (it reads padding only)")
        return tuple((min(v), max(v)) for v in reads[0])


def _hull(fields: list[Field]) -> Field:
    if len(fields) == 1:
        return fields[0]
    lo = [min(f.start[d] - (f.size[d] - 1) / 2 for f in fields) for d in range(len(fields[0].size))]
    hi = [max(f.start[d] + (f.size[d] - 1) / 2 for f in fields) for d in range(len(fields[0].size))]
    jump = tuple(max(f.jump[d] for f in fields) for d in range(len(lo)))
    return Field(tuple(h - low + 1 for low, h in zip(lo, hi)), jump, tuple((low + h) / 2 for low, h in zip(lo, hi)))


def _taps(layer: Layer, d: int, n_in: int, n_out: int) -> tuple[int, float, float]:
    """(input pixels one output pixel reads, ratio of sizes in / out, centre of output 0's taps) of a resampling."""
    ratio = n_in / n_out
    if layer.kind == "adaptive_pool":
        width = max(math.ceil((o + 1) * n_in / n_out) - math.floor(o * n_in / n_out) for o in range(n_out))
        return width, ratio, (math.ceil(n_in / n_out) - 1) / 2
    if layer.mode in ("nearest", "nearest-exact"):
        return 1, ratio, 0.0 if layer.mode == "nearest" else float(math.floor(0.5 * ratio))
    return 4 if layer.mode == "bicubic" else 2, ratio, 0.0 if layer.align_corners else 0.5 * ratio - 0.5


def _layer_field(layer: Layer, f: Field, in_size: Sequence[int], out_size: Sequence[int]) -> Field:
    n = len(in_size)
    size, jump, start = list(f.size), list(f.jump), list(f.start)
    if layer.kind in ("upsample", "adaptive_pool"):
        for d in range(n):
            taps, ratio, centre = _taps(layer, d, in_size[d], out_size[d])
            size[d] += (taps - 1) * jump[d]
            start[d] += centre * jump[d]
            jump[d] *= ratio
        return Field(tuple(size), tuple(jump), tuple(start))
    kernel = per_dim(layer.kernel, n)
    stride = per_dim(layer.stride_or_default(), n)
    dilation = per_dim(layer.dilation, n)
    pads = padding_pairs(layer, n)
    for d in range(n):
        span = dilation[d] * (kernel[d] - 1) + 1
        if layer.kind == "conv_transpose":
            size[d] += (math.ceil(span / stride[d]) - 1) * jump[d]
            start[d] += (pads[d][0] - (span - 1) / 2) / stride[d] * jump[d]
            jump[d] /= stride[d]
        else:
            size[d] += (span - 1) * jump[d]
            start[d] += ((span - 1) / 2 - pads[d][0]) * jump[d]
            jump[d] *= stride[d]
    return Field(tuple(size), tuple(jump), tuple(start))


def _fold(i: int, n: int, mode: str) -> int | None:
    """The input pixel behind padded position ``i`` of an input of ``n`` (None: a zero)."""
    if 0 <= i < n:
        return i
    if mode == "reflect":
        return -i if i < 0 else 2 * (n - 1) - i
    if mode == "replicate":
        return min(max(i, 0), n - 1)
    if mode == "circular":
        return i % n
    return None


def _back(layer: Layer, d: int, wanted: set[int], n_in: int, n_out: int, n_dims: int) -> set[int]:
    """Input pixels (along dimension ``d``) that the output pixels ``wanted`` of ``layer`` read."""
    kind, found = layer.kind, set()
    if kind == "adaptive_pool":
        for o in wanted:
            found.update(range(math.floor(o * n_in / n_out), math.ceil((o + 1) * n_in / n_out)))
        return found
    if kind == "upsample":
        for o in wanted:
            found.update(_interp_taps(layer, d, o, n_in, n_out))
        return found
    k, s, dil = _at(layer.kernel, d), _at(layer.stride_or_default(), d), _at(layer.dilation, d)
    left = padding_pairs(layer, n_dims)[d][0]
    for o in wanted:
        for t in range(k):
            if kind == "conv_transpose":  # output o reads input i when o = i s - p + t d
                i, rest = divmod(o + left - t * dil, s)
                if rest == 0 and 0 <= i < n_in:
                    found.add(i)
            else:
                i = _fold(o * s - left + t * dil, n_in, layer.padding_mode if kind == "conv" else "zeros")
                if i is not None:
                    found.add(i)
    return found


def _at(values: tuple, d: int):
    return values[d] if len(values) > 1 else values[0]


def _interp_taps(layer: Layer, d: int, o: int, n_in: int, n_out: int) -> set[int]:
    """Input pixels with a non-zero weight in output pixel ``o`` (PyTorch's interpolation kernels)."""
    scale = 1.0 / _at(layer.scale, d) if layer.scale is not None else n_in / n_out
    if layer.mode in ("nearest", "nearest-exact"):
        return {min(math.floor((o + (0.5 if layer.mode == "nearest-exact" else 0.0)) * scale), n_in - 1)}
    if layer.align_corners:
        src = o * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    else:
        src = (o + 0.5) * scale - 0.5
    if layer.mode == "bicubic":
        i0 = math.floor(src)
        taps = (i0,) if src == i0 else (i0 - 1, i0, i0 + 1, i0 + 2)
        return {min(max(i, 0), n_in - 1) for i in taps}
    src = max(src, 0.0)
    i0 = min(math.floor(src), n_in - 1)
    return {i0, min(i0 + 1, n_in - 1)} if src > i0 else {i0}
