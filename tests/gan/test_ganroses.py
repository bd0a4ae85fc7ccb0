"""GANs N' Roses: its losses against plain references, the augmentation batches, bad input, predict, the official
checkpoint round trip, and a short run that makes style codes ignore augmentations."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch.nn import functional as F

from lit_digest.core.download import MissingDataError
from lit_digest.gan.ganroses import GANsNRoses, PhotosToDrawingsDataModule, UnpairedFolderDataModule
from lit_digest.gan.ganroses.data import Augmentation, random_views
from lit_digest.gan.ganroses.losses import mix_styles, shuffle_within_groups, style_consistency_loss
from lit_digest.gan.ganroses.metrics import flicker, gaussian_fit, moving_frames, pairwise_distance, style_spread
from lit_digest.gan.ganroses.official import load_official_checkpoint, save_official_checkpoint
from lit_digest.gan.ganroses.predict import main as predict_main
from lit_digest.gan.ganroses.predict import read_image
from lit_digest.gan.losses import logistic_d_loss, nonsaturating_g_loss, r1_penalty

TINY = dict(style_dim=16, channel_base=128, channel_max=16, latent_d_width=32)  # the smoke overlay's sizes


# -- losses ------------------------------------------------------------------------------------------------------
def test_style_consistency_is_zero_for_equal_codes_and_grows_with_their_spread():
    torch.manual_seed(0)
    one = torch.randn(1, 8).expand(6, 8)
    assert style_consistency_loss(one).item() == 0.0
    spread = torch.randn(6, 8)
    losses = [style_consistency_loss(one + k * spread).item() for k in (0.5, 1.0, 2.0)]
    assert losses[0] < losses[1] < losses[2] and losses[2] == pytest.approx(4 * losses[1], rel=1e-5)
    naive = sum(sum((v - sum(col) / len(col)) ** 2 for v in col) / len(col) for col in (one + spread).T.tolist())
    assert style_consistency_loss(one + spread).item() == pytest.approx(naive, rel=1e-5)


def test_style_consistency_with_groups_averages_the_groups_and_ignores_singletons():
    torch.manual_seed(0)
    codes = torch.randn(7, 4)
    groups = torch.tensor([3, 3, 3, 9, 9, 5, 5])
    expected = (style_consistency_loss(codes[:3]) + style_consistency_loss(codes[3:5])
                + style_consistency_loss(codes[5:])) / 3
    torch.testing.assert_close(style_consistency_loss(codes, groups), expected)
    assert style_consistency_loss(codes, torch.arange(7)).item() == 0.0
    torch.testing.assert_close(style_consistency_loss(codes, torch.zeros(7)), style_consistency_loss(codes))


def test_adversarial_losses_equal_their_formulas():
    real, fake = [torch.randn(4, 1, 3, 3), torch.randn(4, 1)], [torch.randn(4, 1, 3, 3), torch.randn(4, 1)]
    expected = sum(torch.log1p(torch.exp(-r)).mean() + torch.log1p(torch.exp(f)).mean() for r, f in zip(real, fake))
    torch.testing.assert_close(logistic_d_loss(real, fake), expected)
    torch.testing.assert_close(nonsaturating_g_loss(fake, [1.0, 3.0]),
                               (-torch.log(torch.sigmoid(fake[0])).mean()
                                - 3 * torch.log(torch.sigmoid(fake[1])).mean()) / 2)


def test_r1_equals_its_analytic_value_and_an_autograd_reference():
    torch.manual_seed(0)
    w = torch.randn(3, 5, 5)
    x = torch.randn(4, 3, 5, 5, requires_grad=True)
    linear = [(x * w).sum((1, 2, 3))]  # D(x) = <w, x>: grad of the mean score = w / B for every sample
    torch.testing.assert_close(r1_penalty(linear, x), w.pow(2).sum() / 16)
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Softplus(), torch.nn.Conv2d(4, 1, 3))
    heads = lambda u: [conv(u), conv(u).mean((1, 2, 3))]  # noqa: E731  a patch head and a per-sample head
    got = r1_penalty(heads(x), x)
    reference = 0.0
    for i in range(2):  # the Jacobian of each head's mean score, row by row
        jac = torch.autograd.functional.jacobian(lambda u, i=i: heads(u)[i].mean(), x.detach())  # (B, 3, 5, 5)
        reference = reference + jac.pow(2).flatten(1).sum(1).mean()
    torch.testing.assert_close(got, reference)
    got.backward()  # differentiable again: R1 trains the discriminator
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in conv[0].parameters())


def test_shuffles_stay_within_groups_and_mixed_styles_come_from_both_sources():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(8.0)[:, None]
    groups = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    shuffled = shuffle_within_groups(x, groups, g)[:, 0]
    for k in range(3):
        assert sorted(shuffled[groups == k].tolist()) == x[groups == k, 0].tolist()
    assert sorted(shuffle_within_groups(x, generator=g)[:, 0].tolist()) == x[:, 0].tolist()
    mixed = mix_styles(torch.zeros(64, 2), torch.ones(64, 2), g)
    assert mixed.shape == (64, 2) and 10 < mixed[:, 0].sum() < 54


def test_shuffles_and_mixed_styles_draw_from_the_generator_they_are_given():
    # the same seeded generator gives the same rows whatever the global RNG holds: the draws come from it alone
    x, groups = torch.randn(24, 3), torch.arange(24) // 8

    def draws(global_seed):
        torch.manual_seed(global_seed)
        return (shuffle_within_groups(x, generator=torch.Generator().manual_seed(0)),
                shuffle_within_groups(x, groups, torch.Generator().manual_seed(0)),
                mix_styles(x, -x, torch.Generator().manual_seed(0)))

    for first, second in zip(draws(1), draws(2)):
        assert torch.equal(first, second)
    # a plain reference: the generator's own permutation of all rows, and of the 2B stacked codes
    every, stacked = (torch.randperm(n, generator=torch.Generator().manual_seed(0)) for n in (24, 48))
    assert torch.equal(draws(3)[0], x[every])
    assert torch.equal(draws(3)[2], torch.cat([x, -x])[stacked[:24]])


# -- data --------------------------------------------------------------------------------------------------------
def test_views_without_augmentation_are_the_images_and_a_flip_is_a_flip():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, 16, 16)
    still = Augmentation(degrees=0, scale=(1, 1), translate=0, shear=0, crop_margin=0, flip=False)
    torch.testing.assert_close(random_views(x, still, g), x, atol=1e-5, rtol=0)
    flips = random_views(x, Augmentation(degrees=0, scale=(1, 1), translate=0, shear=0, crop_margin=0), g)
    for view, image in zip(flips, x):
        assert torch.allclose(view, image, atol=1e-5) or torch.allclose(view, image.flip(-1), atol=1e-5)
    moved = random_views(x, Augmentation(), g)
    assert moved.shape == x.shape and not torch.allclose(moved, x, atol=0.1)


def test_an_augmentation_batch_holds_views_of_one_image_and_a_shuffled_one_of_many():
    dm = PhotosToDrawingsDataModule(photos=None, num_drawn=12, num_test=3, batch_size=4)
    dm.setup("fit")
    batches = dm.train_dataloader().dataset
    batch = batches[(2, 1)]
    assert batch["A"].shape == batch["A_real"].shape == (4, 3, 32, 32)
    assert len(set(batch["A_group"].tolist())) == 1 and len(set(batch["B_group"].tolist())) == 1
    assert not torch.allclose(batch["A"][0], batch["A"][1])  # different views
    torch.testing.assert_close(batches[(2, 1)]["B"], batch["B"])  # seeded by (seed, epoch, batch)
    assert not torch.allclose(batches[(2, 2)]["B"], batch["B"])
    dm = PhotosToDrawingsDataModule(photos=None, num_drawn=12, num_test=3, batch_size=4, batch_mode="shuffled")
    dm.setup("fit")
    assert len(set(dm.train_dataloader().dataset[(0, 0)]["A_group"].tolist())) == 4


def _folder(root, name, count, mode, size=(20, 24)):
    (root / name).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new(mode, size, 100 + i).save(root / name / f"{i}.png")


def test_bad_data_is_one_clear_error_before_training(tmp_path):
    for name in ("trainA", "testA"):
        _folder(tmp_path, name, 3, "L")
    for name in ("trainB", "testB"):
        _folder(tmp_path, name, 3, "RGB")
    with pytest.raises(ValueError, match=r"domain A .* 1-channel images and domain B .* 3-channel.*channels 3"):
        UnpairedFolderDataModule(root=str(tmp_path), image_size=16, channels=None).setup("fit")
    dm = UnpairedFolderDataModule(root=str(tmp_path), image_size=16, channels=3)
    dm.setup("fit")
    assert dm.splits["trainA"][0].shape == (3, 16, 16)
    for f in (tmp_path / "testB").iterdir():
        f.unlink()
    with pytest.raises(MissingDataError, match=r"testB.*holds no"):
        UnpairedFolderDataModule(root=str(tmp_path), image_size=16).setup("fit")
    from lit_digest.core.lightning import Trainer

    trainer = Trainer(accelerator="cpu", max_steps=2, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False)
    with pytest.raises(ValueError, match="3-channel images but the model takes 1: set model.init_args.image_channels"):
        trainer.fit(GANsNRoses(image_channels=1), PhotosToDrawingsDataModule(photos=None))
    assert trainer.global_step == 0


def test_a_reference_of_the_wrong_size_is_named(tmp_path):
    Image.new("RGB", (40, 30)).save(tmp_path / "ref.png")
    with pytest.raises(ValueError, match=r"ref.png' is 40x30 px but the model translates 32x32.*--resize"):
        read_image(tmp_path / "ref.png", 32, 3, "reference image")
    assert read_image(tmp_path / "ref.png", 32, 3, resize=True).shape == (3, 32, 32)
    (tmp_path / "bad.png").write_text("no image")
    with pytest.raises(ValueError, match="cannot be read"):
        read_image(tmp_path / "bad.png", 32, 3)


# -- metrics -----------------------------------------------------------------------------------------------------
def test_the_measures_of_the_claims_on_known_answers():
    torch.manual_seed(0)
    images = torch.randn(5, 3, 16, 16)
    constant = style_spread(lambda x: x.mean((2, 3)) * 0 + 1, images, Augmentation())
    assert constant["within"] == 0.0 and constant["across"] == 0.0
    colour = style_spread(lambda x: x[:, :, 6:10, 6:10].mean((2, 3)), images, Augmentation(degrees=0, translate=0))
    assert colour["within"] < colour["across"]
    fit = gaussian_fit(torch.randn(20000, 4))
    assert fit["mean_norm"] < 0.05 and fit["cov_error"] < 0.05
    shifted = gaussian_fit(torch.tensor([[1.0, 2.0, 2.0]]) + torch.tensor([[1.0, 0, 0], [-1.0, 0, 0]]))
    assert shifted["mean_norm"] == pytest.approx(3.0)  # ||(1, 2, 2)||
    assert shifted["cov_error"] == pytest.approx(((1 - 1) ** 2 + 1 + 1) ** 0.5 / 3 ** 0.5)  # Cov = diag(1, 0, 0)
    assert pairwise_distance(torch.tensor([[[0.0, 0.0], [3.0, 4.0]]])) == pytest.approx(5.0)
    assert moving_frames(torch.rand(3, 16, 16), frames=12).shape == (12, 3, 16, 16)
    ramp = torch.stack([torch.full((1, 4, 4), float(t * t)) for t in range(5)])  # changes 1, 3, 5, 7
    follows = flicker(lambda x, z: x * 0.5, ramp, 8)  # the output follows the input exactly: correlation 1
    assert follows["input_change"] == pytest.approx(4.0) and follows["output_change"] == pytest.approx(2.0)
    assert follows["correlation"] == pytest.approx(1.0)
    styled = flicker(lambda x, z: x * 0 + z[:, :1, None, None], ramp, 8)  # the output is the style code alone
    assert styled["output_change"] == 0.0 and styled["redrawn_change"] > 0.1


# -- the system --------------------------------------------------------------------------------------------------
def _grads(model, loss) -> set[str]:
    """Prefixes of the parameters that ``loss`` reaches (non-zero gradient)."""
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    return {name.rsplit(".", 2)[0] for name, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum()}


def test_each_generator_term_reaches_the_parts_it_should():
    torch.manual_seed(0)
    model = GANsNRoses(**TINY)
    dm = PhotosToDrawingsDataModule(photos=None, num_drawn=8, num_test=2, batch_size=4)
    dm.setup("fit")
    batch = dm.train_dataloader().dataset[(0, 0)]
    state = model.translate_batch(batch)
    terms = model.generator_loss(batch, state)
    reached = {k: _grads(model, terms[k]) for k in ("consistency", "latent", "cycle", "style", "adversarial")}
    # style consistency: the encoders' stem and style branch only
    assert all(any(p.startswith(f"{g}.encoder.style") for p in reached["consistency"]) for g in ("g_a2b", "g_b2a"))
    assert not any("decoder" in p or "content" in p or p.startswith("d_") for p in reached["consistency"])
    # latent term: the encoders that read the real images, through the style-code discriminator
    assert all(any(p.startswith(f"{g}.encoder.style") for p in reached["latent"]) for g in ("g_a2b", "g_b2a"))
    assert not any("decoder" in p or "content" in p for p in reached["latent"])
    # cycle and style reconstruction: both generators, encoders and decoders
    for term in ("cycle", "style"):
        for part in ("g_a2b.encoder.content", "g_a2b.decoder", "g_b2a.encoder.content", "g_b2a.decoder"):
            assert any(p.startswith(part) for p in reached[term]), (term, part)
    assert not any("_ema" in p for names in reached.values() for p in names)  # the averages are never trained


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny model trained 4 batches on the offline smoke pair, saved as a Lightning checkpoint."""
    from lit_digest.core.lightning import Trainer

    folder = tmp_path_factory.mktemp("gnr")
    torch.manual_seed(0)
    model = GANsNRoses(**TINY, predict_styles=3)
    trainer = Trainer(accelerator="cpu", max_steps=8, limit_val_batches=1, logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False, default_root_dir=folder,
                      num_sanity_val_steps=0)
    trainer.fit(model, PhotosToDrawingsDataModule(photos=None, num_drawn=8, num_test=4, batch_size=4))
    path = folder / "checkpoints" / "last.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def trained(checkpoint):
    return GANsNRoses.load_from_checkpoint(checkpoint).eval()


