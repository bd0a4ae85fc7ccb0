"""kornia beside lit_digest's hand-written image ops: the largest difference on equal parameters and the speed of
each (ms per call, and ours / kornia), on CPU and on CUDA when present. docs/libraries.md holds the decision per op.

    python benchmarks/kornia_ops.py                      # CPU (and CUDA if present), about a minute on CPU
    python benchmarks/kornia_ops.py --devices cuda --repeats 50

Each row times the two calls alternately and reports the medians (the machine's load drifts). Rows (the sizes
are those the methods use):

* Canny (``gan/sketch.py``, 256 px): the part kornia can replace, blur, Sobel and non-maximum suppression
  (``canny_magnitude`` against ``kornia.filters.canny(hysteresis=False)``), timed; the difference is the share of
  pixels whose label differs in the final sketches, each magnitude followed by our per-image quantile thresholds
  and hysteresis (kornia takes one absolute threshold pair per call);
* homography from four point pairs and the warps (``ssl/aet/transforms.py``, AET's batches of 512 x 32 px):
  kornia's ``get_perspective_transform``; kornia's ``warp_perspective`` with our matrices moved to its
  pixel-centre convention (``S^-1 M S``, ``S`` a half-pixel shift), which AET's ``warp`` now is, against the
  grid sampling written here that it replaced (affine and projective matrices);
* the guided filter (``depth/boost/guided.py``) against ``kornia.filters.guided_blur`` at the official radius
  (64 px at 672 px, here scaled to 224 px: 21); the difference is over the pixels at least ``2r`` from the border
  (kornia pads the image where He et al.'s box filter shrinks the window, so they differ at the border);
* the batched views (``ssl/views.py``): each deterministic op on the same per-sample parameters, and the whole
  SimCLR view (crop, flip, jitter 0.8, grayscale 0.2, blur 0.5) against ``kornia.augmentation`` with the same
  probabilities and ranges (random draws: no difference column).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Callable

import kornia
import kornia.augmentation as K
import torch
import torch.nn.functional as F

from lit_digest.depth.boost.guided import guided_filter
from lit_digest.gan.sketch import canny_edges, canny_magnitude
from lit_digest.ssl.aet.transforms import (
    AffineTransformation,
    ProjectiveTransformation,
    apply_matrix,
    homography_from_points,
    warp,
)
from lit_digest.ssl.views import ViewAugment, _adjust_hue, _blend, _gaussian_blur, _grayscale


def kornia_canny(images: torch.Tensor, sigma: float = 1.0, low_quantile: float = 0.6,
                 high_quantile: float = 0.85) -> torch.Tensor:
    """``canny_edges`` with kornia's blur, Sobel and suppression; our thresholds and hysteresis."""
    radius = max(1, round(3 * sigma))
    thin, _ = kornia.filters.canny(images, 1e-6, 1e-6, kernel_size=2 * radius + 1, sigma=(sigma, sigma),
                                   hysteresis=False, eps=0.0)
    edges = torch.zeros_like(thin)
    for b in range(thin.shape[0]):
        values = thin[b][thin[b] > 0]
        if values.numel() == 0:
            continue
        low, high = torch.quantile(values, torch.tensor([low_quantile, high_quantile], device=values.device))
        tol = 1e-4 * values.max()
        weak, strong = (thin[b] >= low - tol) & (thin[b] > 0), thin[b] >= high - tol
        while True:
            grown = weak & (F.max_pool2d(strong.float()[None], 3, 1, 1)[0] > 0)
            if torch.equal(grown, strong):
                break
            strong = grown
        edges[b] = strong.float()
    return edges


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def case_canny(device: str):
    g = torch.Generator().manual_seed(0)
    # smooth random shapes rather than noise: blurred blobs at 256 px, as faces give edges
    x = F.interpolate(torch.rand(8, 3, 16, 16, generator=g), size=256, mode="bicubic").clamp(0, 1).to(device)

    def theirs():
        return kornia.filters.canny(x, 1e-6, 1e-6, kernel_size=7, sigma=(1.0, 1.0), hysteresis=False, eps=0.0)[0]

    def sketches_differ(a, b):  # the final sketches, thresholds and hysteresis (ours) after each magnitude
        return float((canny_edges(x) != kornia_canny(x)).float().mean())

    return lambda: canny_magnitude(x), theirs, sketches_differ, "share of sketch pixels"


