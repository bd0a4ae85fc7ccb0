"""GenRep (arXiv 2106.05258): the latent walk, the generated-views DataModule, the generator and its loading."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lit_digest.ssl import SimCLR, SimCLRViews, SmallConvNet, SyntheticImageDataModule
from lit_digest.ssl.genrep import DCGAN, DCGANDiscriminator, DCGANGenerator, GeneratedViewsDataModule, LatentWalk
from lit_digest.ssl.genrep.walk import truncated_normal, truncated_normal_variance


def synthetic(**kwargs) -> SyntheticImageDataModule:
    options = dict(num_train=32, num_test=16, image_size=28, channels=1, classes=10, batch_size=8, num_workers=0)
    return SyntheticImageDataModule(**{**options, **kwargs})


def tiny_generator(**kwargs) -> DCGANGenerator:
    torch.manual_seed(0)
    return DCGANGenerator(**{"latent_dim": 16, "width": 8, **kwargs})


def datamodule(sigma: float = 0.5, **kwargs) -> GeneratedViewsDataModule:
    options = dict(sigma=sigma, num_samples=32, batch_size=8, num_workers=0, eval_data=synthetic(),
                   views=SimCLRViews(crop_size=28, min_scale=0.2))
    dm = GeneratedViewsDataModule(kwargs.pop("generative_model", None) or tiny_generator(), **{**options, **kwargs})
    dm.setup()
    return dm


class ClassStamp(nn.Module):
    """A class-conditional 'generator' whose image is its class, written in one pixel value: (y + 1) / 10,
    plus a small, z-dependent pattern elsewhere (to see walks)."""

    latent_dim, num_classes = 4, 10

    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Linear(4, 28 * 28)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.mix(z)).view(-1, 1, 28, 28) * 0.5
        x[:, 0, 0, 0] = (y.float() + 1) / 10 * 2 - 1  # in [-1, 1], the Tanh range
        return x


# -- the walk ------------------------------------------------------------------------------------------------
def test_truncated_normal_is_cut_and_has_the_truncated_variance():
    g = torch.Generator().manual_seed(0)
    x = truncated_normal((200_000,), bound=2.0, generator=g)
    assert x.abs().max() <= 2.0
    assert abs(x.mean().item()) < 0.01
    assert x.var().item() == pytest.approx(truncated_normal_variance(2.0), rel=0.02)
    assert truncated_normal_variance(2.0) == pytest.approx(0.7737, abs=1e-4)  # scipy.stats.truncnorm(-2, 2).var()
    narrow = truncated_normal((50_000,), bound=0.5, generator=g)
    assert narrow.abs().max() <= 0.5 and narrow.var().item() == pytest.approx(truncated_normal_variance(0.5), rel=0.03)


@pytest.mark.parametrize("sigma", [0.1, 0.4, 1.0, 2.0])
def test_the_latent_distance_between_the_views_follows_sigma(sigma):
    walk = LatentWalk(latent_dim=64, sigma=sigma, bound=2.0)
    g = torch.Generator().manual_seed(1)
    z, positives, y = walk.sample(4000, n_positives=2, generator=g)
    assert y is None and positives.shape == (4000, 2, 64)
    w = positives - z.unsqueeze(1)
    distance = w.norm(dim=-1)  # (n, 2)
    assert distance.pow(2).mean().sqrt().item() == pytest.approx(walk.expected_distance(), rel=0.02)
    assert distance.mean().item() == pytest.approx(sigma * math.sqrt(64 * truncated_normal_variance(2.0)), rel=0.03)
    assert w.abs().max() <= 2.0 * sigma + 1e-6  # the walk is cut at bound * sigma
    assert z.abs().max() <= 2.0  # anchors cut at bound
    assert (w[:, 0] - w[:, 1]).abs().max() > 0  # each positive has its own walk


def test_distance_is_linear_in_sigma_and_zero_at_zero():
    distances = []
    for sigma in (0.0, 0.25, 0.5, 1.0):
        g = torch.Generator().manual_seed(2)
        z, positives, _ = LatentWalk(32, sigma).sample(2000, generator=g)
        distances.append((positives[:, 0] - z).norm(dim=1).mean().item())
    assert distances[0] == 0.0
    assert distances[2] / distances[1] == pytest.approx(2.0, rel=0.05)
    assert distances[3] / distances[2] == pytest.approx(2.0, rel=0.05)


def test_walk_arguments_are_checked():
    with pytest.raises(ValueError, match="sigma"):
        LatentWalk(8, sigma=-0.1)
    with pytest.raises(ValueError, match="bound"):
        LatentWalk(8, bound=0)


# -- the DataModule ------------------------------------------------------------------------------------------
def test_sigma_zero_gives_identical_images_before_pixel_augmentation_and_different_views_after():
    dm = datamodule(sigma=0.0)
    images, labels, codes = dm.sample_views(16, generator=torch.Generator().manual_seed(0))
    assert len(images) == 2 and images[0].shape == (16, 1, 28, 28)
    assert torch.equal(images[0], images[1])  # the same code, the same image
    assert torch.equal(codes["positives"][:, 0], codes["z"])
    assert (labels == -1).all()  # an unconditional generator: no class
    views = dm.augment(images, torch.Generator().manual_seed(1))
    assert (views[0] - views[1]).abs().amax(dim=(1, 2, 3)).min() > 1e-3  # only the pixel augmentations differ


def test_image_distance_grows_with_sigma():
    gaps = []
    for sigma in (0.0, 0.1, 0.5, 2.0):
        dm = datamodule(sigma=sigma, views=None)
        images, _, _ = dm.sample_views(64, generator=torch.Generator().manual_seed(3))
        gaps.append((images[0] - images[1]).abs().mean().item())
    assert gaps[0] == 0.0 and gaps[0] < gaps[1] < gaps[2] < gaps[3]


def test_training_batches_are_normalised_view_lists_and_evaluation_batches_real_images(quiet_trainer):
    dm = datamodule(sigma=0.5)
    trainer = quiet_trainer(max_steps=1)
    dm.trainer = trainer
    trainer.training = True
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (8,)  # online: indices only; the views are rendered after the transfer
    views, labels = dm.on_after_batch_transfer(batch, 0)
    assert len(views) == 2 and views[0].shape == (8, 1, 28, 28) and views[0].dtype == torch.float32
    assert (labels == -1).all()
    lo, hi = (0 - dm.mean[0]) / dm.std[0], (1 - dm.mean[0]) / dm.std[0]
    assert views[0].min() >= lo - 1e-4 and views[0].max() <= hi + 1e-4
    trainer.validating = True
    x, y = next(iter(dm.val_dataloader()[0]))
    real = dm.eval_data.splits.val
    assert torch.equal(x, real.images[:8]) and torch.equal(y, real.labels[:8])  # the real evaluation images
    images, _ = dm.on_after_batch_transfer((x, y), 0)
    torch.testing.assert_close(images, dm.eval_data.prepare_images(x))  # the real data's normalisation
    assert dm.mean == dm.eval_data.mean and dm.num_classes == 10


def test_class_conditional_positives_keep_the_anchors_class_and_label_the_batch():
    dm = datamodule(sigma=1.0, generative_model=ClassStamp(), views=SimCLRViews(crop_size=28, n_views=3))
    images, labels, _ = dm.sample_views(64, generator=torch.Generator().manual_seed(0))
    assert len(images) == 3 and labels.min() >= 0 and labels.unique().numel() > 3
    for x in images:
        torch.testing.assert_close(x[:, 0, 0, 0], (labels.float() + 1) / 10)  # every view shows the anchor's class
    assert not torch.equal(images[0][:, :, 1:], images[1][:, :, 1:])  # but walks elsewhere


def test_pregenerated_data_set_is_written_once_reused_and_checked(tmp_path):
    path = tmp_path / "views.npz"
    dm = datamodule(sigma=0.5, pregenerate=str(path), num_samples=20, num_neighbors=3)
    assert path.is_file()
    with np.load(path) as npz:
        assert npz["anchors"].shape == (20, 1, 28, 28) and npz["anchors"].dtype == np.uint8
        assert npz["neighbors"].shape == (20, 3, 1, 28, 28)
        w = npz["w"]
        assert np.linalg.norm(w, axis=-1).mean() == pytest.approx(0.5 * math.sqrt(16 * 0.774), rel=0.15)
    stamp = path.stat().st_mtime_ns
    anchor, positives, label = dm.splits.pretrain[3]
    assert anchor.shape == (1, 28, 28) and positives.shape == (1, 1, 28, 28) and label == -1
    again = datamodule(sigma=0.5, pregenerate=str(path), num_samples=20, num_neighbors=3)
    assert path.stat().st_mtime_ns == stamp  # reused, not rendered again
    assert torch.equal(again.splits.pretrain.anchors, dm.splits.pretrain.anchors)
    with pytest.raises(ValueError, match=r"other sigma.*delete it, or set data.init_args.pregenerate"):
        datamodule(sigma=1.0, pregenerate=str(path), num_samples=20, num_neighbors=3)
    flat = datamodule(sigma=0.0, pregenerate=str(tmp_path / "flat.npz"), num_samples=8, num_neighbors=3)
    anchor, positives, _ = flat.splits.pretrain[0]
    assert torch.equal(positives[0], anchor)  # sigma 0: the neighbour is the anchor itself, nothing stored


# -- the generator: architecture, training, loading ----------------------------------------------------------
def test_dcgan_shapes_range_and_per_sample_rendering_in_eval_mode():
    for size, channels in ((28, 1), (32, 3)):
        g = DCGANGenerator(latent_dim=8, width=4, out_channels=channels, image_size=size).eval()
        z = torch.randn(5, 8)
        x = g(z)
        assert x.shape == (5, channels, size, size) and x.abs().max() <= 1
        torch.testing.assert_close(g(z[:1]), x[:1])  # an image depends on its own code only
        d = DCGANDiscriminator(width=4, in_channels=channels, image_size=size)
        assert d(x).shape == (5,)
    conditional = DCGANGenerator(latent_dim=8, width=4, num_classes=10).eval()
    z = torch.randn(4, 8)
    assert not torch.equal(conditional(z, torch.zeros(4, dtype=torch.long)), conditional(z, torch.ones(4).long()))
    with pytest.raises(ValueError, match="pass y"):
        conditional(z)
    with pytest.raises(ValueError, match="image_size"):
        DCGANGenerator(image_size=30)


def test_dcgan_steps_move_both_networks_and_its_checkpoint_feeds_the_datamodule(quiet_trainer, tmp_path):
    torch.manual_seed(0)
    gan = DCGAN(DCGANGenerator(latent_dim=8, width=4), DCGANDiscriminator(width=4))
    before = {k: v.clone() for k, v in gan.state_dict().items()}
    trainer = quiet_trainer(max_steps=4, limit_val_batches=0)
    trainer.fit(gan, synthetic(views=None, knn_bank_size=0))
    after = gan.state_dict()
    for prefix in ("generator.", "discriminator."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix)), prefix
    ckpt = tmp_path / "gan.ckpt"
    trainer.save_checkpoint(ckpt)
    rebuilt = GeneratedViewsDataModule(None, checkpoint=str(ckpt), eval_data=synthetic())  # the checkpoint alone
    built = GeneratedViewsDataModule(DCGANGenerator(latent_dim=8, width=4), checkpoint=str(ckpt))  # class + weights
    gan.generator.eval()
    z = torch.randn(3, 8)
    for dm in (rebuilt, built):
        torch.testing.assert_close(dm.render(z), (gan.generator(z) + 1) / 2)
        assert not dm.generative_model.training
        assert not any(p.requires_grad for p in dm.generative_model.parameters())


def test_a_users_generator_from_a_state_dict_and_a_run_name(tmp_path, monkeypatch):
    g = tiny_generator()
    torch.save(g.state_dict(), tmp_path / "g.pt")
    dm = GeneratedViewsDataModule(DCGANGenerator(latent_dim=16, width=8), checkpoint=str(tmp_path / "g.pt"))
    z = torch.randn(2, 16)
    torch.testing.assert_close(dm.render(z), (g.eval()(z) + 1) / 2)
    with pytest.raises(ValueError, match="does not fit the generator.*data.init_args.generative_model"):
        GeneratedViewsDataModule(DCGANGenerator(latent_dim=16, width=4), checkpoint=str(tmp_path / "g.pt"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"Train the generator first.*configs/genrep/dcgan/fashion_mnist.yaml"):
        GeneratedViewsDataModule(DCGANGenerator(latent_dim=16, width=8), checkpoint="run:dcgan-fashion_mnist")
    for stamp in ("2024-01-01_00-00-00", "2024-02-01_00-00-00"):
        folder = tmp_path / "runs" / "dcgan-fashion_mnist" / stamp / "checkpoints"
        folder.mkdir(parents=True)
        torch.save({"state_dict": {f"generator.{k}": v for k, v in g.state_dict().items()}}, folder / "last.ckpt")
    dm = GeneratedViewsDataModule(DCGANGenerator(latent_dim=16, width=8), checkpoint="run:dcgan-fashion_mnist")
    torch.testing.assert_close(dm.render(z), (g(z) + 1) / 2)


class Flat(nn.Module):
    """A user's generator without lit_digest's attributes, images in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(6, 3 * 32 * 32)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.linear(z)).view(-1, 3, 32, 32)