def test_training_steps_both_players_and_every_network_moves(checkpoint, trained):
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert state["global_step"] == 8  # 4 batches, 2 optimiser steps each
    torch.manual_seed(0)
    fresh = GANsNRoses(**TINY)  # the fixture's initialisation
    moved = {k for k, v in trained.state_dict().items() if not torch.equal(v, fresh.state_dict()[k])}
    for net in ("g_a2b.", "g_b2a.", "d_a.", "d_b.", "d_latent.", "g_a2b_ema."):
        assert any(k.startswith(net) for k in moved), net


def test_predict_writes_grids_and_frames_and_says_where(checkpoint, trained, tmp_path, capsys):
    image = (torch.rand(32, 32, 3) * 255).byte().numpy()
    Image.fromarray(image).save(tmp_path / "face.png")
    path = predict_main(["--checkpoint", str(checkpoint), "--image", str(tmp_path / "face.png"), "--styles", "4",
                         "--out", str(tmp_path / "out")])
    grid = Image.open(path)
    assert grid.size == (2 + 5 * 34, 2 + 34)  # the input and 4 translations, 2-px padding
    assert "wrote 4 translations to" in capsys.readouterr().out
    frames = tmp_path / "frames"
    frames.mkdir()
    for t, frame in enumerate(moving_frames(torch.rand(3, 32, 32), 5)):
        Image.fromarray(((frame + 1) * 127.5).clamp(0, 255).byte().permute(1, 2, 0).numpy()).save(frames / f"{t}.png")
    folder = predict_main(["--checkpoint", str(checkpoint), "--frames", str(frames), "--out", str(tmp_path / "out")])
    assert sorted(p.name for p in folder.iterdir()) == [f"{t}.png" for t in range(5)]
    from lit_digest.gan.ganroses.predict import translate_frames

    x = [read_image(frames / f"{t}.png", 32, 3) for t in range(5)]
    style = torch.randn(8)
    with torch.no_grad():  # the fast path (style mapped once, frames batched) equals plain forward calls
        torch.testing.assert_close(torch.stack(translate_frames(trained, x, style, batch_size=2)),
                                   trained(torch.stack(x), style.expand(5, 8)), atol=1e-5, rtol=1e-4)


