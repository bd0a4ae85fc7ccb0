"""The pure functions of neural radiance fields: camera rays, positional encoding, samples along rays, volume
rendering, hierarchical sampling, NDC rays and NeRF++'s inverted sphere.

Conventions (bmild/nerf ``run_nerf_helpers.py``): a pose is camera-to-world ``c2w`` (3, 4) whose camera looks
along its -z axis with y up and x to the right (OpenGL / Blender). A ray is ``o + t d`` with ``d`` in world
units such that the camera-space z of ``d`` is -1, so ``t`` is the depth along the optical axis (the z-buffer
value) and rendered depth ``sum_i w_i t_i`` is comparable with a z-buffer. Pixels are sampled at their centres
(``+ 0.5``, as NeRF++ ``data_loader_split.py``; the original NeRF code casts through pixel corners).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["camera_rays", "positional_encoding", "stratified_samples", "alpha_weights", "composite",
           "sample_pdf", "ndc_rays", "intersect_unit_sphere", "inverted_sphere_points", "spiral_poses",
           "orbit_poses", "look_at"]

TINY = 1e-10  # bmild/nerf raw2outputs: cumprod(1 - alpha + 1e-10)
HUGE = 1e10  # the last interval of a ray: "the distance from the last integration time is infinity"


def camera_rays(height: int, width: int, focal: float, c2w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Origins and directions ``(H, W, 3)`` of the rays through the pixel centres of a pinhole camera."""
    c2w = c2w.float()
    i, j = torch.meshgrid(torch.arange(width, dtype=torch.float32, device=c2w.device) + 0.5,
                          torch.arange(height, dtype=torch.float32, device=c2w.device) + 0.5, indexing="xy")
    dirs = torch.stack([(i - width / 2) / focal, -(j - height / 2) / focal, -torch.ones_like(i)], -1)  # (H, W, 3)
    rays_d = dirs @ c2w[:3, :3].T
    return c2w[:3, 3].expand_as(rays_d), rays_d


def positional_encoding(x: torch.Tensor, num_freqs: int, include_input: bool = True) -> torch.Tensor:
    """``gamma(x) = (x, sin(2^0 x), cos(2^0 x), ..., sin(2^(L-1) x), cos(2^(L-1) x))`` per coordinate
    (arXiv 2003.08934 eq. 4 with the official code's frequencies ``2^k``, without the paper's ``pi``):
    ``(..., D)`` -> ``(..., D + 2 L D)``, in the official order (frequency, then sin / cos, then coordinate)."""
    freqs = 2.0 ** torch.arange(num_freqs, dtype=x.dtype, device=x.device)  # (L,)
    angles = x[..., None, :] * freqs[:, None]  # (..., L, D)
    encoded = torch.stack([angles.sin(), angles.cos()], -2).flatten(-3)  # (..., L * 2 * D)
    return torch.cat([x, encoded], -1) if include_input else encoded


def stratified_samples(near: torch.Tensor, far: torch.Tensor, count: int, perturb: bool,
                       lindisp: bool = False) -> torch.Tensor:
    """``count`` depths per ray between ``near`` and ``far`` ``(R,)``: evenly spaced (in depth, or in inverse
    depth with ``lindisp``), and with ``perturb`` one uniform draw inside each interval (eq. 2) -> ``(R, count)``."""
    t = torch.linspace(0.0, 1.0, count, device=near.device)
    if lindisp:
        z = 1.0 / (1.0 / near[:, None] * (1.0 - t) + 1.0 / far[:, None] * t)
    else:
        z = near[:, None] * (1.0 - t) + far[:, None] * t  # (R, S)
    if perturb:
        mids = 0.5 * (z[:, 1:] + z[:, :-1])
        lower, upper = torch.cat([z[:, :1], mids], -1), torch.cat([mids, z[:, -1:]], -1)
        z = lower + (upper - lower) * torch.rand_like(z)
    return z


