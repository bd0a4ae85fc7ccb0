import pytest
import torch
import torchvision.transforms.v2.functional as TF

from lit_digest.ssl.views import BYOLViews, SimCLRViews, ViewAugment


def images(n=4, c=3, size=32, seed=0):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


def identity_params(aug: ViewAugment, n: int, size: int) -> dict:
    p = aug.sample_params(n, size, size)
    p["crop"] = torch.tensor([[0.0, 0.0, size, size]] * n)
    p["flip"] = torch.zeros(n, dtype=torch.bool)
    for key, value in [("brightness", 1.0), ("contrast", 1.0), ("saturation", 1.0), ("hue", 0.0)]:
        p[key] = torch.full((n,), value)
    for key in ("grayscale", "blur", "solarize"):
        p[key] = torch.zeros(n, dtype=torch.bool)
    return p


def test_two_samples_in_one_batch_get_different_parameters():
    aug = ViewAugment(crop_size=32, jitter_p=1.0)
    p = aug.sample_params(64, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.unique(p["crop"], dim=0).shape[0] == 64
    for key in ("brightness", "contrast", "saturation", "hue"):
        assert torch.unique(p[key]).numel() == 64, key
    assert 0 < p["flip"].sum() < 64 and 0 < p["grayscale"].sum() < 64
    assert torch.unique(p["jitter_order"], dim=0).shape[0] > 1


def test_identical_images_in_a_batch_become_different_views():
    x = images(1).expand(8, -1, -1, -1).contiguous()
    out = ViewAugment(crop_size=32)(x)
    diffs = [(out[0] - out[i]).abs().max().item() for i in range(1, 8)]
    assert min(diffs) > 1e-3


def test_same_parameters_give_same_views():
    aug = ViewAugment(crop_size=24, blur_p=0.5, solarize_p=0.5)
    x = images(6)
    p = aug.sample_params(6, 32, 32)
    torch.testing.assert_close(aug.apply(x, p), aug.apply(x, p))


def test_whole_image_crop_without_flip_is_identity_and_flip_is_exact():
    aug = ViewAugment(crop_size=32)
    x = images(3)
    p = identity_params(aug, 3, 32)
    torch.testing.assert_close(aug.apply(x, p), x, atol=1e-5, rtol=0)
    p["flip"] = torch.tensor([True, False, True])
    out = aug.apply(x, p)
    torch.testing.assert_close(out[0], x[0].flip(-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], x[1], atol=1e-5, rtol=0)


def test_crop_box_selects_the_right_pixels():
    aug = ViewAugment(crop_size=8)
    x = images(2)
    p = identity_params(aug, 2, 32)
    p["crop"] = torch.tensor([[4.0, 10.0, 8.0, 8.0], [20.0, 0.0, 8.0, 8.0]])  # (top, left, h, w)
    out = aug.apply(x, p)
    torch.testing.assert_close(out[0], x[0, :, 4:12, 10:18], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], x[1, :, 20:28, 0:8], atol=1e-5, rtol=0)


def test_crop_sizes_follow_scale_and_ratio_bounds():
    aug = ViewAugment(crop_size=32, min_scale=0.2, max_scale=0.6)
    crop = aug.sample_params(2000, 64, 64)["crop"]
    area = crop[:, 2] * crop[:, 3] / (64 * 64)
    ratio = crop[:, 3] / crop[:, 2]
    assert area.min() > 0.15 and area.max() < 0.67  # rounding to whole pixels
    assert ratio.min() > 0.7 and ratio.max() < 1.42
    assert (crop[:, 0] + crop[:, 2] <= 64).all() and (crop[:, 1] + crop[:, 3] <= 64).all()