def case_homography(device: str):
    t = ProjectiveTransformation()
    moved = t.sample(512, 32, 32, device, torch.Generator(device).manual_seed(0))["corners"]
    corners = torch.tensor([[0.0, 0.0], [32, 0], [32, 32], [0, 32]], device=device).expand_as(moved)

    def theirs():
        h = kornia.geometry.transform.get_perspective_transform(corners, moved)
        return h / h[:, 2:, 2:]

    return lambda: homography_from_points(corners, moved), theirs, max_abs, "max |diff|"


def grid_sampling_warp(x: torch.Tensor, matrix: torch.Tensor, fill: float) -> torch.Tensor:
    """AET's hand-written warp before kornia's replaced it: output pixel centres mapped back by ``M^-1`` and
    sampled bilinearly, ``fill`` outside."""
    b, _, h, w = x.shape
    to_unit = torch.tensor([[2.0 / w, 0.0, -1.0], [0.0, 2.0 / h, -1.0], [0.0, 0.0, 1.0]], device=x.device)
    inverse = to_unit @ torch.linalg.inv(matrix) @ torch.linalg.inv(to_unit)
    identity = torch.eye(2, 3, device=x.device).expand(b, 2, 3)
    grid = F.affine_grid(identity, [b, 1, h, w], align_corners=False).view(b, h * w, 2)
    grid = apply_matrix(inverse, grid).view(b, h, w, 2)
    return F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill


def case_warp(device: str, transformation):
    g = torch.Generator(device).manual_seed(0)
    x = torch.rand(512, 3, 32, 32, device=device, generator=g)
    matrix = transformation.matrix(transformation.sample(512, 32, 32, device, g), 32, 32)
    return lambda: grid_sampling_warp(x, matrix, 0.5), lambda: warp(x, matrix, 0.5), max_abs, "max |diff|"


def case_guided(device: str, size: int = 224, radius: int = 21):
    g = torch.Generator().manual_seed(0)
    guide = F.interpolate(torch.rand(1, 1, 28, 28, generator=g), size=size, mode="bicubic").to(device)
    source = (guide + 0.1 * torch.rand(1, 1, size, size, generator=g).to(device)).clamp(0, 1)
    inner = slice(2 * radius, -2 * radius)
    return (lambda: guided_filter(guide, source, radius, 1e-8),
            lambda: kornia.filters.guided_blur(guide, source, 2 * radius + 1, 1e-8),
            lambda a, b: max_abs(a[..., inner, inner], b[..., inner, inner]), "max |diff| inside")


def view_inputs(device: str, n: int = 256):
    g = torch.Generator(device).manual_seed(0)
    x = torch.rand(n, 3, 32, 32, device=device, generator=g)
    factors = 0.6 + 0.8 * torch.rand(n, device=device, generator=g)
    return x, factors, g


def case_jitter(device: str):
    x, f, _ = view_inputs(device)
    hue = (f - 1) / 4  # in [-0.1, 0.1] of a turn

    def ours():
        y = _blend(x, torch.zeros_like(x), f)
        y = _blend(y, _grayscale(y).mean(dim=(1, 2, 3), keepdim=True).expand_as(y), f)
        y = _blend(y, _grayscale(y).expand_as(y), f)
        return _adjust_hue(y, hue)

    def theirs():
        y = kornia.enhance.adjust_brightness_accumulative(x, f)
        y = kornia.enhance.adjust_contrast_with_mean_subtraction(y, f)
        y = kornia.enhance.adjust_saturation_with_gray_subtraction(y, f)
        return kornia.enhance.adjust_hue(y, hue * 2 * math.pi)

    return ours, theirs, max_abs, "max |diff|"


def case_blur(device: str):
    x, f, _ = view_inputs(device, 64)
    x = F.interpolate(x, size=96, mode="bilinear")
    sigma = 0.1 + f  # per sample, BYOL's range at 96 px (kernel 9)
    return (lambda: _gaussian_blur(x, sigma, 9),
            lambda: kornia.filters.gaussian_blur2d(x, (9, 9), sigma[:, None].expand(-1, 2), border_type="reflect"),
            max_abs, "max |diff|")