def test_any_generator_module_with_explicit_sizes_and_range_trains_simclr_on_cifar(cifar_subset, quiet_trainer):
    from lit_digest.ssl import NpzImageDataModule

    real = NpzImageDataModule(str(cifar_subset), batch_size=64, num_workers=0, knn_bank_size=256)
    with pytest.raises(ValueError, match="latent_dim"):
        GeneratedViewsDataModule(Flat(), eval_data=real)
    dm = GeneratedViewsDataModule(Flat(), latent_dim=6, output_range=(0.0, 1.0), sigma=0.3, num_samples=64,
                                  batch_size=16, num_workers=0, eval_data=real, views=SimCLRViews(crop_size=32))
    model = SimCLR(SmallConvNet(3, 4), proj_hidden_dim=16, proj_dim=8)
    trainer = quiet_trainer(max_steps=2, limit_val_batches=2)
    trainer.fit(model, dm)
    assert trainer.global_step == 2 and torch.isfinite(trainer.callback_metrics["train/loss"])
    assert dm.in_channels == 3 and dm.num_classes == 10
    grey = GeneratedViewsDataModule(tiny_generator(), eval_data=real)
    with pytest.raises(ValueError, match=r"1-channel images but NpzImageDataModule holds 3-channel.*out_channels=3"):
        grey.setup()


