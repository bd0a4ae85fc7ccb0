"""Projection / prediction heads built from explicit sizes."""

from __future__ import annotations

from torch import nn

__all__ = ["MLP"]


class MLP(nn.Sequential):
    """``Linear -> BN -> ReLU`` repeated, then a final ``Linear``.

    BYOL (arXiv 2006.07733, section 3.3): "a multi-layer perceptron (MLP) consisting in a
    linear layer with output size 4096 followed by batch normalization, rectified linear
    units (ReLU), and a final linear layer with output dimension 256". The same shape
    serves as BYOL's predictor and SimCLR's projector (2002.05709, section 2.1).

    Args:
        in_dim, hidden_dim, out_dim: layer sizes.
        num_layers: number of ``Linear`` layers (>= 1).
        last_bn: add a BatchNorm (without affine) after the last layer (SimCLR v2 style).
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2,
                 last_bn: bool = False) -> None:
        if num_layers < 1:
            raise ValueError(f"MLP needs num_layers >= 1, got {num_layers}")
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(num_layers - 1):
            layers += [nn.Linear(dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim),
                       nn.ReLU(inplace=True)]
            dim = hidden_dim
        layers.append(nn.Linear(dim, out_dim, bias=not last_bn))
        if last_bn:
            layers.append(nn.BatchNorm1d(out_dim, affine=False))
        super().__init__(*layers)
