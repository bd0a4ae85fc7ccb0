"""Conv-shape and receptive-field calculator: ``python -m lit_digest.tools.shapes --help``.

``Layer`` specs (or any ``nn.Module``, traced) -> output shape, receptive field, effective
stride and the exact input region of an output pixel, layer by layer. The formulas are PyTorch's
(``layers``); the receptive-field arithmetic is in ``graph``. No Lightning import.
"""

from lit_digest.tools.shapes.graph import Field, Network, Node
from lit_digest.tools.shapes.layers import Layer, ShapeError, output_size, parse_layer

__all__ = ["Layer", "ShapeError", "parse_layer", "output_size", "Network", "Node", "Field", "receptive_field"]


def receptive_field(network, input_shape) -> Field:
    """Closed-form receptive field of the output of ``network`` (an ``nn.Module``, a ``Network`` or a list of
    ``Layer``s) for an input of ``input_shape`` = ``(C, *spatial)``."""
    if isinstance(network, Network):
        net = network
    elif isinstance(network, (list, tuple)):
        net = Network.from_layers(network)
    else:
        net = Network.from_module(network)
    return net.fields(input_shape)[-1]
