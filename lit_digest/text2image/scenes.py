"""Procedural scenes with captions: one shape on a background, each image drawn from seeded attributes.

The offline stand-in for the web's captioned images behind VQGAN+CLIP (arXiv 2204.08583). Every scene has

    shape       circle, square, triangle
    colour      red, green, blue, yellow, purple, orange
    position    left, right, top, bottom, centre
    size        small, large
    background  black, grey, white
    style       flat (one fill colour, an even background) or shaded (lit from the top left: Lambert and
                specular shading of the shape seen as a dome or a bevelled solid, a soft drop shadow, a
                background lit unevenly)

and small continuous jitter (offset, scale, rotation, tint) so that no two images are alike. The caption
says every attribute in words; the style the way the web says it: shaded scenes end with "unreal engine"
(the phrase that, on the web, comes with rendered images: the digest's "unreal engine" trick), flat scenes
with "flat" half of the time and with nothing otherwise. A prompt without a style word then means "the usual
image", mostly flat, and adding "unreal engine" asks for the rendered look: the effect the experiment measures.

``render_scenes(attributes, size)`` draws any attributes (so a classifier can be trained on them, and a
prompt's attributes drawn exactly); ``sample_attributes(n, seed)`` draws them; ``caption(row, ...)`` writes one.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["ATTRIBUTES", "STYLE_WORD", "sample_attributes", "render_scenes", "caption", "prompt_for",
           "scene_batch"]

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "shape": ("circle", "square", "triangle"),
    "colour": ("red", "green", "blue", "yellow", "purple", "orange"),
    "position": ("left", "right", "top", "bottom", "centre"),
    "size": ("small", "large"),
    "background": ("black", "grey", "white"),
    "style": ("flat", "shaded"),
}
STYLE_WORD = "unreal engine"

_RGB = {"red": (0.86, 0.12, 0.12), "green": (0.15, 0.72, 0.2), "blue": (0.15, 0.3, 0.9), "yellow": (0.93, 0.85, 0.1),
        "purple": (0.6, 0.18, 0.78), "orange": (0.97, 0.52, 0.08)}
_BACKGROUND = {"black": 0.06, "grey": 0.5, "white": 0.94}
_CENTRE = {"left": (0.27, 0.5), "right": (0.73, 0.5), "top": (0.5, 0.27), "bottom": (0.5, 0.73), "centre": (0.5, 0.5)}
_RADIUS = {"small": 0.13, "large": 0.22}  # of the image side
_PLACE = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom",
          "centre": "in the centre"}


def sample_attributes(n: int, seed: int) -> np.ndarray:
    """``(n, 6)`` int64 attribute indices (columns in ``ATTRIBUTES``' order), uniform and independent."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, len(v), n) for v in ATTRIBUTES.values()], axis=1).astype(np.int64)


def _names(row: np.ndarray) -> dict[str, str]:
    return {k: ATTRIBUTES[k][int(i)] for k, i in zip(ATTRIBUTES, row)}


def prompt_for(row: np.ndarray | dict[str, str], style_word: bool | None = None) -> str:
    """The caption's first template, without a style word (``style_word=None``), with ``"unreal engine"``
    (``True``) or with ``"flat"`` (``False``): the prompts of the experiment."""
    a = row if isinstance(row, dict) else _names(row)
    text = f"a {a['size']} {a['colour']} {a['shape']} {_PLACE[a['position']]}, {a['background']} background"
    if style_word is None:
        return text
    return f"{text}, {STYLE_WORD}" if style_word else f"{text}, flat"


def caption(row: np.ndarray, rng: np.random.Generator) -> str:
    """A caption of the scene ``row`` in one of three word orders; the style as the module docstring says."""
    a = _names(row)
    template = int(rng.integers(3))
    if template == 0:
        text = prompt_for(a)
    elif template == 1:
        text = f"{a['colour']} {a['shape']}, {a['size']}, {_PLACE[a['position']]} of a {a['background']} background"
    else:
        text = f"a {a['background']} background with a {a['size']} {a['colour']} {a['shape']} {_PLACE[a['position']]}"
    if a["style"] == "shaded":
        return f"{text}, {STYLE_WORD}"
    return f"{text}, flat" if rng.random() < 0.5 else text


def _table(key: str, values: dict) -> torch.Tensor:
    return torch.tensor([values[name] for name in ATTRIBUTES[key]], dtype=torch.float32)


@torch.no_grad()
def render_scenes(attributes: np.ndarray, size: int = 32, seed: int = 0, jitter: bool = True) -> torch.Tensor:
    """``(N, 3, size, size)`` uint8 images of the attribute rows ``(N, 6)``; ``seed`` draws the jitter."""
    a = torch.as_tensor(np.asarray(attributes), dtype=torch.long)
    n = a.shape[0]
    g = torch.Generator().manual_seed(seed)

    def jit(scale: float, *shape: int) -> torch.Tensor:
        return (torch.rand(n, *shape, generator=g) * 2 - 1) * (scale if jitter else 0.0)

    shape, colour, position, size_i, background, style = a.unbind(1)
    centre = torch.tensor([_CENTRE[p] for p in ATTRIBUTES["position"]])[position] + jit(0.05, 2)  # (N, 2) x, y
    radius = _table("size", _RADIUS)[size_i] * (1 + jit(0.15))  # (N,)
    angle = jit(math.pi / 12)  # (N,) rotation of squares and triangles
    rgb = torch.tensor([_RGB[c] for c in ATTRIBUTES["colour"]])[colour] * (1 + jit(0.08, 3))  # (N, 3)
    bg = _table("background", _BACKGROUND)[background] + jit(0.04)  # (N,)
    shaded = style == 1

    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    px = xs / size - centre[:, 0, None, None]  # (N, H, W) in image sides, from the shape's centre
    py = ys / size - centre[:, 1, None, None]
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    u, v = cos * px + sin * py, -sin * px + cos * py  # rotated coordinates
    r = radius[:, None, None]
    # signed distances (negative inside), in image sides
    circle = torch.sqrt(px**2 + py**2) - r
    square = torch.maximum(u.abs(), v.abs()) - 0.85 * r
    # equilateral triangle pointing up (y grows downwards), circumradius 1.2 r: its three edges as half-planes
    tri = torch.maximum(v, math.sqrt(3.0) / 2 * u.abs() - v / 2) - 0.6 * r
    dist = torch.where(shape[:, None, None] == 0, circle, torch.where(shape[:, None, None] == 1, square, tri))
    pixel = 1.0 / size
    alpha = (0.5 - dist / pixel).clamp(0, 1)  # (N, H, W) anti-aliased coverage

    # the shape as a height field: a dome for circles, a bevelled solid for the others; lit from the top left
    depth = (-dist / r).clamp(min=0)  # 0 on the edge, 1 at the centre
    height = torch.where(shape[:, None, None] == 0, torch.sqrt((1 - (1 - depth).clamp(0, 1) ** 2).clamp(min=0)),
                         (depth / 0.35).clamp(max=1))
    gy, gx = torch.gradient(height * r / pixel * 0.08, dim=(1, 2))
    inv = torch.rsqrt(gx**2 + gy**2 + 1)  # the normal is (-gx, -gy, 1) * inv
    light = (-0.55, -0.6, 0.58)
    lnorm = math.sqrt(sum(c * c for c in light))
    light = [c / lnorm for c in light]
    lambert = ((-gx * light[0] - gy * light[1] + light[2]) * inv).clamp(min=0)  # (N, H, W)
    half = [light[0], light[1], light[2] + 1.0]  # Blinn's half vector towards a viewer on the z axis
    hnorm = math.sqrt(sum(c * c for c in half))
    specular = ((-gx * half[0] - gy * half[1] + half[2]) * inv / hnorm).clamp(min=0) ** 24
    lit = rgb[:, :, None, None] * (0.3 + 0.95 * lambert[:, None]) + 0.55 * specular[:, None]
    fill = torch.where(shaded[:, None, None, None], lit, rgb[:, :, None, None].expand_as(lit))

    ground = bg[:, None, None].expand(n, size, size)
    falloff = 1.12 - 0.35 * torch.sqrt((xs / size) ** 2 + (ys / size) ** 2)[None]  # brighter near the light
    shift = max(1, round(0.06 * size))
    cast = torch.nn.functional.pad(alpha, (shift, 0, shift, 0))[:, :size, :size]  # moved away from the light
    shadow = torch.nn.functional.avg_pool2d(cast[:, None], 3, 1, 1)[:, 0]
    lit_ground = ground * falloff * (1 - 0.55 * shadow) + 0.03 * (1 - falloff)
    ground = torch.where(shaded[:, None, None], lit_ground, ground)
    image = alpha[:, None] * fill + (1 - alpha[:, None]) * ground[:, None]
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)


def scene_batch(n: int, size: int, seed: int) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """``n`` seeded scenes: ``(images (n, 3, size, size) uint8, attributes (n, 6), captions)``."""
    attributes = sample_attributes(n, seed)
    images = torch.cat([render_scenes(attributes[i:i + 2048], size, seed=seed * 7919 + i)
                        for i in range(0, n, 2048)]) if n else torch.zeros(0, 3, size, size, dtype=torch.uint8)
    rng = np.random.default_rng(seed + 1)
    return images, attributes, [caption(row, rng) for row in attributes]
