"""``python -m lit_digest.tools.shapes``: a per-layer table of output shapes and receptive fields.

Examples::

    python -m lit_digest.tools.shapes --input 3x64x64 conv:k=3,p=1,c=16 maxpool:k=2 conv:k=3,d=2,p=2 convT:k=4,s=2,p=1
    python -m lit_digest.tools.shapes --input 3x48x48 --module lit_digest.depth.nets.SmallDepthNet
    python -m lit_digest.tools.shapes --input 2x128x128 --module lit_digest.depth.boost.nets.MergeUNet \\
        --init '{"num_downs": 7, "ngf": 16}'

Each row: the layer, its output ``C x H x W``, the receptive field ``r`` of one of its pixels in
input pixels, the effective stride (jump) ``j`` and the centre of the first pixel's field. The last
lines give the exact input box that an output pixel reads (``--pixel``, default the centre).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from lit_digest.tools.shapes.graph import Field, Network
from lit_digest.tools.shapes.layers import ShapeError, parse_layer


def _dims(values, digits: int = 2) -> str:
    values = [round(v, digits) for v in values]
    text = [f"{v:g}" for v in values]
    return text[0] if len(set(text)) == 1 else "x".join(text)


def _shape(shape) -> str:
    if not isinstance(shape, tuple):
        return str(shape)
    return "x".join("?" if v is None else str(v) for v in shape)


def build_network(args: argparse.Namespace) -> Network:
    if args.module:
        path, _, cls_name = args.module.rpartition(".")
        if not path:
            raise ShapeError(f"--module needs a full class path (package.module.Class), got {args.module!r}")
        try:
            cls = getattr(importlib.import_module(path), cls_name)
        except (ImportError, AttributeError) as err:
            raise ShapeError(f"cannot import {args.module}: {err}") from err
        module = cls(**json.loads(args.init or "{}"))
        if args.layers:
            raise ShapeError("give layer specs or --module, not both")
        return Network.from_module(module.eval())
    if not args.layers:
        raise ShapeError("give layer specs (e.g. conv:k=3,s=2,p=1) or --module package.Class")
    return Network.from_layers([parse_layer(text) for text in args.layers])


def table(net: Network, input_shape: tuple[int, ...], show_all: bool = False) -> list[list[str]]:
    """The rows of the per-layer table (header first)."""
    shapes, fields = net.shapes(input_shape), net.fields(input_shape)
    rows = [["#", "node", "layer", "output", "receptive field", "jump", "start"]]
    last = len(net.nodes) - 1
    for i, (node, shape, f) in enumerate(zip(net.nodes, shapes, fields)):
        if node.op == "shape" or (not show_all and node.op == "pointwise" and i != last):
            continue
        f: Field | None
        rf = "global" if f.is_global else _dims(f.size)
        rows.append([str(i), node.name, node.what or node.op, _shape(shape), rf, _dims(f.jump), _dims(f.start)])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lit_digest.tools.shapes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("layers", nargs="*", help="layer specs: conv|convT|maxpool|avgpool|adaptive|up:key=value,...")
    parser.add_argument("--input", required=True, help="input C x H x W (or C x L, C x D x H x W), e.g. 3x256x256")
    parser.add_argument("--module", help="an nn.Module class path instead of layer specs")
    parser.add_argument("--init", help="JSON keyword arguments for --module")
    parser.add_argument("--pixel", help="output pixel for the exact input region, e.g. 10,12 (default: the centre)")
    parser.add_argument("--all", action="store_true", help="also list pointwise steps (activations, norms, adds)")
    args = parser.parse_args(argv)
    try:
        input_shape = tuple(int(v) for v in args.input.lower().split("x"))
        if len(input_shape) < 2:
            raise ShapeError(f"--input is C x H x W (at least one spatial dimension), got {args.input!r}")
        net = build_network(args)
        rows = table(net, input_shape, args.all)
        pixel = tuple(int(v) for v in args.pixel.split(",")) if args.pixel else None
        region = net.input_region(input_shape, pixel)
    except (ShapeError, ValueError) as err:
        print(f"shapes: error: {err}", file=sys.stderr)
        return 2
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    out = net.shapes(input_shape)[-1]
    where = ",".join(str(v) for v in pixel) if pixel else ",".join(str(v // 2) for v in out[1:])
    box = " x ".join(f"[{lo}, {hi}]" for lo, hi in region)
    size = "x".join(str(hi - lo + 1) for lo, hi in region)
    what = f"output pixel ({where})" if len(out) > 1 else "the output"
    print(f"\n{what} reads input box {box}: {size} pixels")
    return 0


if __name__ == "__main__":
    from lit_digest.core.console import script

    sys.exit(script(main)())
