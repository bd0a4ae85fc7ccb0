"""The hypernetwork of stage 2 (arXiv 2105.13016 section 3.2): a style image's feature statistics -> a style
code -> the weights and biases of the radiance field's colour layers.

Official code (ztex08010518/Stylizing-3D-Scene): the style code is the mean of a pre-trained Style-VAE's
posterior (``model/RAIN.py``: ``fc_encoder``, three 1024-wide linear layers on the mean and standard deviation
of VGG-19 relu4_1, its first 512 outputs), frozen; each colour layer's parameters come from its own small MLP
(``model/hyperlayers.py``: ``HyperLinear``, 512 -> 64 -> 64 -> in x out + out, ReLU between, the last layer
Kaiming-initialised and scaled by 0.1). The Style-VAE's weights are not available offline, so here the style
encoder has the same shape (three linear layers on the statistics) and trains with the hypernetwork.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lit_digest.nerf.field import LayerParams

__all__ = ["HyperLinear", "StyleHyperNetwork", "feature_statistics"]


def feature_statistics(features: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-channel mean and standard deviation of ``(B, C, H, W)`` -> ``(B, 2C)``, ``[mean, std]`` (AdaIN's
    ``calc_mean_std``: unbiased variance + 1e-5, as the official ``RAIN.calc_feat_mean_std``; a 1 x 1 map has
    variance 0)."""
    flat = features.flatten(2)  # (B, C, HW)
    return torch.cat([flat.mean(-1), (flat.var(-1, correction=int(flat.shape[-1] > 1)) + eps).sqrt()], -1)


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if k < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class HyperLinear(nn.Module):
    """A style code ``(latent,)`` -> one linear layer's ``weight (out, in)`` and ``bias (out,)`` through an MLP
    ``latent -> hidden x (hidden_layers + 1) -> in x out + out`` (official ``HyperLinear`` / ``FCBlock``:
    Kaiming-normal initialisation, the last layer's weights x 0.1 so that the first predicted layers are small)."""

    def __init__(self, in_features: int, out_features: int, latent_dim: int, hidden: int = 64,
                 hidden_layers: int = 1) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.net = _mlp([latent_dim] + [hidden] * (hidden_layers + 1) + [in_features * out_features + out_features])
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu", mode="fan_in")
        with torch.no_grad():
            self.net[-1].weight.mul_(0.1)

    def forward(self, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(code)  # (in * out + out,)
        split = self.in_features * self.out_features
        return out[:split].view(self.out_features, self.in_features), out[split:]


class StyleHyperNetwork(nn.Module):
    """Feature statistics of one style image ``(stats_dim,)`` -> colour-layer parameters for each named branch
    (``{"fg": [...], "bg": [...]}``: NeRF++'s foreground and background networks each have their own, as the
    official ``NerfNet`` builds a ``HyperFC`` in both).

    Args:
        stats_dim: size of the statistics (2 x channels of the deepest feature layer).
        branches: the colour layers' ``(in, out)`` per branch (``NeRFMLP.color_shapes()``).
        latent_dim: the style code (official: 512).
        encoder_width: the style encoder's hidden width (official: 1024).
        hidden, hidden_layers: each ``HyperLinear``'s MLP (official: 64, 1).
    """

    def __init__(self, stats_dim: int, branches: dict[str, Sequence[tuple[int, int]]], latent_dim: int = 64,
                 encoder_width: int = 128, hidden: int = 64, hidden_layers: int = 1) -> None:
        super().__init__()
        self.encoder = _mlp([stats_dim, encoder_width, encoder_width, latent_dim])
        self.heads = nn.ModuleDict({
            name: nn.ModuleList(HyperLinear(i, o, latent_dim, hidden, hidden_layers) for i, o in shapes)
            for name, shapes in branches.items()
        })

    def forward(self, stats: torch.Tensor) -> dict[str, LayerParams]:
        if stats.ndim != 1:
            raise ValueError(f"StyleHyperNetwork takes the statistics of one style image (stats_dim,), got "
                             f"{tuple(stats.shape)}")
        code = self.encoder(stats)
        return {name: [head(code) for head in heads] for name, heads in self.heads.items()}