@pytest.mark.parametrize("op", ["brightness", "contrast", "saturation", "hue"])
def test_colour_ops_match_torchvision(op):
    aug = ViewAugment(crop_size=32, jitter_p=1.0, grayscale_p=0.0)
    x = images(4)
    p = identity_params(aug, 4, 32)
    factors = torch.tensor([0.6, 0.9, 1.2, 1.4]) if op != "hue" else torch.tensor([-0.1, -0.03, 0.05, 0.1])
    p[op] = factors
    out = aug.color_jitter(x, p)
    reference = {"brightness": TF.adjust_brightness, "contrast": TF.adjust_contrast,
                 "saturation": TF.adjust_saturation, "hue": TF.adjust_hue}[op]
    for i in range(4):
        torch.testing.assert_close(out[i], reference(x[i], float(factors[i])), atol=2e-5, rtol=0)


def test_blur_matches_torchvision_per_sample_sigma():
    aug = ViewAugment(crop_size=32, jitter_p=0.0, grayscale_p=0.0, blur_p=1.0)
    x = images(3)
    p = identity_params(aug, 3, 32)
    p["blur"] = torch.ones(3, dtype=torch.bool)
    p["blur_sigma"] = torch.tensor([0.3, 1.0, 2.0])
    out = aug.apply(x, p)
    for i, sigma in enumerate([0.3, 1.0, 2.0]):
        ref = TF.gaussian_blur(x[i], [aug.blur_kernel, aug.blur_kernel], [sigma, sigma])
        torch.testing.assert_close(out[i], ref, atol=1e-5, rtol=0)


def test_solarize_and_grayscale():
    aug = ViewAugment(crop_size=32, jitter_p=0.0, grayscale_p=1.0, solarize_p=1.0)
    x = images(2)
    p = identity_params(aug, 2, 32)
    p["solarize"] = torch.tensor([True, False])
    p["grayscale"] = torch.tensor([False, True])
    out = aug.apply(x, p)
    torch.testing.assert_close(out[0], torch.where(x[0] >= 0.5, 1 - x[0], x[0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], TF.rgb_to_grayscale(x[1], num_output_channels=3), atol=1e-5, rtol=0)


def test_byol_views_are_asymmetric_and_accept_uint8():
    views = BYOLViews(crop_size=16, blur_p=(1.0, 0.0), solarize_p=(0.0, 1.0))
    assert views.views[0].blur_p == 1.0 and views.views[1].solarize_p == 1.0
    x = (images(5) * 255).to(torch.uint8)
    out = views(x)
    assert len(out) == 2 and all(v.shape == (5, 3, 16, 16) and v.dtype == torch.float32 for v in out)
    assert all(0 <= v.min() and v.max() <= 1 for v in out)


def test_grey_images_and_n_views():
    out = SimCLRViews(crop_size=8, n_views=3)(torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8))
    assert len(out) == 3 and out[0].shape == (4, 1, 8, 8)


def test_bad_probability_is_rejected_with_its_name():
    with pytest.raises(ValueError, match="solarize_p"):
        ViewAugment(solarize_p=1.5)


def test_colour_jitter_applies_each_samples_four_ops_in_its_own_order():
    aug = ViewAugment(crop_size=32, jitter_p=0.7)
    x = images(24)
    p = aug.sample_params(24, 32, 32, generator=torch.Generator().manual_seed(3))
    out = aug.color_jitter(x, p)
    ops = [lambda img, i: TF.adjust_brightness(img, float(p["brightness"][i])),
           lambda img, i: TF.adjust_contrast(img, float(p["contrast"][i])),
           lambda img, i: TF.adjust_saturation(img, float(p["saturation"][i])),
           lambda img, i: TF.adjust_hue(img, float(p["hue"][i]))]
    untouched = 0
    for i in range(24):  # torchvision's ColorJitter on one image: its own permutation of the four ops
        expected = x[i]
        for op in p["jitter_order"][i].tolist():
            expected = ops[op](expected, i)
        torch.testing.assert_close(out[i], expected, atol=2e-5, rtol=0)
        untouched += bool(p["brightness"][i] == 1 and p["hue"][i] == 0)
    assert 0 < untouched < 24 and len({tuple(o) for o in p["jitter_order"].tolist()}) > 4
