"""The radiance field: NeRF's MLP (density from position, colour from a feature and the view direction) and
``RadianceField``, the coarse and fine MLPs with their sampling, plus NeRF++'s background for unbounded scenes.

The colour branch can run with weights given from outside (``color_params``): stage 2 of the stylisation
(arXiv 2105.13016 section 3.2) keeps the density and replaces those weights with a hypernetwork's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lit_digest.nerf.rendering import (
    HUGE,
    alpha_weights,
    composite,
    intersect_unit_sphere,
    inverted_sphere_points,
    positional_encoding,
    sample_pdf,
    stratified_samples,
)

__all__ = ["NeRFMLP", "RadianceField", "LayerParams"]

LayerParams = list[tuple[torch.Tensor, torch.Tensor]]  # (weight (out, in), bias (out,)) per colour layer


class NeRFMLP(nn.Module):
    """NeRF's network (arXiv 2003.08934 fig. 7; bmild/nerf ``init_nerf_model``): the encoded position through
    ``depth`` ReLU layers of ``width`` with the input concatenated again after the layers in ``skips``; the
    density from a linear head; a linear ``width`` feature, concatenated with the encoded view direction,
    through ReLU layers of ``color_widths`` to a sigmoid RGB.

    Paper: depth 8, width 256, skips (4,), 10 / 4 frequencies for position / direction, one colour layer of
    128 ("the supplement states 4, the experiments used 1", bmild/nerf). The stylisation paper's colour branch
    (2105.13016, ``model/nerf.py``) has three, (W, W, W / 2).

    Args:
        in_dims: 3 for points, 4 for NeRF++'s background points ``(x / r, y / r, z / r, 1 / r)``.
    """

    def __init__(self, in_dims: int = 3, pos_freqs: int = 10, dir_freqs: int = 4, depth: int = 8, width: int = 256,
                 skips: Sequence[int] = (4,), color_widths: Sequence[int] = (128,)) -> None:
        super().__init__()
        if any(not 0 <= s < depth - 1 for s in skips):
            raise ValueError(f"NeRFMLP skips must be layer indices below depth - 1 = {depth - 1}, got {list(skips)}")
        self.pos_freqs, self.dir_freqs, self.skips = pos_freqs, dir_freqs, tuple(skips)
        pos_dim, self.dir_dim = in_dims * (1 + 2 * pos_freqs), 3 * (1 + 2 * dir_freqs)
        dims = [pos_dim] + [width + (pos_dim if i in self.skips else 0) for i in range(depth - 1)]
        self.trunk = nn.ModuleList(nn.Linear(d, width) for d in dims)
        self.sigma = nn.Linear(width, 1)
        self.feature = nn.Linear(width, width)
        sizes = [width + self.dir_dim, *color_widths, 3]
        self.color = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def color_shapes(self) -> list[tuple[int, int]]:
        """``(in, out)`` of every colour layer: what a hypernetwork must predict."""
        return [(layer.in_features, layer.out_features) for layer in self.color]

    def density(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw density (before the activation) ``(...,)`` and the colour feature ``(..., W)`` at points ``(..., D)``."""
        encoded = positional_encoding(x, self.pos_freqs)
        h = encoded
        for i, layer in enumerate(self.trunk):
            h = F.relu(layer(h))
            if i in self.skips:
                h = torch.cat([encoded, h], -1)
        return self.sigma(h).squeeze(-1), self.feature(h)

    def radiance(self, feature: torch.Tensor, viewdirs: torch.Tensor, params: LayerParams | None = None
                 ) -> torch.Tensor:
        """RGB ``(..., 3)`` from the feature and unit view directions ``(..., 3)``; ``params``: the colour layers'
        weights from a hypernetwork instead of this network's, its hidden layers followed by LayerNorm without
        affine terms as the official ``HyperLayer`` (2105.13016, ``model/hyperlayers.py``)."""
        h = torch.cat([feature, positional_encoding(viewdirs, self.dir_freqs)], -1)
        layers = params if params is not None else [(m.weight, m.bias) for m in self.color]
        for k, (weight, bias) in enumerate(layers):
            h = F.linear(h, weight, bias)
            if k < len(layers) - 1:
                h = F.relu(F.layer_norm(h, h.shape[-1:]) if params is not None else h)
        return torch.sigmoid(h)