def alpha_weights(sigma: torch.Tensor, deltas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 3 of arXiv 2003.08934: ``alpha_i = 1 - exp(-sigma_i delta_i)``, ``T_i = prod_{j<i} (1 - alpha_j)``,
    ``w_i = T_i alpha_i``. ``sigma``, ``deltas`` ``(R, S)`` -> the weights ``(R, S)`` and the transmittance past
    the last sample ``(R,)`` (what is left for a background, NeRF++ ``bg_lambda``)."""
    alpha = 1.0 - torch.exp(-sigma * deltas)
    trans = torch.cumprod(1.0 - alpha + TINY, -1)  # (R, S): T after each sample
    before = torch.cat([torch.ones_like(trans[:, :1]), trans[:, :-1]], -1)  # exclusive: T before each sample
    return alpha * before, trans[:, -1]


def composite(rgb: torch.Tensor, sigma: torch.Tensor, z: torch.Tensor, ray_norm: torch.Tensor,
              last_delta: torch.Tensor | float = HUGE) -> dict[str, torch.Tensor]:
    """Volume rendering of samples at depths ``z`` ``(R, S)`` with colours ``rgb`` ``(R, S, 3)`` and densities
    ``sigma`` ``(R, S)``: intervals ``z_{i+1} - z_i`` (the last one ``last_delta``) times ``|d|``, so that
    ``sigma`` is per world unit. Returns ``rgb`` ``(R, 3)``, ``depth`` ``(R,)`` (``sum w_i z_i``), ``opacity``
    ``(R,)`` (``sum w_i``), ``weights`` ``(R, S)`` and ``transmittance`` ``(R,)``."""
    last = torch.as_tensor(last_delta, dtype=z.dtype, device=z.device).expand(z.shape[0])[:, None]
    deltas = torch.cat([z[:, 1:] - z[:, :-1], last], -1) * ray_norm[:, None]  # (R, S)
    weights, transmittance = alpha_weights(sigma, deltas)
    return {"rgb": (weights[..., None] * rgb).sum(-2), "depth": (weights * z).sum(-1), "opacity": weights.sum(-1),
            "weights": weights, "transmittance": transmittance}


def sample_pdf(bins: torch.Tensor, weights: torch.Tensor, count: int, deterministic: bool) -> torch.Tensor:
    """Hierarchical sampling (arXiv 2003.08934 section 5.2, bmild/nerf ``sample_pdf``): ``count`` draws per ray
    from the piecewise-constant density whose bins have edges ``bins`` ``(R, M + 1)`` and masses ``weights``
    ``(R, M)`` (plus 1e-5, as there, so that an empty ray samples uniformly), by inverting its CDF at uniform
    ``u`` (evenly spaced when ``deterministic``) -> ``(R, count)``."""
    weights = weights + 1e-5
    pdf = weights / weights.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)  # (R, M + 1)
    if deterministic:
        u = torch.linspace(0.0, 1.0, count, device=bins.device).expand(cdf.shape[0], count)
    else:
        u = torch.rand(cdf.shape[0], count, device=bins.device)
    u = u.contiguous()
    above = torch.searchsorted(cdf, u, right=True).clamp(max=cdf.shape[-1] - 1)  # (R, count)
    below = (above - 1).clamp(min=0)
    cdf_lo, cdf_hi = cdf.gather(-1, below), cdf.gather(-1, above)
    bin_lo, bin_hi = bins.gather(-1, below), bins.gather(-1, above)
    span = cdf_hi - cdf_lo
    span = torch.where(span < 1e-5, torch.ones_like(span), span)
    return bin_lo + (u - cdf_lo) / span * (bin_hi - bin_lo)


def ndc_rays(height: int, width: int, focal: float, near: float, rays_o: torch.Tensor, rays_d: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward-facing scenes in normalised device coordinates (arXiv 2003.08934 appendix C; bmild/nerf
    ``ndc_rays``): origins moved to the plane ``z = -near``, then projected so that the frustum from ``near``
    to infinity is the cube [-1, 1]^3 and depths run from 0 to 1. ``(..., 3)`` each."""
    t = -(near + rays_o[..., 2]) / rays_d[..., 2]
    rays_o = rays_o + t[..., None] * rays_d
    ox, oy, oz = rays_o.unbind(-1)
    dx, dy, dz = rays_d.unbind(-1)
    sx, sy = -2.0 * focal / width, -2.0 * focal / height
    origin = torch.stack([sx * ox / oz, sy * oy / oz, 1.0 + 2.0 * near / oz], -1)
    direction = torch.stack([sx * (dx / dz - ox / oz), sy * (dy / dz - oy / oz), -2.0 * near / oz], -1)
    return origin, direction


def intersect_unit_sphere(rays_o: torch.Tensor, rays_d: torch.Tensor) -> torch.Tensor:
    """``t`` where a ray from inside the unit sphere leaves it (NeRF++, arXiv 2010.07492 section 4) ``(R,)``."""
    d1 = -(rays_d * rays_o).sum(-1) / (rays_d * rays_d).sum(-1)  # the point of the line nearest the centre
    mid = rays_o + d1[:, None] * rays_d
    inside = (1.0 - (mid * mid).sum(-1)).clamp(min=0.0)
    return d1 + inside.sqrt() / rays_d.norm(dim=-1)


def inverted_sphere_points(rays_o: torch.Tensor, rays_d: torch.Tensor, inv_r: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """NeRF++'s background parameterisation (arXiv 2010.07492 eq. 6; Kai-46/nerfplusplus ``depth2pts_outside``):
    the point of each ray at distance ``r = 1 / inv_r`` from the origin, as ``(x / r, y / r, z / r, 1 / r)``,
    bounded for every ``r >= 1`` including infinity (``inv_r = 0``: the ray's direction).
    ``rays_o``, ``rays_d`` ``(R, 3)`` (origins inside the unit sphere), ``inv_r`` ``(R, S)`` in [0, 1] ->
    points ``(R, S, 4)`` and the ray parameter ``t`` of each point ``(R, S)`` (infinite at ``inv_r = 0``).

    Solving ``|o + t d| = r`` with ``m`` the distance of the ray's line from the origin gives
    ``t = d1 + sqrt(r^2 - m^2) / |d|``, so ``(o + t d) / r = inv_r (o + d1 d) + sqrt(1 - m^2 inv_r^2) d / |d|``.
    """
    norm = rays_d.norm(dim=-1, keepdim=True)  # (R, 1)
    d1 = -(rays_d * rays_o).sum(-1, keepdim=True) / norm**2  # (R, 1)
    mid = rays_o + d1 * rays_d  # (R, 3)
    m2 = (mid * mid).sum(-1, keepdim=True)  # (R, 1)
    root = (1.0 - m2 * inv_r**2).clamp(min=0.0).sqrt()  # (R, S)
    unit = inv_r[..., None] * mid[:, None, :] + root[..., None] * (rays_d / norm)[:, None, :]  # (R, S, 3)
    t = d1 + root / (inv_r * norm)  # (R, S); inf where inv_r = 0
    return torch.cat([unit, inv_r[..., None]], -1), t


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """The ``c2w`` (3, 4) of a camera at ``eye`` looking at ``target`` (its -z axis), ``up`` roughly its y."""
    back = F.normalize(eye - target, dim=-1)
    right = F.normalize(torch.linalg.cross(up, back, dim=-1), dim=-1)
    true_up = torch.linalg.cross(back, right, dim=-1)
    return torch.stack([right, true_up, back, eye], -1)


def orbit_poses(count: int, radius: float, elevation_deg: float, start_deg: float = 0.0, sweep_deg: float = 360.0,
                target: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> torch.Tensor:
    """``count`` cameras on a circle at ``radius`` and ``elevation_deg`` above the x-y plane (z up, as the
    Blender scenes), looking at ``target``, ``sweep_deg`` apart end to end -> ``(count, 3, 4)``."""
    centre = torch.tensor(target, dtype=torch.float32)
    elevation = math.radians(elevation_deg)
    poses = []
    for k in range(count):
        azimuth = math.radians(start_deg + sweep_deg * k / max(count - (1 if sweep_deg < 360 else 0), 1))
        eye = centre + radius * torch.tensor([math.cos(elevation) * math.cos(azimuth),
                                              math.cos(elevation) * math.sin(azimuth), math.sin(elevation)])
        poses.append(look_at(eye, centre, torch.tensor([0.0, 0.0, 1.0])))
    return torch.stack(poses)


def spiral_poses(poses: torch.Tensor, near: float, far: float, count: int = 120, rotations: int = 2,
                 zrate: float = 0.5) -> torch.Tensor:
    """LLFF's spiral through forward-facing cameras (bmild/nerf ``load_llff.py``, ``render_path_spiral``): around
    the average pose, radii the 90th percentile of the camera offsets, looking at the "focus depth"
    ``1 / (0.25 / close + 0.75 / far)`` with ``close = 0.9 near`` and ``far = 5 far``. ``(N, 3, 4)`` ->
    ``(count, 3, 4)``."""
    centre = poses[:, :, 3].mean(0)
    forward = F.normalize(poses[:, :, 2].sum(0), dim=0)
    up = F.normalize(poses[:, :, 1].sum(0), dim=0)
    right = F.normalize(torch.linalg.cross(up, forward, dim=0), dim=0)
    average = torch.stack([right, torch.linalg.cross(forward, right, dim=0), forward, centre], -1)  # (3, 4)
    focus = 1.0 / (0.25 / (0.9 * near) + 0.75 / (5.0 * far))
    offsets = (poses[:, :, 3] - centre) @ average[:, :3]  # camera positions in the average camera's frame
    radii = torch.quantile(offsets.abs(), 0.9, dim=0)
    path = []
    for theta in torch.linspace(0.0, 2 * math.pi * rotations, count + 1)[:-1].tolist():
        local = torch.tensor([math.cos(theta), -math.sin(theta), -math.sin(theta * zrate)]) * radii
        eye = average[:, :3] @ local + centre
        target = average[:, :3] @ torch.tensor([0.0, 0.0, -focus]) + centre
        path.append(look_at(eye, target, up))
    return torch.stack(path)