def test_an_official_checkpoint_written_by_our_code_loads_back(trained, tmp_path):
    model = trained
    path = save_official_checkpoint(model, tmp_path / "ck.pt")
    state = torch.load(path, weights_only=True)
    assert set(state) == {"G_A2B", "G_B2A", "G_A2B_ema", "G_B2A_ema", "D_A", "D_B", "D_L", "iter"}
    sizes = {k: model.hparams[k] for k in ("image_size", "num_down", "style_dim", "channel_base", "channel_max",
                                           "d_local_size", "d_global_size", "latent_d_width")}
    loaded, found = load_official_checkpoint(path, **sizes)
    assert len(found) == 7
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v, msg=k)
    torch.save({"G_A2B_ema": state["G_A2B_ema"]}, tmp_path / "released.pt")  # as the released file: one entry
    loaded, found = load_official_checkpoint(tmp_path / "released.pt", **sizes)
    assert found == ["G_A2B_ema"]
    torch.testing.assert_close(loaded.g_a2b.state_dict(), model.g_a2b_ema.state_dict())
    torch.save({"D_A": state["D_A"]}, tmp_path / "d.pt")
    with pytest.raises(ValueError, match="not an official"):
        load_official_checkpoint(tmp_path / "d.pt", **sizes)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_consistency_term_makes_style_codes_ignore_augmentations():
    """30 batches on the offline pair from one initialisation, with the style-consistency term and without: the
    spread of one image's style codes across augmentations is far smaller with it (4x here; the measured run's
    1200 batches bring the within/across ratio to 0.05 from 0.4-0.6 untrained; at 30-60 batches the ratio
    itself is noise, which is why the two runs are compared)."""
    from lit_digest.core.lightning import Trainer

    spreads = {}
    for weight in (50.0, 0.0):
        torch.manual_seed(0)
        dm = PhotosToDrawingsDataModule(photos=None, num_drawn=32, num_test=8, batch_size=4)
        model = GANsNRoses(**TINY, ema_decay=0.0, consistency_weight=weight)
        dm.setup("fit")
        test = torch.stack([dm.splits["testB"][i] for i in range(8)])
        Trainer(accelerator="cpu", max_steps=30, limit_val_batches=0, logger=False, enable_progress_bar=False,
                enable_model_summary=False, enable_checkpointing=False).fit(model, dm)
        spreads[weight] = style_spread(model.g_b2a.style_encode, test, Augmentation())["within"]
    assert spreads[50.0] < 0.5 * spreads[0.0], spreads
    assert F.mse_loss(model(test[:2], direction="b2a"), test[:2]) > 0  # still translates
