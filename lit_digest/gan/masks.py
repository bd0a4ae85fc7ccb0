"""Training masks for free-form face editing: brush strokes, boxes and face regions (1 = erased).

- **Brush strokes**: the free-form mask algorithm of Yu et al. (arXiv 1806.03589, section 3.3,
  algorithm 1) with the official parameters (JiahuiYu/generative_inpainting, ``brush_stroke_mask``):
  1-3 strokes of 4-11 vertices, turning by 2pi/5 +- up to 2pi/15 at each vertex, segment lengths
  ~ N(r, r/2) clipped to [0, 2r] with ``r = sqrt(H^2 + W^2) / 8``, widths 12-40 px at 256 px (scaled
  with the image), round joints, random flips.
- **Boxes**: the official ``random_bbox`` / ``bbox2mask``: an H/2 x W/2 box at a random position, each
  side pulled in by up to H/16 (W/16); the official code unions one with every stroke mask.
- **Face regions**: SC-FEGAN (arXiv 1902.06838, section 3.1) adds masks on face parts, drawing strokes
  from eye positions and adding hair masks from the GFC face parser. Without a parser (its weights
  are not public) we draw a jittered ellipse over one part of an *aligned* face (eyes, an eye, nose,
  mouth, hair) at positions given as fractions of the image, CelebA-HQ's alignment by default.

A mask is redrawn until its area is within ``[min_area, max_area]`` (a fraction of the image); after
``max_tries`` draws it falls back to a centred box of the middle area, so every mask returned is in range
(up to the box's rounding to whole pixels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["MaskConfig", "FACE_REGIONS", "brush_stroke_mask", "box_mask", "face_region_mask", "random_mask"]

# (centre x, centre y, radius x, radius y) as fractions of an aligned face image (CelebA-HQ; also fits
# the centre crops of the AT&T faces).
FACE_REGIONS: dict[str, tuple[float, float, float, float]] = {
    "eyes": (0.5, 0.45, 0.3, 0.09),
    "left_eye": (0.36, 0.45, 0.12, 0.08),
    "right_eye": (0.64, 0.45, 0.12, 0.08),
    "nose": (0.5, 0.6, 0.09, 0.12),
    "mouth": (0.5, 0.76, 0.17, 0.08),
    "hair": (0.5, 0.08, 0.5, 0.2),
}


@dataclass(frozen=True)
class MaskConfig:
    """How training masks are drawn (``data.init_args.masks`` in a config).

    Args:
        min_area, max_area: the accepted fraction of erased pixels.
        box_prob: chance of adding a box (the official DeepFill v2 code: always).
        face_region_prob: chance of adding a face-region ellipse (SC-FEGAN's face masks).
        max_strokes, min_vertices, max_vertices, min_width, max_width: brush strokes; widths in pixels
            at 256 px, scaled with the image's shorter side.
        regions: face regions to choose from (default ``FACE_REGIONS``), fractions of the image.
        jitter: random shift and scale of a region, as a fraction of its radius.
        max_tries: draws before falling back to a box of the middle area.
    """

    min_area: float = 0.05
    max_area: float = 0.6
    box_prob: float = 0.5
    face_region_prob: float = 0.5
    max_strokes: int = 3
    min_vertices: int = 4
    max_vertices: int = 11
    min_width: float = 12.0
    max_width: float = 40.0
    regions: dict[str, tuple[float, float, float, float]] = field(default_factory=lambda: dict(FACE_REGIONS))
    jitter: float = 0.3
    max_tries: int = 20

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_area < self.max_area <= 1.0:
            raise ValueError(f"masks need 0 <= min_area < max_area <= 1, got {self.min_area}, {self.max_area}")
        if not (0 <= self.box_prob <= 1 and 0 <= self.face_region_prob <= 1):
            raise ValueError("masks.box_prob and masks.face_region_prob are probabilities in [0, 1]")
        if not (1 <= self.max_strokes and 2 <= self.min_vertices <= self.max_vertices):
            raise ValueError("masks need max_strokes >= 1 and 2 <= min_vertices <= max_vertices")
        if not 0 < self.min_width <= self.max_width:
            raise ValueError("masks need 0 < min_width <= max_width")


def brush_stroke_mask(rng: np.random.Generator, height: int, width: int, cfg: MaskConfig = MaskConfig()
                      ) -> np.ndarray:
    """Free-form brush strokes (module docstring): ``(H, W)`` float32 in {0, 1}."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    radius = math.sqrt(height ** 2 + width ** 2) / 8
    scale = min(height, width) / 256
    mean_angle, angle_range = 2 * math.pi / 5, 2 * math.pi / 15
    for _ in range(rng.integers(1, cfg.max_strokes + 1)):
        vertices = int(rng.integers(cfg.min_vertices, cfg.max_vertices + 1))
        angle_min = mean_angle - rng.uniform(0, angle_range)
        angle_max = mean_angle + rng.uniform(0, angle_range)
        points = [(float(rng.uniform(0, width)), float(rng.uniform(0, height)))]
        for i in range(vertices):
            turn = rng.uniform(angle_min, angle_max)
            angle = 2 * math.pi - turn if i % 2 == 0 else turn
            length = float(np.clip(rng.normal(radius, radius / 2), 0, 2 * radius))
            x = float(np.clip(points[-1][0] + length * math.cos(angle), 0, width - 1))
            y = float(np.clip(points[-1][1] + length * math.sin(angle), 0, height - 1))
            points.append((x, y))
        stroke = max(1, round(rng.uniform(cfg.min_width, cfg.max_width) * scale))
        draw.line(points, fill=1, width=stroke)
        for x, y in points:  # round joints
            draw.ellipse((x - stroke / 2, y - stroke / 2, x + stroke / 2, y + stroke / 2), fill=1)
    mask = np.asarray(canvas, dtype=np.float32)
    if rng.random() < 0.5:
        mask = mask[:, ::-1]
    if rng.random() < 0.5:
        mask = mask[::-1, :]
    return np.ascontiguousarray(mask)


def box_mask(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """An ``H/2 x W/2`` box at a random position, each side pulled in by up to ``H/16`` (``W/16``): ``(H, W)``."""
    box_h, box_w = height // 2, width // 2
    top, left = int(rng.integers(0, height - box_h + 1)), int(rng.integers(0, width - box_w + 1))
    dh, dw = int(rng.integers(0, height // 16 + 1)), int(rng.integers(0, width // 16 + 1))
    mask = np.zeros((height, width), np.float32)
    mask[top + dh: top + box_h - dh, left + dw: left + box_w - dw] = 1
    return mask


def face_region_mask(rng: np.random.Generator, height: int, width: int, cfg: MaskConfig = MaskConfig(),
                     region: str | None = None) -> np.ndarray:
    """A filled ellipse over one face region (random unless named), jittered: ``(H, W)`` in {0, 1}."""
    names = sorted(cfg.regions)
    name = region if region is not None else names[int(rng.integers(len(names)))]
    cx, cy, rx, ry = cfg.regions[name]
    j = cfg.jitter
    cx, cy = cx + rng.uniform(-j, j) * rx, cy + rng.uniform(-j, j) * ry
    rx, ry = rx * rng.uniform(1 - j, 1 + j), ry * rng.uniform(1 - j, 1 + j)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    inside = ((cols + 0.5) / width - cx) ** 2 / rx ** 2 + ((rows + 0.5) / height - cy) ** 2 / ry ** 2 <= 1
    return inside.astype(np.float32)


def _centred_box(height: int, width: int, area: float) -> np.ndarray:
    side = math.sqrt(area)
    h, w = max(1, round(height * side)), max(1, round(width * side))
    top, left = (height - h) // 2, (width - w) // 2
    mask = np.zeros((height, width), np.float32)
    mask[top: top + h, left: left + w] = 1
    return mask


def random_mask(rng: np.random.Generator, height: int, width: int, cfg: MaskConfig = MaskConfig()) -> np.ndarray:
    """Strokes, plus a box with ``box_prob`` and a face region with ``face_region_prob``, redrawn until the
    erased fraction is within ``[min_area, max_area]``: ``(H, W)`` float32 in {0, 1}."""
    for _ in range(cfg.max_tries):
        mask = brush_stroke_mask(rng, height, width, cfg)
        if rng.random() < cfg.box_prob:
            mask = np.maximum(mask, box_mask(rng, height, width))
        if rng.random() < cfg.face_region_prob:
            mask = np.maximum(mask, face_region_mask(rng, height, width, cfg))
        if cfg.min_area <= mask.mean() <= cfg.max_area:
            return mask
    return _centred_box(height, width, (cfg.min_area + cfg.max_area) / 2)
