"""The rendering functions against answers known in closed form: a slab of constant density, the CDF of the
hierarchical samples, the encoding's frequencies, rays through known points, NeRF++'s inverted sphere, NDC."""

from __future__ import annotations

import math

import pytest
import torch

from lit_digest.nerf.rendering import (
    alpha_weights,
    camera_rays,
    composite,
    intersect_unit_sphere,
    inverted_sphere_points,
    look_at,
    ndc_rays,
    positional_encoding,
    sample_pdf,
    stratified_samples,
)


def test_a_slab_of_constant_density_gives_the_analytic_transmittance():
    """Density sigma on [a, b] along rays with |d| = 1.3: the transmittance before depth z is
    exp(-sigma |d| clip(z - a, 0, b - a)), the opacity 1 - exp(-sigma |d| (b - a)), exact when the samples
    fall on the slab's faces; the colour is the slab's times that opacity."""
    sigma, a, b = 0.8, 1.0, 2.5
    z = torch.linspace(0.0, 4.0, 161).expand(3, -1)  # a and b are sample positions (every 0.025)
    density = torch.where((z >= a - 1e-6) & (z < b - 1e-6), sigma, 0.0)  # constant on [z_i, z_i+1) inside
    norm = torch.full((3,), 1.3)
    out = composite(torch.tensor([0.2, 0.5, 0.9]).expand(3, 161, 3), density, z, norm)
    expected_opacity = 1 - math.exp(-sigma * 1.3 * (b - a))
    torch.testing.assert_close(out["opacity"], torch.full((3,), expected_opacity), atol=1e-6, rtol=0)
    torch.testing.assert_close(out["rgb"][0], torch.tensor([0.2, 0.5, 0.9]) * expected_opacity, atol=1e-6, rtol=0)
    weights, _ = alpha_weights(density * 1.0, torch.cat([z[:, 1:] - z[:, :-1], torch.full((3, 1), 1e10)], -1) * 1.3)
    before = 1 - torch.cumsum(weights, -1) + weights  # transmittance before each sample
    analytic = torch.exp(-sigma * 1.3 * (z - a).clamp(0, b - a))
    torch.testing.assert_close(before, analytic, atol=1e-5, rtol=0)
    # the expected depth of the slab: its entry plus the mean of the truncated exponential, on the sample grid
    weights_z = (weights * z).sum(-1) / weights.sum(-1)
    k = sigma * 1.3
    mean_inside = 1 / k - (b - a) * math.exp(-k * (b - a)) / (1 - math.exp(-k * (b - a)))
    assert float(weights_z[0]) == pytest.approx(a + mean_inside, abs=0.02)


def test_hierarchical_samples_follow_the_cdf_of_the_weights():
    """Random draws: the share of samples below each bin edge is the normalised cumulative weight, and inside a
    bin the samples are uniform. Deterministic draws are the inverse CDF at evenly spaced levels."""
    torch.manual_seed(0)
    bins = torch.tensor([[0.0, 1.0, 1.5, 3.0, 4.0, 6.0]])
    weights = torch.tensor([[0.1, 0.4, 0.0, 0.3, 0.2]])
    cdf = torch.cumsum(weights + 1e-5, -1)[0] / (weights + 1e-5).sum()
    samples = sample_pdf(bins, weights, 200_000, deterministic=False)[0]
    below = torch.stack([(samples <= edge).float().mean() for edge in bins[0, 1:]])
    torch.testing.assert_close(below, cdf, atol=4e-3, rtol=0)
    inside = samples[(samples > 1.5) & (samples < 3.0)]  # the empty bin gets (almost) nothing
    assert inside.numel() < 50
    second = samples[(samples > 1.0) & (samples < 1.5)]
    assert float(second.mean()) == pytest.approx(1.25, abs=3e-3)  # uniform within the bin
    assert float(second.std()) == pytest.approx(0.5 / math.sqrt(12), abs=3e-3)
    levels = torch.linspace(0, 1, 11)
    det = sample_pdf(bins, weights, 11, deterministic=True)[0]
    for u, s in zip(levels[1:-1], det[1:-1]):
        k = int(torch.searchsorted(cdf, u, right=True))  # the bin holding level u
        lo = float(cdf[k - 1]) if k > 0 else 0.0
        width = float(bins[0, k + 1] - bins[0, k])
        expected = float(bins[0, k]) + (float(u) - lo) / (float(cdf[k]) - lo) * width
        assert float(s) == pytest.approx(expected, abs=1e-4)


def test_positional_encoding_has_the_frequencies_of_the_official_code():
    x = torch.tensor([[0.3, -1.2, 2.0]])
    enc = positional_encoding(x, 4)
    assert enc.shape == (1, 3 + 2 * 4 * 3)
    naive = [*x[0].tolist()]
    for k in range(4):  # bmild/nerf Embedder: for each frequency, sin then cos, of every coordinate
        naive += [math.sin(2**k * v) for v in x[0].tolist()] + [math.cos(2**k * v) for v in x[0].tolist()]
    torch.testing.assert_close(enc[0], torch.tensor(naive), atol=1e-6, rtol=0)
    for k in range(4):  # band k repeats with period 2 pi / 2^k, and no lower band does (except k = 0's)
        shifted = positional_encoding(x + 2 * math.pi / 2**k, 4)
        band = slice(3 + 6 * k, 9 + 6 * k)
        torch.testing.assert_close(shifted[0, band], enc[0, band], atol=1e-5, rtol=0)
        if k > 0:
            lower = slice(3 + 6 * (k - 1), 9 + 6 * (k - 1))
            assert (shifted[0, lower] - enc[0, lower]).abs().max() > 0.1


