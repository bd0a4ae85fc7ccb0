"""An ``nn.Module`` as ``Node``s of ``lit_digest.tools.shapes.graph``, traced with ``torch.fx``.

Leaf layers map to specs (convolutions, transposed convolutions, max / average / adaptive
pooling, ``nn.Upsample``); activations, dropout and BatchNorm (per-pixel at inference) are
pointwise; normalisations over space (InstanceNorm, GroupNorm, LayerNorm), ``Linear`` and
reshapes are global. Functions: ``torch.cat`` along channels, arithmetic, activations,
``F.interpolate`` (a scale, or a size read from another tensor's ``.shape``) and functional
pooling; parameters and buffers used as values (a mean, a scale) are constants. Anything else
stops with the operation's name: describe such a network with layer specs.
"""

from __future__ import annotations

import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

from lit_digest.tools.shapes.graph import Node
from lit_digest.tools.shapes.layers import Layer, ShapeError

__all__ = ["trace_module", "layer_of_module"]

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_MAX = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
_AVG = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
_ADAPTIVE = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
             nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
_POINTWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
                      nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Identity,
                      nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.BatchNorm1d, nn.BatchNorm2d,
                      nn.BatchNorm3d, nn.SyncBatchNorm)
_GLOBAL_MODULES = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.GroupNorm, nn.LayerNorm, nn.Linear,
                   nn.Flatten, nn.Softmax)
_POINTWISE_FUNCTIONS = {operator.add, operator.sub, operator.mul, operator.truediv, operator.neg, operator.pow,
                        torch.add, torch.sub, torch.mul, torch.div, torch.relu, torch.tanh, torch.sigmoid, torch.clamp,
                        torch.abs, torch.exp, F.relu, F.leaky_relu, F.gelu, F.silu, F.elu, F.softplus, F.dropout,
                        torch.sigmoid, F.hardtanh}
_POINTWISE_METHODS = {"relu", "relu_", "sigmoid", "tanh", "clamp", "clamp_min", "clamp_max", "add", "sub", "mul",
                      "div", "abs", "exp", "neg", "pow", "contiguous", "float", "double", "half", "to", "clone",
                      "detach", "type_as", "softmax"}
_GLOBAL_METHODS = {"view", "reshape", "flatten", "mean", "sum", "amax", "max", "min", "permute", "transpose"}
_SHAPE_METHODS = {"size", "dim"}


