"""Layers every domain builds from: an MLP head from explicit sizes, the output size of an encoder."""

from __future__ import annotations

from torch import nn

__all__ = ["MLP", "feature_dim_of"]


class MLP(nn.Sequential):
    """``Linear -> BN -> ReLU`` repeated, then a final ``Linear``.

    BYOL (arXiv 2006.07733, section 3.3): "a multi-layer perceptron (MLP) consisting in a
    linear layer with output size 4096 followed by batch normalization, rectified linear
    units (ReLU), and a final linear layer with output dimension 256". The same shape
    serves as BYOL's predictor and SimCLR's projector (2002.05709, section 2.1).

    Args:
        in_dim, hidden_dim, out_dim: layer sizes.
        num_layers: number of ``Linear`` layers (>= 1).
        batch_norm: the hidden BatchNorms; without them each hidden layer is ``Linear`` (with bias) ->
            ReLU, the SimCLR v1 head as solo-learn builds it (``g(h) = W2 relu(W1 h)``, 2002.05709 eq. 2).
        last_bn: add a BatchNorm (without affine) after the last layer (SimCLR v2 style).
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2,
                 batch_norm: bool = True, last_bn: bool = False) -> None:
        if num_layers < 1:
            raise ValueError(f"MLP needs num_layers >= 1, got {num_layers}")
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(num_layers - 1):
            layers.append(nn.Linear(dim, hidden_dim, bias=not batch_norm))
            layers += [nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)] if batch_norm else [nn.ReLU(inplace=True)]
            dim = hidden_dim
        layers.append(nn.Linear(dim, out_dim, bias=not last_bn))
        if last_bn:
            layers.append(nn.BatchNorm1d(out_dim, affine=False))
        super().__init__(*layers)


def feature_dim_of(backbone: nn.Module, feature_dim: int | None = None) -> int:
    """The output size of ``backbone``: ``feature_dim`` if given, else its ``num_features``."""
    if feature_dim is not None:
        return feature_dim
    dim = getattr(backbone, "num_features", None)
    if not isinstance(dim, int):
        raise ValueError(
            f"Cannot tell the output size of backbone {type(backbone).__name__}: it has no integer "
            "`num_features` attribute. Pass `feature_dim=<size of its output vector>` to the method."
        )
    return dim
