"""The boosting pipeline's small parts against plain loops written here (make mutate on depth/boost/pipeline.py):
the grey level, the Sobel magnitude, the per-image edge threshold, the box density of the integral image, the
blend mask's blurred margin at many sizes (and its device), the merge network's [-1, 1] mapping, the least-squares
fit, the resize modes, the clamp before the estimator, and boost's target resolution and bad-batch message."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lit_digest.depth.boost import pipeline
from lit_digest.depth.boost.pipeline import (
    BoostSettings,
    blend_mask,
    boost,
    edge_map,
    estimate,
    merge_estimates,
    resize,
    resolution_search,
    select_patches,
)
from tests.depth.test_pipeline import SETTINGS, Gray, Pick, checkerboard


def _reflect(i: int, n: int) -> int:
    return -i if i < 0 else 2 * (n - 1) - i if i >= n else i


def _naive_gray(image: torch.Tensor) -> list[list[float]]:
    r, g, b = image[0].tolist()
    return [[0.2989 * r[i][j] + 0.5870 * g[i][j] + 0.1140 * b[i][j] for j in range(len(r[0]))]
            for i in range(len(r))]


def _naive_sobel(gray: list[list[float]]) -> list[list[float]]:
    h, w = len(gray), len(gray[0])

    def at(i, j):
        return gray[_reflect(i, h)][_reflect(j, w)]

    out = []
    for i in range(h):
        row = []
        for j in range(w):
            gx = sum(s * (at(i + d, j + 1) - at(i + d, j - 1)) for d, s in ((-1, 1), (0, 2), (1, 1)))
            gy = sum(s * (at(i + 1, j + d) - at(i - 1, j + d)) for d, s in ((-1, 1), (0, 2), (1, 1)))
            row.append(abs(gx) + abs(gy))
        out.append(row)
    return out


def test_edge_map_thresholds_each_image_at_40_percent_of_its_own_range():
    torch.manual_seed(0)
    y, x = torch.meshgrid(torch.arange(12.0), torch.arange(16.0), indexing="ij")
    ramp = (0.05 * x + 0.02 * y).expand(3, 12, 16)
    images = torch.stack([ramp + 0.3 * torch.rand(3, 12, 16), 2 * ramp + torch.rand(3, 12, 16)])
    images[1, 0] *= 0.2  # the channels weigh differently
    grads = torch.tensor([[_naive_sobel(_naive_gray(images[b: b + 1]))] for b in range(2)])  # (2, 1, 12, 16)
    shrunk = F.interpolate(grads, size=(4, 8), mode="area")  # the corners' 0 averaged away: lo > 0
    assert shrunk.flatten(1).min(1).values.gt(0.1).all()
    for got, grad in ((edge_map(images), grads), (edge_map(images, (4, 8)), shrunk)):
        assert got.shape == grad.shape
        for b in range(2):
            lo, hi = float(grad[b].min()), float(grad[b].max())
            expected = (grad[b] >= lo + 0.4 * (hi - lo)).float()
            assert torch.equal(got[b], expected), b


def test_box_density_of_the_integral_image_equals_a_plain_sum():
    torch.manual_seed(1)
    grad = torch.rand(7, 9)
    integral = pipeline._integral(grad)
    for x, y, w, h in [(0, 0, 9, 7), (2, 1, 3, 5), (4, 3, 5, 2), (0, 4, 2, 3)]:
        plain = sum(float(grad[i, j]) for i in range(y, y + h) for j in range(x, x + w)) / (w * h)
        assert pipeline._density(integral, x, y, w, h) == pytest.approx(plain, rel=1e-9)


def _naive_blend_mask(h: int, w: int) -> torch.Tensor:
    top, left = int(0.15 * h), int(0.15 * w)
    mask = [[1.0 if top <= i < h - top and left <= j < w - left else 0.0 for j in range(w)] for i in range(h)]
    sigma = h / 16
    pad = min(math.ceil(2 * max(int(h / 16), 1)), h - 1, w - 1)
    if pad > 0:
        g = [math.exp(-0.5 * (k / sigma) ** 2) for k in range(-pad, pad + 1)]
        mask = [[sum(g[k + pad] * row[_reflect(j + k, w)] for k in range(-pad, pad + 1)) for j in range(w)]
                for row in mask]
        mask = [[sum(g[k + pad] * mask[_reflect(i + k, h)][j] for k in range(-pad, pad + 1)) for j in range(w)]
                for i in range(h)]
    flat = [v for row in mask for v in row]
    lo, hi = min(flat), max(flat)
    return torch.tensor([[(v - lo) / max(hi - lo, 1e-12) for v in row] for row in mask])


@pytest.mark.parametrize("h, w", [(40, 56), (48, 20), (24, 30), (10, 7), (2, 9), (9, 2), (1, 5), (5, 1)])
def test_blend_mask_equals_a_plain_separable_gaussian_blur(h, w):
    got = blend_mask(h, w)
    assert got.shape == (1, 1, h, w)
    torch.testing.assert_close(got[0, 0], _naive_blend_mask(h, w), atol=1e-5, rtol=1e-4)


def test_blend_mask_blurs_a_two_row_mask_beyond_its_margin():
    mask = blend_mask(2, 40)[0, 0]  # sigma 1/8: the row blur's taps at +-1 weigh exp(-32)
    assert mask[0, 4] == 0 and 0 < mask[0, 5] < 1e-12 and mask[0, 6] == 1


def test_blend_mask_is_made_on_the_requested_device_in_float32(monkeypatch):
    arange, devices = torch.arange, []

    def spy(*args, **kwargs):
        devices.append(kwargs.get("device"))
        return arange(*args, **kwargs)

    monkeypatch.setattr(torch, "arange", spy)
    assert blend_mask(12, 8, device="meta").device.type == "meta"
    assert devices == ["meta"]  # the Gaussian's taps too
    monkeypatch.undo()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:  # mask and kernel in one dtype (before, a float64 default made a float64 mask for a float32 kernel)
        assert blend_mask(12, 8).dtype == torch.float32
    finally:
        torch.set_default_dtype(previous)


def test_merge_estimates_maps_to_and_from_minus_one_one():
    torch.manual_seed(2)
    low, high = 3 * torch.rand(1, 1, 4, 4) + 1, torch.rand(1, 1, 4, 4) - 2
    seen = []

    def half_of_the_first(x):
        seen.append(x)
        return 0.5 * x[:, :1]

    out = merge_estimates(half_of_the_first, low, high)
    n_low = (low - low.min()) / (low.max() - low.min())
    n_high = (high - high.min()) / (high.max() - high.min())
    torch.testing.assert_close(seen[0], torch.cat([2 * n_low - 1, 2 * n_high - 1], 1))
    torch.testing.assert_close(out, (0.5 * (2 * n_low - 1) + 1) / 2)


def test_linear_fit_of_a_small_spread_keeps_the_dtype():
    torch.manual_seed(3)
    source = 0.01 * torch.rand(1, 1, 4, 4)  # the squared deviations sum to far below 1
    target = -3.0 * source + 0.5
    fitted = pipeline._linear_fit(source, target)
    assert fitted.dtype == torch.float32
    torch.testing.assert_close(fitted, target, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("shape, size", [((4, 6), (6, 4)), ((4, 8), (2, 6)), ((4, 8), (4, 6)), ((8, 4), (6, 4)),
                                         ((8, 4), (6, 6)), ((6, 6), (3, 2))])
def test_resize_shrinks_by_area_only_when_no_side_grows(shape, size):
    torch.manual_seed(4)
    x = torch.rand(1, 1, *shape)
    grows = size[0] > shape[0] or size[1] > shape[1]
    mode = {"mode": "bicubic", "align_corners": False} if grows else {"mode": "area"}
    torch.testing.assert_close(resize(x, size), F.interpolate(x, size=size, **mode))


def test_estimate_feeds_the_estimator_an_image_clamped_to_zero_one():
    image = torch.zeros(1, 3, 8, 8)
    image[..., 2:6, 2:6] = 1.0  # a sharp square: bicubic enlargement overshoots both ways
    gray = Gray()
    seen = []
    gray.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    estimate(gray, image, 32, multiple_of=4)
    estimate(gray, torch.rand(1, 3, 50, 80), 64)  # sides rounded to the default multiple, 32
    assert gray.sizes[-1] == (32, 64)
    raw = F.interpolate(image, size=(32, 32), mode="bicubic", align_corners=False)
    assert raw.min() < -0.05 and raw.max() > 1.05
    torch.testing.assert_close(seen[0], raw.clamp(0, 1))


def test_boost_target_resolution_and_its_patches_follow_section_6():
    image = torch.full((1, 3, 48, 64), 0.3)
    image[..., 10:40, 8:60] = checkerboard(52, 2)[..., :30, :]
    for settings in (SETTINGS, BoostSettings(16, 32, max_size=3000, max_resolution=120, multiple_of=4)):
        r_x, patch_scale = resolution_search(image, settings)
        factor = max(min(1.0, 4 * patch_scale * r_x / settings.max_size), 0.2)
        target = min(2 * r_x / factor, settings.max_resolution)
        out = boost(Gray(), Pick(1), image, settings)
        assert out["resolution"] == r_x
        assert out["target"] == (round(target * 48 / 64), round(target))
        big = resize(image, out["target"]).clamp(0, 1)
        assert out["patches"] == select_patches(big, settings.receptive_field, factor)


def test_boost_at_max_resolution_equal_to_r_x_still_refines_and_passes_the_device(monkeypatch):
    image = torch.full((1, 3, 48, 48), 0.3)
    image[..., 10:40, 8:44] = checkerboard(36, 2)[..., :30, :]
    r_x, _ = resolution_search(image, SETTINGS)
    devices = []

    def spy(h, w, device=None):
        devices.append(device)
        return blend_mask(h, w, device)

    monkeypatch.setattr(pipeline, "blend_mask", spy)
    out = boost(Gray(), Pick(1), image, BoostSettings(16, 32, max_size=128, max_resolution=r_x, multiple_of=4))
    assert out["target"] == (r_x, r_x) and out["patches"]
    assert devices and all(d == image.device for d in devices)


def test_boost_names_the_batch_it_cannot_take():
    with pytest.raises(ValueError, match="one image at a time.*batch of 2"):
        boost(Gray(), Pick(1), torch.rand(2, 3, 16, 16), SETTINGS)


def _naive_dilate(mask: torch.Tensor, k: int) -> torch.Tensor:
    """OpenCV's ``dilate`` with a ``k x k`` box, its anchor at the centre ``k // 2``: the maximum over rows and
    columns ``[i - k // 2, i + (k - 1) // 2]`` inside the image (a box is separable: columns, then rows)."""
    h, w = mask.shape
    across = torch.stack([mask[:, max(0, j - k // 2): j + (k - 1) // 2 + 1].amax(1) for j in range(w)], 1)
    return torch.stack([across[max(0, i - k // 2): i + (k - 1) // 2 + 1].amax(0) for i in range(h)], 0)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 12])
def test_dilate_takes_the_box_maximum_around_opencvs_anchor(k):
    torch.manual_seed(5)
    mask = (torch.rand(14, 17) > 0.93).float()
    mask[0, 16] = mask[13, 0] = 1.0  # corners
    assert torch.equal(pipeline._dilate(mask[None, None], k)[0, 0], _naive_dilate(mask, k))


def _naive_resolution_search(image: torch.Tensor, settings: BoostSettings) -> tuple[int, float]:
    rf, (h, w) = settings.receptive_field, image.shape[-2:]
    edges = edge_map(image, (min(h, w), min(h, w)))
    limit = min(settings.max_size, settings.max_upscale * max(h, w))
    best, n, grid = rf, 12, F.adaptive_max_pool2d(edges, 12)[0, 0]
    while n * rf / 12 < limit:
        grid = F.adaptive_max_pool2d(edges, n)[0, 0]
        if 1 - float(_naive_dilate(grid, 12).mean()) > settings.context_threshold:
            break
        best, n = round(n * rf / 12), n + 6
    return best, float(_naive_dilate(grid, 3).mean())


def test_resolution_search_equals_a_plain_loop():
    torch.manual_seed(6)
    wide = torch.full((1, 3, 40, 72), 0.5)
    wide[..., 5:30, 10:40] = torch.rand(1, 3, 25, 30).round()
    tiny = torch.zeros(1, 3, 4, 4)  # 3 x 4 px is below one receptive field: no search step
    tiny[..., 1:3, 2:] = 1.0
    cases = [(wide, BoostSettings(16, 32, max_size=3000, multiple_of=4)),
             (wide[..., :40], BoostSettings(16, 32, max_size=3000, multiple_of=4)),
             (checkerboard(24, 2), BoostSettings(16, 32, max_size=3000, context_threshold=0.0, multiple_of=4)),
             (tiny, BoostSettings(16, 32, multiple_of=4))]
    for image, settings in cases:
        r_x, scale = resolution_search(image, settings)
        expected_r, expected_scale = _naive_resolution_search(image, settings)
        assert r_x == expected_r and scale == pytest.approx(expected_scale, abs=1e-6)
    assert resolution_search(checkerboard(24, 2), cases[2][1])[0] == 64  # every cell has context: up to 3 x 24 px
    assert resolution_search(tiny, cases[3][1]) == (16, pytest.approx(_naive_resolution_search(tiny, cases[3][1])[1]))


def _naive_patches(image: torch.Tensor, rf: int, factor: float) -> list[tuple[int, int, int, int]]:
    grad = pipeline._sobel(pipeline._gray(image))[0, 0]  # the parts above are checked on their own
    grad = torch.where(grad < grad[grad > 1e-6].mean(), torch.zeros_like(grad), grad)
    height, width = grad.shape
    image_density = grad.mean().item()

    def density(x, y, s):
        return float(grad[y: y + s, x: x + s].double().sum()) / (s * s)

    stride, step = round(0.75 * rf), max(1, int(rf / 12 / factor))
    patches = []
    for cx in range(rf, width - rf, stride):
        for cy in range(rf, height - rf, stride):
            x, y, s = cx - rf, cy - rf, 2 * rf
            if density(x, y, s) < image_density:
                continue
            while True:
                nx, ny, ns = x - step // 2, y - step // 2, s + step
                if nx < 0 or ny < 0 or ny + ns >= height or nx + ns >= width or density(nx, ny, ns) < image_density:
                    break
                x, y, s = nx, ny, ns
            patches.append((x, y, s, s))
    return sorted(patches, key=lambda p: p[2], reverse=True)


@pytest.mark.parametrize("rf, factor, left", [(16, 1.0, 30), (24, 1.0, 30), (16, 0.4, 30), (12, 0.25, 30),
                                              (16, 0.4, 0), (12, 0.25, 0)])
def test_select_patches_equals_a_plain_loop(rf, factor, left):
    torch.manual_seed(7)
    image = torch.full((1, 3, 80, 96), 0.4)
    image[..., 20:70, left: left + 60] = 0.4 + 0.6 * torch.rand(1, 3, 50, 60) * torch.linspace(1, 0.5, 60)
    got = select_patches(image, rf, factor) if factor != 1.0 else select_patches(image, rf)  # 1: the default
    assert len(got) > 2 and got == _naive_patches(image, rf, factor)  # RF 24: the default's step 2 (factor 2: 1)


def _with_gradient(monkeypatch, grad: torch.Tensor) -> torch.Tensor:
    """An image whose Sobel magnitude is ``grad`` (H, W): ties at each threshold, exact whatever the rounding."""
    monkeypatch.setattr(pipeline, "_sobel", lambda gray: grad.view(1, 1, *grad.shape))
    return torch.zeros(1, 3, *grad.shape)


def test_edge_map_counts_a_gradient_at_exactly_40_percent_of_the_range(monkeypatch):
    grad = torch.tensor([[0.0, 0.4, 1.0, 0.3]])  # lo 0, hi 1: the threshold is the stored 0.4 itself
    assert edge_map(_with_gradient(monkeypatch, grad)).flatten().tolist() == [0, 1, 1, 0]  # ``grad >= middle``


def test_select_patches_breaks_each_tie_as_the_official_code(monkeypatch):
    # a uniform texture: every tile exactly as dense as the image is kept (``cgf >= gf``) and grown while the
    # grown tile stays as dense (it breaks on ``cgf < gf`` only), up to the border: all 4 x 4 tiles of the grid
    uniform = _with_gradient(monkeypatch, torch.ones(40, 40))
    patches = select_patches(uniform, 8)
    assert patches == _naive_patches(uniform, 8, 1.0)
    assert len(patches) == 16 and all(max(x + w, y + h) == 39 for x, y, w, h in patches)
    # every positive gradient equal to their mean: none is zeroed (``whole_grad[whole_grad < threshold] = 0``), so
    # the tiles on the edge column are kept and those off it are flat
    edge = torch.zeros(40, 40)
    edge[:, 5] = 1.0
    patches = select_patches(_with_gradient(monkeypatch, edge), 8)
    assert patches and all(x <= 5 < x + w for x, _, w, _ in patches)
    # a gradient at the noise floor 1e-6 itself is noise (the official ``> 0`` reads float noise as detail)
    floor = torch.zeros(40, 40, dtype=torch.float64)
    floor[:, 5] = 1e-6
    assert select_patches(_with_gradient(monkeypatch, floor), 8) == []


def test_boost_scales_the_target_by_section_6s_factor(monkeypatch):
    image = torch.full((1, 3, 48, 64), 0.3)
    image[..., 10:40, 8:60] = checkerboard(52, 2)[..., :30, :]
    settings = BoostSettings(16, 32, max_size=400, max_resolution=1000, multiple_of=4)
    r_x, patch_scale = resolution_search(image, settings)
    factor = 4 * patch_scale * r_x / settings.max_size
    assert 0.3 < factor < 0.7  # neither bound applies
    seen = []
    monkeypatch.setattr(pipeline, "select_patches", lambda big, rf, f=1.0: seen.append((big.shape, f)) or [])
    out = boost(Gray(), Pick(1), image, settings)
    target = 2 * r_x / factor
    assert out["target"] == (round(target * 48 / 64), round(target))
    assert seen == [((1, 3, *out["target"]), pytest.approx(factor))]