def test_missing_fashion_mnist_names_the_folder_and_the_fix(tmp_path):
    """Whether or not Debian's package is installed here: an empty folder fails at once, before any training."""
    from lit_digest.ssl.genrep.experiment import main

    expected = (rf"Fashion-MNIST not found at '{re.escape(str(tmp_path.resolve()))}'.*missing train-images"
                r".*/usr/share/datasets/fashion-mnist.*apt install dataset-fashion-mnist")
    with pytest.raises(FileNotFoundError, match=expected):
        main(["--data-dir", str(tmp_path), "--out", str(tmp_path / "out"), "--quick"])
    assert not (tmp_path / "out" / "generator").exists()


@pytest.mark.parametrize("layout", ["plain", "gz", "torchvision"])
def test_the_data_check_accepts_debians_and_torchvisions_layouts(tmp_path, layout):
    from lit_digest.ssl.genrep.experiment import FILES, check_fashion_mnist

    folder = tmp_path / "FashionMNIST" / "raw" if layout == "torchvision" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES[:-1]:
        (folder / (name + (".gz" if layout == "gz" else ""))).touch()
    with pytest.raises(FileNotFoundError, match="missing t10k-labels-idx1-ubyte"):
        check_fashion_mnist(tmp_path)
    (folder / FILES[-1]).touch()
    check_fashion_mnist(tmp_path)


