"""AET's random transformations: drawn per sample, applied to a whole batch on the device (kornia's warp).

Zhang et al., "AET vs. AED", arXiv 1901.04596, section 3.2 (parameterized transformations), with the ranges
and target encodings of the official code (github.com/maple-research-lab/AET, ``cifar/affine/dataset.py`` and
``cifar/v16_projective_uniform/dataset.py`` with ``cifar/projective/main.py``).

Coordinates are continuous pixels: x to the right, y down, the image spans ``[0, W] x [0, H]`` and pixel
``(i, j)`` has its centre at ``(j + 0.5, i + 0.5)`` (PIL's convention, which the official code warps with, and
``grid_sample``'s with ``align_corners=False``). A transformation is a matrix ``M`` ``(B, 3, 3)`` that sends a
point ``p`` of the input image to the point ``q ~ M p`` (homogeneous) of the transformed image: the transformed
image at ``q`` shows the input at ``M^-1 q``, bilinearly interpolated, and ``fill`` where that falls outside.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from kornia.geometry.transform import warp_perspective
from torch import nn

__all__ = ["Transformation", "AffineTransformation", "ProjectiveTransformation", "Transformed", "warp",
           "homography_from_points", "apply_matrix", "image_corners"]


class Transformed(NamedTuple):
    """A transformed batch: ``images`` (B, C, H, W), the regression ``target`` (B, K) and the ``matrix``
    (B, 3, 3) that maps input pixels to transformed pixels."""

    images: torch.Tensor
    target: torch.Tensor
    matrix: torch.Tensor


def apply_matrix(matrix: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Points ``(B, K, 2)`` mapped by ``matrix`` ``(B, 3, 3)`` (with the projective division): ``(B, K, 2)``."""
    homogeneous = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1)  # (B, K, 3)
    mapped = homogeneous @ matrix.transpose(1, 2)  # (B, K, 3)
    return mapped[..., :2] / mapped[..., 2:]


def image_corners(height: int, width: int, ref: torch.Tensor) -> torch.Tensor:
    """The four corners top-left, top-right, bottom-right, bottom-left: ``(4, 2)`` as ``(x, y)``."""
    return torch.tensor([[0.0, 0.0], [width, 0.0], [width, height], [0.0, height]], dtype=ref.dtype,
                        device=ref.device)


def warp(x: torch.Tensor, matrix: torch.Tensor, fill: float | torch.Tensor = 0.0) -> torch.Tensor:
    """The images ``x`` (B, C, H, W) transformed by ``matrix`` (B, 3, 3), bilinear, at the same size.

    ``fill`` (a number or a ``(1, C, 1, 1)`` tensor) is the colour outside the input; at the border the
    interpolation blends it with the image, as PIL does. kornia's ``warp_perspective`` samples it, with the matrix
    moved to kornia's pixel convention (pixel centres at whole coordinates: ``S^-1 M S``, ``S`` the half-pixel
    shift); it inverts the 3x3 matrices in closed form. It equals the plain grid sampling it replaced (max
    difference 1e-5, ``tests/ssl/test_kornia_ops.py``) at the same speed on the CPU (``benchmarks/kornia_ops.py``).
    """
    h, w = x.shape[-2:]
    shift = torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]], dtype=x.dtype, device=x.device)
    unshift = torch.tensor([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]], dtype=x.dtype, device=x.device)
    fill = torch.as_tensor(fill, dtype=x.dtype, device=x.device)
    return warp_perspective(x, unshift @ matrix.to(x.dtype) @ shift, (h, w), mode="bilinear", padding_mode="fill",
                            align_corners=False, fill_value=fill.reshape(1) if fill.dim() == 0 else fill)