def _tuple(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def layer_of_module(module: nn.Module, name: str = "") -> Layer | None:
    """The spec of a geometry-changing leaf module, or None for others."""
    if isinstance(module, _CONVS + _TRANSPOSED):
        transposed = isinstance(module, _TRANSPOSED)
        padding = module.padding if isinstance(module.padding, str) else _tuple(module.padding)
        return Layer("conv_transpose" if transposed else "conv", _tuple(module.kernel_size), _tuple(module.stride),
                     padding, _tuple(module.dilation), _tuple(module.output_padding) if transposed else (0,),
                     padding_mode=module.padding_mode, channels=module.out_channels, name=name)
    if isinstance(module, _MAX):
        stride = module.stride if module.stride is not None else module.kernel_size
        return Layer("max_pool", _tuple(module.kernel_size), _tuple(stride), _tuple(module.padding),
                     _tuple(module.dilation), ceil_mode=module.ceil_mode, name=name)
    if isinstance(module, _AVG):
        stride = module.stride if module.stride is not None else module.kernel_size
        return Layer("avg_pool", _tuple(module.kernel_size), _tuple(stride), _tuple(module.padding),
                     ceil_mode=module.ceil_mode, name=name)
    if isinstance(module, _ADAPTIVE):
        if any(v is None for v in _tuple(module.output_size)):
            raise ShapeError(f"{name}: adaptive pooling that keeps a dimension (None) is not supported")
        return Layer("adaptive_pool", size=_tuple(module.output_size), name=name)
    if isinstance(module, nn.Upsample):
        if module.size is not None:
            return Layer("upsample", size=_tuple(module.size), mode=module.mode,
                         align_corners=bool(module.align_corners), name=name)
        return Layer("upsample", scale=tuple(float(v) for v in _tuple(module.scale_factor)), mode=module.mode,
                     align_corners=bool(module.align_corners), name=name)
    return None


def _arg(node: fx.Node, position: int, keyword: str, default=None):
    if len(node.args) > position:
        return node.args[position]
    return node.kwargs.get(keyword, default)


def trace_module(module: nn.Module) -> list[Node]:
    """``module`` traced into ``Node``s (node 0 the input; one tensor input only)."""
    if type(module).__module__.startswith("torch.nn"):
        module = nn.Sequential(module)  # a torch layer alone: fx would trace into its functional call
    try:
        graph = fx.symbolic_trace(module).graph
    except Exception as err:  # data-dependent control flow and the like
        raise ShapeError(f"torch.fx cannot trace {type(module).__name__} ({type(err).__name__}: {err}); "
                         "describe it with layer specs instead") from err
    modules = dict(module.named_modules())
    nodes: list[Node] = []
    index: dict[str, int] = {}

    def add(fx_node: fx.Node, node: Node) -> None:
        index[fx_node.name] = len(nodes)
        nodes.append(node)

    def refs(*values) -> tuple[int, ...]:
        found: list[int] = []
        for value in values:
            if isinstance(value, fx.Node):
                if value.name not in index:
                    raise ShapeError(f"{value.name} ({value.op} {value.target}) is not supported")
                found.append(index[value.name])
            elif isinstance(value, (tuple, list)):
                found.extend(refs(*value))
            elif isinstance(value, dict):
                found.extend(refs(*value.values()))
        return tuple(found)

    for n in graph.nodes:
        if n.op == "placeholder":
            if nodes:
                raise ShapeError(f"{type(module).__name__} takes several inputs; the calculator follows one")
            add(n, Node("input", "input"))
        elif n.op == "output":
            out = refs(n.args[0])
            if len(out) != 1:
                raise ShapeError(f"{type(module).__name__} returns {len(out)} tensors; the calculator follows one")
            if out[0] != len(nodes) - 1:
                nodes.append(Node("output", "pointwise", out, what="output"))
        elif n.op == "call_module":
            sub = modules[n.target]
            layer = layer_of_module(sub, n.target)
            if layer is not None:
                add(n, Node(n.target, "layer", refs(n.args[0]), layer, f"{type(sub).__name__} {layer.describe()}"))
            elif isinstance(sub, _POINTWISE_MODULES):
                add(n, Node(n.target, "pointwise", refs(n.args[0]), what=type(sub).__name__))
            elif isinstance(sub, _GLOBAL_MODULES):
                add(n, Node(n.target, "global", refs(n.args[0]), what=type(sub).__name__))
            else:
                raise ShapeError(f"{n.target}: {type(sub).__name__} is not a layer the calculator knows")
        elif n.op == "get_attr":  # a parameter or buffer used as a value (a mean, a scale): no geometry
            add(n, Node(n.target, "shape", (), what="constant", value=lambda: None))
        else:
            _add_function(n, add, refs, nodes)
    return nodes


def _add_function(n: fx.Node, add, refs, nodes: list[Node]) -> None:
    target = n.target
    name = target if isinstance(target, str) else getattr(target, "__name__", str(target))
    if n.op == "call_method" and target in _SHAPE_METHODS or target in (getattr, operator.getitem):
        source = nodes[refs(n.args[0])[0]]
        if target is getattr and n.args[1] != "shape" or target is operator.getitem and source.op != "shape":
            raise ShapeError(f"{n.name}: {name} of a tensor is not supported (only its shape)")

        def value(*ins, target=target, args=n.args):
            shape = (1, *ins[0]) if isinstance(ins[0], tuple) and target is not operator.getitem else ins[0]
            if target is operator.getitem:
                return ins[0][args[1]]
            if target == "size" and len(args) > 1:
                return shape[args[1]]
            return shape if target != "dim" else len(shape)

        add(n, Node(n.name, "shape", refs(n.args[0]), what=name, value=value))
        return
    tensors = refs(*n.args, n.kwargs)
    if target in (torch.cat, torch.concat):
        dim = _arg(n, 1, "dim", 0)
        if dim != 1:
            raise ShapeError(f"{n.name}: torch.cat along dim {dim}; only channels (dim 1) keep the geometry")
        add(n, Node(n.name, "cat", tensors, what="cat"))
    elif target is F.interpolate:
        size, scale = _arg(n, 1, "size"), _arg(n, 2, "scale_factor")
        mode = _arg(n, 3, "mode", "nearest")
        align = bool(_arg(n, 4, "align_corners", False))
        if isinstance(size, fx.Node):  # a size read from another tensor (``y.shape[2:]``): set with the shapes
            add(n, Node(n.name, "layer", tensors, Layer("upsample", size=(1,), mode=mode, align_corners=align),
                        f"interpolate to a size {mode}"))
            return
        layer = Layer("upsample", size=_tuple(size) if size is not None else None,
                      scale=tuple(float(v) for v in _tuple(scale)) if scale is not None else None, mode=mode,
                      align_corners=align)
        add(n, Node(n.name, "layer", tensors[:1], layer, f"interpolate {layer.describe()}"))
    elif target in (F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d):
        kind = "max_pool" if "max" in name else "avg_pool"
        k = _tuple(_arg(n, 1, "kernel_size"))
        s = _arg(n, 2, "stride")
        layer = Layer(kind, k, _tuple(s) if s not in (None, ()) else k, _tuple(_arg(n, 3, "padding", 0)),
                      _tuple(_arg(n, 4, "dilation", 1)) if kind == "max_pool" else (1,),
                      ceil_mode=bool(_arg(n, 5 if kind == "max_pool" else 4, "ceil_mode", False)))
        add(n, Node(n.name, "layer", tensors[:1], layer, f"{name} {layer.describe()}"))
    elif target in _POINTWISE_FUNCTIONS or (n.op == "call_method" and target in _POINTWISE_METHODS):
        add(n, Node(n.name, "pointwise", tensors, what=name))
    elif n.op == "call_method" and target in _GLOBAL_METHODS or target in (torch.flatten, torch.mean, F.linear):
        add(n, Node(n.name, "global", tensors[:1], what=name))
    else:
        raise ShapeError(f"{n.name}: {name} is not an operation the calculator knows; describe the network with "
                         "layer specs instead")