def test_findings_read_an_inverse_u_and_a_gain_over_pixel_augmentations():
    from lit_digest.ssl.genrep.experiment import findings, format_table

    def row(sigma, acc, pixel=True):
        return {"name": "generated", "kind": "generated", "views": "v", "sigma": sigma, "pixel": pixel,
                "knn": acc, "linear": acc, "seconds": 1.0}

    rows = [row(0, 0.60), row(0.25, 0.63), row(0.5, 0.66), row(1.0, 0.64), row(2.0, 0.55), row(0.5, 0.9, pixel=False)]
    result = findings(rows)  # the latent-only arm (0.9) is no part of the sweep
    assert result["latent_beats_pixel"] and result["best_sigma"] == 0.5 and result["inverse_u"]
    assert result["gain_over_pixel_only"] == pytest.approx(0.06) and result["peak_sigma"] == 0.5
    assert result["fall_after_peak"] == pytest.approx(0.11)
    monotone = findings([row(0, 0.60), row(0.25, 0.61), row(0.5, 0.62), row(1.0, 0.63)])
    assert monotone["latent_beats_pixel"] and not monotone["inverse_u"]  # rises, never falls
    worse = findings([row(0, 0.70), row(0.25, 0.61), row(0.5, 0.62), row(1.0, 0.60)])
    assert not worse["latent_beats_pixel"] and not worse["inverse_u"]  # the peak is sigma 0: it only falls
    two = findings([row(0, 0.60), row(0.5, 0.65), row(2.0, 0.62)])  # sigma 0 is the U's left end
    assert two["inverse_u"] and two["peak_sigma"] == 0.5
    assert "inverse_u" not in findings([row(0, 0.60), row(0.5, 0.65)])  # two points make no U
    for metric in ("linear", "knn"):
        assert findings(rows, metric)["metric"] == metric
    assert "| generated | v | 0.5 | 66.0 | 66.0 | 1 s |" in format_table(rows)


DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(not DEBIAN.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_the_experiment_runs_end_to_end_on_real_fashion_mnist(tmp_path, capsys, monkeypatch):
    from lit_digest.ssl.genrep.experiment import main

    monkeypatch.chdir(tmp_path)  # the measured run's folder: runs/measured/genrep/<date>_<time>
    text = main(["--out", str(tmp_path), "--quick", "--sigmas", "0.5", "2", "--latent-only", "0.5"])
    for expected in ("real Fashion-MNIST (baseline)", "random initialisation", "pixel only", "latent + pixel",
                     "latent only", "rises then falls", "wall time", "on 2000 labeled training images"):
        assert expected in text
    result = json.loads((tmp_path / "results.json").read_text())
    rows = result["rows"]
    assert len(rows) == 6 and all(0 <= r["linear"] <= 1 and 0 <= r["knn"] <= 1 for r in rows)
    assert [r["sigma"] for r in rows if r["kind"] == "generated"] == [0.0, 0.5, 2.0, 0.5]
    assert result["eval_train"] == 2000 and (tmp_path / "generator" / "checkpoints" / "last.ckpt").is_file()
    measured = next((tmp_path / "runs" / "measured" / "genrep").iterdir())
    recorded = json.loads((measured / "results.json").read_text())
    assert recorded["settings"]["sigmas"] == [0.5, 2.0] and recorded["settings"]["steps"] == 5  # --quick's, as used
    assert (measured / "sigma_sweep.png").stat().st_size > 0
    assert {"real_knn", "random_linear", "pixel_knn", "sigma05_linear", "sigma2_knn", "latent_sigma05_knn"} <= set(
        recorded["numbers"])


def test_the_sweep_plot_draws_every_arm():
    from lit_digest.ssl.genrep.experiment import arm_name, sweep_figure

    rows = [{"name": "real", "kind": "real", "sigma": None, "knn": 0.8, "linear": 0.82},
            {"name": "random", "kind": "random", "sigma": None, "knn": 0.7, "linear": 0.72},
            *({"name": "generated", "kind": "generated", "sigma": s, "pixel": True, "knn": a, "linear": a}
              for s, a in ((0.0, 0.74), (0.5, 0.76), (2.0, 0.73))),
            {"name": "generated", "kind": "generated", "sigma": 0.5, "pixel": False, "knn": 0.6, "linear": 0.61}]
    assert [arm_name(r) for r in rows] == ["real", "random", "pixel", "sigma05", "sigma2", "latent_sigma05"]
    fig = sweep_figure(rows)
    for ax, metric in zip(fig.axes, ("linear", "knn")):
        sweep, latent = ax.lines[0], ax.lines[1]
        assert list(sweep.get_xdata()) == [0.0, 0.5, 2.0] and list(latent.get_xdata()) == [0.5]
        assert list(sweep.get_ydata()) == pytest.approx([100 * r[metric] for r in rows[2:5]])
        assert sorted(line.get_ydata()[0] for line in ax.lines[2:]) == pytest.approx([100 * rows[1][metric],
                                                                                       100 * rows[0][metric]])