def test_a_ray_from_a_known_camera_hits_the_known_point():
    """A camera at (0, -3, 1) looking at the origin: the ray of the pixel where a known point projects passes
    through it, at the point's depth along the optical axis, and the central pixel's ray hits the origin."""
    pose = look_at(torch.tensor([0.0, -3.0, 1.0]), torch.zeros(3), torch.tensor([0.0, 0.0, 1.0]))
    h, w, focal = 9, 11, 10.0
    origins, dirs = camera_rays(h, w, focal, pose)
    centre = origins[4, 5] + math.sqrt(10.0) * dirs[4, 5]  # depth of the origin = its distance here
    torch.testing.assert_close(centre, torch.zeros(3), atol=1e-5, rtol=0)
    # a point that projects onto the centre of pixel (row 2, column 8)
    right, up, back, eye = pose[:, 0], pose[:, 1], pose[:, 2], pose[:, 3]
    depth = 2.5
    point = eye - depth * back + depth * ((8 + 0.5 - w / 2) / focal) * right - depth * ((2 + 0.5 - h / 2) / focal) * up
    torch.testing.assert_close(origins[2, 8] + depth * dirs[2, 8], point, atol=1e-5, rtol=0)


def test_the_unit_sphere_exit_and_the_inverted_sphere_points():
    torch.manual_seed(0)
    o = torch.nn.functional.normalize(torch.randn(64, 3), dim=-1) * torch.rand(64, 1) * 0.9
    d = torch.randn(64, 3) * 2
    t = intersect_unit_sphere(o, d)
    torch.testing.assert_close((o + t[:, None] * d).norm(dim=-1), torch.ones(64), atol=1e-5, rtol=0)
    inv_r = torch.rand(64, 5) * 0.98 + 0.01
    points, t_far = inverted_sphere_points(o, d, inv_r)
    r = 1 / inv_r
    # the point of each ray at distance r, from the quadratic |o + t d|^2 = r^2 (larger root)
    qa, qb, qc = (d * d).sum(-1, keepdim=True), 2 * (o * d).sum(-1, keepdim=True), (o * o).sum(-1, keepdim=True) - r**2
    t_true = (-qb + (qb**2 - 4 * qa * qc).sqrt()) / (2 * qa)
    torch.testing.assert_close(t_far, t_true, atol=1e-3, rtol=1e-4)
    true_points = o[:, None] + t_true[..., None] * d[:, None]
    torch.testing.assert_close(points[..., :3], true_points / r[..., None], atol=1e-4, rtol=0)
    torch.testing.assert_close(points[..., 3], inv_r)
    at_infinity, _ = inverted_sphere_points(o, d, torch.zeros(64, 1))
    torch.testing.assert_close(at_infinity[:, 0, :3], torch.nn.functional.normalize(d, dim=-1), atol=1e-6, rtol=0)


def test_ndc_maps_the_near_plane_to_minus_one_and_infinity_to_one():
    o = torch.tensor([[0.1, -0.2, 0.0]])
    d = torch.tensor([[0.05, 0.02, -1.0]])
    o_ndc, d_ndc = ndc_rays(20, 30, 25.0, 1.0, o, d)
    assert float(o_ndc[0, 2]) == pytest.approx(-1.0)
    assert float((o_ndc + d_ndc)[0, 2]) == pytest.approx(1.0)  # NDC t = 1 is the point at infinity
    far_point = o + 1e6 * d  # the NDC x of a far point is the pinhole projection scaled by -2 f / W
    assert float((o_ndc + d_ndc)[0, 0]) == pytest.approx(float(-2 * 25.0 / 30 * far_point[0, 0] / far_point[0, 2]),
                                                         rel=1e-3)


def test_stratified_samples_stay_in_their_intervals():
    torch.manual_seed(0)
    near, far = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 6.0])
    even = stratified_samples(near, far, 5, perturb=False)
    torch.testing.assert_close(even[1], torch.tensor([2.0, 3.0, 4.0, 5.0, 6.0]))
    jittered = stratified_samples(near, far, 5, perturb=True)
    mids = 0.5 * (even[:, 1:] + even[:, :-1])
    lower, upper = torch.cat([even[:, :1], mids], -1), torch.cat([mids, even[:, -1:]], -1)
    assert bool(((jittered >= lower) & (jittered <= upper)).all()) and not torch.equal(jittered, even)
    inverse = stratified_samples(near, far, 3, perturb=False, lindisp=True)
    torch.testing.assert_close(1 / inverse[0], torch.tensor([1.0, (1 + 1 / 3) / 2, 1 / 3]))