def homography_from_points(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """The homography ``H`` ``(B, 3, 3)``, ``H[:, 2, 2] = 1``, that maps the four points ``src`` ``(B, 4, 2)`` to
    ``dst`` ``(B, 4, 2)``: the 8x8 linear system of the direct linear transform, solved exactly (the official
    code's ``find_coeffs`` solves the same system by least squares)."""
    x, y = src.unbind(-1)  # each (B, 4)
    u, v = dst.unbind(-1)
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    rows_u = torch.stack([x, y, ones, zeros, zeros, zeros, -u * x, -u * y], dim=-1)  # (B, 4, 8)
    rows_v = torch.stack([zeros, zeros, zeros, x, y, ones, -v * x, -v * y], dim=-1)
    system = torch.cat([rows_u, rows_v], dim=1)  # (B, 8, 8)
    h = torch.linalg.solve(system, torch.cat([u, v], dim=1))  # (B, 8)
    return torch.cat([h, torch.ones_like(h[:, :1])], dim=1).view(-1, 3, 3)


def _uniform(lo: float, hi: float, n: int, device, generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, device=device, generator=generator)


def _to_unit_range(value: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """``[lo, hi] -> [-1, 1]`` (the official code's ``v * 2 / (hi - lo) - (lo + hi) / (hi - lo)``); 0 for an
    empty range."""
    return (2 * value - (lo + hi)) / (hi - lo) if hi > lo else torch.zeros_like(value)


def _from_unit_range(value: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return lo + (value + 1) * (hi - lo) / 2


class Transformation(nn.Module):
    """A distribution of transformations with a regression target per draw; subclasses give ``sample``,
    ``matrix``, ``encode`` and ``decode``. ``num_params`` is the target's size; ``bounded`` says whether every
    target lies in ``[-1, 1]`` (the official affine decoder ends with a tanh there)."""

    num_params: int = 0
    bounded: bool = False

    def sample(self, n: int, height: int, width: int, device: torch.device | str = "cpu",
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def matrix(self, params: dict[str, torch.Tensor], height: int, width: int) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, params: dict[str, torch.Tensor], height: int, width: int) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, target: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """The matrix ``(B, 3, 3)`` of normalised targets ``(B, num_params)``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None,
                fill: float | torch.Tensor = 0.0) -> Transformed:
        """One random transformation per image of ``x`` (B, C, H, W): the transformed images, their targets and
        matrices. Computed in float32 (a solve and an inverse per sample), whatever the autocast."""
        b, _, h, w = x.shape
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            params = self.sample(b, h, w, x.device, generator)
            matrix = self.matrix(params, h, w)
            return Transformed(warp(x, matrix, fill), self.encode(params, h, w), matrix)


class AffineTransformation(Transformation):
    """AET-affine: a random rotation, translation, scale and shear about the image centre.

    ``q = A (p - c) + c + t`` with ``A = s R(a) [[1, -sin(phi)], [0, cos(phi)]]``, the affine map of torchvision
    0.2.1's ``affine`` that the official code calls (its ``_get_inverse_affine_matrix``), ``c`` the image centre
    (the official code turns about ``(W/2 + 0.5, H/2 + 0.5)``, half a pixel off; the targets do not depend on it).

    Defaults are the official code's (``cifar/affine/main.py``): rotation ``a`` uniform in +-180 degrees,
    translation ``t`` up to +-0.2 of the width / height rounded to whole pixels, scale ``s`` in [0.7, 1.3], shear
    ``phi`` in +-30 degrees. The target (``dataset.py``) is ``(cos a, sin a, tx / (0.2 W), ty / (0.2 H), s, phi)``
    with ``s`` and ``phi`` mapped linearly from their ranges to [-1, 1]: every entry lies in [-1, 1].
    """

    num_params = 6
    bounded = True

    def __init__(self, degrees: float = 180.0, translate: float = 0.2, scale: tuple[float, float] = (0.7, 1.3),
                 shear: float = 30.0, integer_translation: bool = True) -> None:
        super().__init__()
        if not 0 <= degrees <= 180:
            raise ValueError(f"AffineTransformation: degrees must be in [0, 180], got {degrees}")
        if not 0 <= translate < 1:
            raise ValueError(f"AffineTransformation: translate is a fraction of the size in [0, 1), got {translate}")
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"AffineTransformation: scale must satisfy 0 < low <= high, got {tuple(scale)}")
        if not 0 <= shear < 90:
            raise ValueError(f"AffineTransformation: shear must be in [0, 90) degrees, got {shear}")
        self.degrees, self.translate, self.shear = degrees, translate, shear
        self.scale = (float(scale[0]), float(scale[1]))
        self.integer_translation = integer_translation

    def sample(self, n, height, width, device="cpu", generator=None):
        tx = _uniform(-self.translate * width, self.translate * width, n, device, generator)
        ty = _uniform(-self.translate * height, self.translate * height, n, device, generator)
        if self.integer_translation:  # np.round in the official get_params
            tx, ty = tx.round(), ty.round()
        return {
            "angle": _uniform(-self.degrees, self.degrees, n, device, generator),  # degrees
            "tx": tx, "ty": ty,  # pixels
            "scale": _uniform(*self.scale, n, device, generator),
            "shear": _uniform(-self.shear, self.shear, n, device, generator),  # degrees
        }

    def matrix(self, params, height, width):
        a, phi = torch.deg2rad(params["angle"]), torch.deg2rad(params["shear"])
        s = params["scale"]
        linear = torch.stack([torch.stack([torch.cos(a), -torch.sin(a + phi)], -1),
                              torch.stack([torch.sin(a), torch.cos(a + phi)], -1)], -2) * s.view(-1, 1, 1)  # (B,2,2)
        centre = torch.tensor([width / 2, height / 2], dtype=s.dtype, device=s.device)
        shift = centre + torch.stack([params["tx"], params["ty"]], -1) - linear @ centre  # (B, 2)
        bottom = torch.tensor([0.0, 0.0, 1.0], dtype=s.dtype, device=s.device).expand(len(s), 1, 3)
        return torch.cat([torch.cat([linear, shift.unsqueeze(-1)], -1), bottom], 1)  # (B, 3, 3)

    def encode(self, params, height, width):
        a = torch.deg2rad(params["angle"])
        tx = params["tx"] / (self.translate * width) if self.translate else torch.zeros_like(a)
        ty = params["ty"] / (self.translate * height) if self.translate else torch.zeros_like(a)
        return torch.stack([torch.cos(a), torch.sin(a), tx, ty, _to_unit_range(params["scale"], *self.scale),
                            _to_unit_range(params["shear"], -self.shear, self.shear)], -1)  # (B, 6)

    def decode(self, target, height, width):
        cos, sin, tx, ty, scale, shear = target.float().unbind(-1)
        params = {"angle": torch.rad2deg(torch.atan2(sin, cos)), "tx": tx * self.translate * width,
                  "ty": ty * self.translate * height, "scale": _from_unit_range(scale, *self.scale),
                  "shear": _from_unit_range(shear, -self.shear, self.shear)}
        return self.matrix(params, height, width)


class ProjectiveTransformation(Transformation):
    """AET-project: a random homography, from where it sends the four image corners.

    As the official code draws it (``cifar/v16_projective_uniform/dataset.py``, ranges of
    ``cifar/projective/main.py``): the corners are scaled about the centre by ``s`` uniform in [0.8, 1.2],
    turned by a random multiple of 90 degrees, and each coordinate moved by a whole number of pixels in
    ``[-4, 4]`` at 32x32 (``shift`` = 4/32 of the width / height); the transformation sends each corner of the
    input to its moved corner. The target is the homography the official code regresses, the one that maps the
    moved corners back (PIL's ``PERSPECTIVE`` coefficients, ``M^-1`` with its last entry 1), its 8 coefficients
    standardised by the official mean (0, 0, 16, 0, 0, 16, 0, 0) and std (1, 1, 20, 1, 1, 20, .015, .015) at
    32x32; at other sizes the translations (entries 3 and 6) scale with the size and the perspective terms (7
    and 8) with its inverse, so that the standardised targets do not depend on the resolution.
    """

    num_params = 8
    bounded = False
    REFERENCE_SIZE = 32
    MEAN = (0.0, 0.0, 16.0, 0.0, 0.0, 16.0, 0.0, 0.0)
    STD = (1.0, 1.0, 20.0, 1.0, 1.0, 20.0, 0.015, 0.015)

    def __init__(self, shift: float = 4 / 32, scale: tuple[float, float] = (0.8, 1.2), rotate: bool = True) -> None:
        super().__init__()
        if not 0 <= shift < 0.5:
            raise ValueError(f"ProjectiveTransformation: shift is a fraction of the size in [0, 0.5), got {shift}")
        if not 0 < scale[0] <= scale[1]:
            raise ValueError(f"ProjectiveTransformation: scale must satisfy 0 < low <= high, got {tuple(scale)}")
        self.shift, self.rotate = shift, rotate
        self.scale = (float(scale[0]), float(scale[1]))

    def sample(self, n, height, width, device="cpu", generator=None):
        ref = torch.empty(0, device=device)
        corners = image_corners(height, width, ref)  # (4, 2)
        centre = corners[2] / 2
        s = _uniform(*self.scale, n, device, generator)
        turns = (torch.randint(0, 4, (n,), device=device, generator=generator) if self.rotate
                 else torch.zeros(n, dtype=torch.long, device=device))
        limit = torch.tensor([round(self.shift * width), round(self.shift * height)], device=device)  # (2,)
        uniform = torch.rand(n, 4, 2, device=device, generator=generator)
        moves = torch.floor(uniform * (2 * limit + 1)) - limit  # whole pixels in [-limit, limit], each equally likely
        scaled = centre + (corners - centre) * s.view(-1, 1, 1)  # (B, 4, 2)
        order = (torch.arange(4, device=device) + turns.view(-1, 1)) % 4  # corner i goes where corner i+turns was
        moved = scaled.gather(1, order.unsqueeze(-1).expand(n, 4, 2)) + moves
        return {"corners": moved, "scale": s, "turns": turns, "moves": moves}

    def matrix(self, params, height, width):
        moved = params["corners"]
        corners = image_corners(height, width, moved).expand_as(moved)
        return homography_from_points(corners, moved)

    def _stats(self, height: int, width: int, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rx, ry = width / self.REFERENCE_SIZE, height / self.REFERENCE_SIZE
        mean = torch.tensor(self.MEAN, dtype=ref.dtype, device=ref.device) * torch.tensor(
            [1, 1, rx, 1, 1, ry, 1, 1], dtype=ref.dtype, device=ref.device)
        std = torch.tensor(self.STD, dtype=ref.dtype, device=ref.device) * torch.tensor(
            [1, 1, rx, 1, 1, ry, 1 / rx, 1 / ry], dtype=ref.dtype, device=ref.device)
        return mean, std

    def encode(self, params, height, width):
        inverse = torch.linalg.inv(self.matrix(params, height, width))
        coeffs = (inverse / inverse[:, 2:, 2:]).flatten(1)[:, :8]  # (B, 8)
        mean, std = self._stats(height, width, coeffs)
        return (coeffs - mean) / std

    def decode(self, target, height, width):
        mean, std = self._stats(height, width, target.float())
        coeffs = target.float() * std + mean
        inverse = torch.cat([coeffs, torch.ones_like(coeffs[:, :1])], 1).view(-1, 3, 3)
        matrix = torch.linalg.inv(inverse)
        return matrix / matrix[:, 2:, 2:]  # the scale that matrix() gives: last entry 1