class RadianceField(nn.Module):
    """A scene as NeRF renders it: a coarse and a fine ``NeRFMLP`` with hierarchical sampling (arXiv
    2003.08934 section 5.2: ``coarse_samples`` stratified, ``fine_samples`` more from the coarse weights,
    the fine network on all of them), and for unbounded scenes NeRF++'s background (arXiv 2010.07492
    section 4): the foreground inside the unit sphere, which must hold every camera, and a second pair of
    MLPs on the inverted sphere ``(x / r, y / r, z / r, 1 / r)`` outside it, sampled uniformly in ``1 / r``,
    composited behind the foreground with its leftover transmittance.

    The defaults are small so that a CPU trains it in minutes; the papers' sizes are
    ``depth=8, width=256, skips=(4,), color_widths=(128,), coarse_samples=64, fine_samples=128``
    (NeRF ``paper_configs``; NeRF++ ``tat_*.txt``: 64 and 128 for the foreground and the background).

    Args:
        unbounded: NeRF++'s foreground / background split (the stylisation paper's setting); ``False``: NeRF's
            samples between each ray's ``near`` and ``far``.
        background_samples: coarse and fine samples of the background (NeRF++: as the foreground's).
        white_background: composite onto white (NeRF's ``white_bkgd``, the Blender scenes).
        lindisp: sample linearly in inverse depth (bounded scenes only).
    """

    def __init__(self, depth: int = 4, width: int = 64, skips: Sequence[int] = (2,),
                 color_widths: Sequence[int] = (32,), pos_freqs: int = 10, dir_freqs: int = 4,
                 coarse_samples: int = 32, fine_samples: int = 32, unbounded: bool = True,
                 background_samples: tuple[int, int] = (16, 16), white_background: bool = False,
                 lindisp: bool = False) -> None:
        super().__init__()
        if coarse_samples < 3 or fine_samples < 0 or min(background_samples) < 0 or background_samples[0] < 3:
            raise ValueError(f"RadianceField needs coarse_samples >= 3 and background_samples[0] >= 3, got "
                             f"{coarse_samples} and {background_samples}")
        if unbounded and (white_background or lindisp):
            raise ValueError("RadianceField(unbounded=True) has its own background: white_background and lindisp "
                             "are for bounded scenes")
        self.coarse_samples, self.fine_samples, self.unbounded = coarse_samples, fine_samples, unbounded
        self.background_samples, self.white_background, self.lindisp = tuple(background_samples), white_background, \
            lindisp
        sizes = dict(pos_freqs=pos_freqs, dir_freqs=dir_freqs, depth=depth, width=width, skips=skips,
                     color_widths=color_widths)
        self.coarse, self.fine = NeRFMLP(3, **sizes), NeRFMLP(3, **sizes)
        if unbounded:
            self.bg_coarse, self.bg_fine = NeRFMLP(4, **sizes), NeRFMLP(4, **sizes)

    def density_parameters(self) -> list[nn.Parameter]:
        """Everything but the colour branches: the geometry that stage 2 keeps."""
        return [p for name, p in self.named_parameters() if ".color." not in name]

    def _shade(self, net: NeRFMLP, points: torch.Tensor, viewdirs: torch.Tensor, noise_std: float,
               params: LayerParams | None, with_color: bool) -> tuple[torch.Tensor, torch.Tensor]:
        raw, feature = net.density(points)  # (R, S), (R, S, W)
        if noise_std > 0:  # bmild/nerf raw_noise_std: regularises the density during training
            raw = raw + torch.randn_like(raw) * noise_std
        sigma = F.relu(raw)
        if not with_color:  # only the weights are needed (stage 2's coarse pass)
            return torch.zeros(*sigma.shape, 3, device=sigma.device, dtype=sigma.dtype), sigma
        dirs = viewdirs[:, None, :].expand(*points.shape[:2], 3)
        return net.radiance(feature, dirs, params), sigma

    def _foreground(self, net, o, d, z, far, viewdirs, noise_std, params, with_color) -> dict[str, torch.Tensor]:
        points = o[:, None, :] + z[..., None] * d[:, None, :]  # (R, S, 3)
        rgb, sigma = self._shade(net, points, viewdirs, noise_std, params, with_color)
        last = far - z[:, -1] if self.unbounded else HUGE  # NeRF++: up to the sphere; NeRF: to infinity
        return composite(rgb, sigma, z, d.norm(dim=-1), last)

    def _background(self, net, o, d, inv_r, viewdirs, noise_std, params, with_color) -> dict[str, torch.Tensor]:
        """``inv_r`` ascending ``(R, S)``; composited from the sphere (``inv_r = 1``) outwards, intervals in
        ``1 / r`` as NeRF++ (the last one infinite); weights returned in ascending ``inv_r`` again."""
        near_first = inv_r.flip(-1)
        points, t = inverted_sphere_points(o, d, near_first)
        rgb, sigma = self._shade(net, points, viewdirs, noise_std, params, with_color)
        deltas = torch.cat([near_first[:, :-1] - near_first[:, 1:], torch.full_like(near_first[:, :1], HUGE)], -1)
        weights, _ = alpha_weights(sigma, deltas)
        depth = (weights * t.clamp(max=1e3)).sum(-1)  # the sky at infinity shows as 1000
        return {"rgb": (weights[..., None] * rgb).sum(-2), "depth": depth, "weights": weights.flip(-1)}

    def render(self, rays_o: torch.Tensor, rays_d: torch.Tensor, near: torch.Tensor, far: torch.Tensor,
               perturb: bool = False, noise_std: float = 0.0, color_params: dict[str, LayerParams] | None = None,
               coarse_color: bool = True, viewdirs: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Render rays ``(R, 3)`` with bounds ``(R,)``. ``color_params``: ``{"fg": ..., "bg": ...}`` colour layers
        from a hypernetwork for the fine networks; ``coarse_color=False`` skips the coarse colours (stage 2);
        ``viewdirs``: the direction ``(3,)`` or ``(R, 3)`` the colours are seen from (default: each ray's own), to
        tell the view-dependent part of the colour from the rest.

        Returns ``rgb`` ``(R, 3)`` (fine), ``rgb_coarse``, ``depth`` and ``opacity`` ``(R,)`` of the foreground
        (fine: ``sum w_i t_i``, ``sum w_i``), and ``background_depth`` for unbounded scenes.
        """
        viewdirs = F.normalize(rays_d if viewdirs is None else viewdirs.expand_as(rays_d), dim=-1)
        if self.unbounded:
            far = intersect_unit_sphere(rays_o, rays_d)
            near = torch.minimum(near, far - 1e-4)
        params = color_params or {}
        z = stratified_samples(near, far, self.coarse_samples, perturb, self.lindisp)
        coarse = self._foreground(self.coarse, rays_o, rays_d, z, far, viewdirs, noise_std, None, coarse_color)
        z_fine = sample_pdf(0.5 * (z[:, 1:] + z[:, :-1]), coarse["weights"][:, 1:-1].detach(), self.fine_samples,
                            deterministic=not perturb)
        z_all = torch.sort(torch.cat([z, z_fine], -1), -1).values
        fine = self._foreground(self.fine, rays_o, rays_d, z_all, far, viewdirs, noise_std, params.get("fg"), True)
        out = {"rgb": fine["rgb"], "rgb_coarse": coarse["rgb"], "depth": fine["depth"], "opacity": fine["opacity"]}
        if self.unbounded:
            n_coarse, n_fine = self.background_samples
            zeros = torch.zeros_like(near)
            inv_r = stratified_samples(zeros, zeros + 1.0, n_coarse, perturb)  # (R, S) ascending in [0, 1]
            bg_coarse = self._background(self.bg_coarse, rays_o, rays_d, inv_r, viewdirs, noise_std, None,
                                         coarse_color)
            inv_fine = sample_pdf(0.5 * (inv_r[:, 1:] + inv_r[:, :-1]), bg_coarse["weights"][:, 1:-1].detach(),
                                  n_fine, deterministic=not perturb)
            inv_all = torch.sort(torch.cat([inv_r, inv_fine], -1), -1).values
            bg_fine = self._background(self.bg_fine, rays_o, rays_d, inv_all, viewdirs, noise_std, params.get("bg"),
                                       True)
            out["rgb"] = fine["rgb"] + fine["transmittance"][:, None] * bg_fine["rgb"]
            out["rgb_coarse"] = coarse["rgb"] + coarse["transmittance"][:, None] * bg_coarse["rgb"]
            out["background_depth"] = bg_fine["depth"]
        elif self.white_background:  # bmild/nerf: rgb_map + (1 - acc_map)
            out["rgb"] = out["rgb"] + (1.0 - fine["opacity"][:, None])
            out["rgb_coarse"] = out["rgb_coarse"] + (1.0 - coarse["opacity"][:, None])
        return out

    def forward(self, rays_o: torch.Tensor, rays_d: torch.Tensor, near: torch.Tensor, far: torch.Tensor
                ) -> dict[str, torch.Tensor]:
        """Deterministic rendering (evaluation): see ``render``."""
        return self.render(rays_o, rays_d, near, far)