def case_grayscale(device: str):
    x, _, _ = view_inputs(device)
    return lambda: _grayscale(x), lambda: kornia.color.rgb_to_grayscale(x), max_abs, "max |diff|"


def case_solarize(device: str):
    x, _, _ = view_inputs(device)
    return (lambda: torch.where(x >= 0.5, 1.0 - x, x), lambda: kornia.enhance.solarize(x, 0.5), max_abs,
            "max |diff|")


def case_views(device: str):
    x, _, g = view_inputs(device)
    ours = ViewAugment(crop_size=32, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2, blur_p=0.5)
    theirs = K.AugmentationSequential(
        K.RandomResizedCrop((32, 32), scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), cropping_mode="resample"),
        K.RandomHorizontalFlip(p=0.5),
        K.ColorJitter(0.8, 0.8, 0.8, 0.2, p=0.8),
        K.RandomGrayscale(p=0.2),
        K.RandomGaussianBlur((3, 3), (0.1, 2.0), p=0.5),
    ).to(device)
    return lambda: ours(x, g), lambda: theirs(x), None, "random draws"


CASES: dict[str, tuple[str, Callable]] = {
    "Canny edges (gan/sketch.py)": ("filters.canny", case_canny),
    "homography from 4 point pairs (ssl/aet)": ("geometry.transform.get_perspective_transform", case_homography),
    "warp, projective (ssl/aet; kornia's since this comparison)": (
        "geometry.transform.warp_perspective", lambda d: case_warp(d, ProjectiveTransformation())),
    "warp, affine (ssl/aet; kornia's since this comparison)": (
        "geometry.transform.warp_perspective", lambda d: case_warp(d, AffineTransformation())),
    "guided filter (depth/boost)": ("filters.guided_blur", case_guided),
    "colour jitter, 4 ops (ssl/views.py)": ("enhance.adjust_*", case_jitter),
    "grayscale (ssl/views.py)": ("color.rgb_to_grayscale", case_grayscale),
    "Gaussian blur, per-sample sigma (ssl/views.py)": ("filters.gaussian_blur2d", case_blur),
    "solarize (ssl/views.py)": ("enhance.solarize", case_solarize),
    "SimCLR view, whole pipeline (ssl/views.py)": ("augmentation.AugmentationSequential", case_views),
}


def milliseconds(ours: Callable[[], torch.Tensor], theirs: Callable[[], torch.Tensor], device: str,
                 repeats: int) -> tuple[float, float]:
    """Median ms per call of each, the two calls alternating so that both see the same machine load."""

    def once(fn: Callable[[], torch.Tensor]) -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return 1000 * (time.perf_counter() - start)

    with torch.no_grad():
        ours(), theirs()  # warm-up
        times = [(once(ours), once(theirs)) for _ in range(repeats)]
    return statistics.median(t for t, _ in times), statistics.median(t for _, t in times)


def run(devices: list[str], repeats: int, only: str | None = None) -> list[dict]:
    rows = []
    for device in devices:
        for name, (theirs_name, case) in CASES.items():
            if only and only.lower() not in name.lower():
                continue
            ours, theirs, diff, unit = case(device)
            with torch.no_grad():
                difference = diff(ours(), theirs()) if diff is not None else float("nan")
            n = max(1, repeats // 10) if "guided" in name and device == "cpu" else repeats
            ms_ours, ms_theirs = milliseconds(ours, theirs, device, n)
            rows.append({"device": device, "op": name, "kornia": f"kornia.{theirs_name}", "difference": difference,
                         "unit": unit, "ours_ms": ms_ours, "kornia_ms": ms_theirs, "ratio": ms_theirs / ms_ours})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser.add_argument("--only", help="the rows whose op contains this text")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"kornia {kornia.__version__}, torch {torch.__version__}, {args.threads} CPU thread(s)")
    print("| device | op | kornia | difference | ours ms | kornia ms | kornia / ours |")
    print("|---|---|---|---:|---:|---:|---:|")
    for r in run(args.devices, args.repeats, args.only):
        diff = "-" if math.isnan(r["difference"]) else f"{r['difference']:.2g} ({r['unit']})"
        print(f"| {r['device']} | {r['op']} | `{r['kornia']}` | {diff} | {r['ours_ms']:.2f} | {r['kornia_ms']:.2f} "
              f"| {r['ratio']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
