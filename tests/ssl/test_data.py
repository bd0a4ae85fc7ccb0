"""DataModules: shapes, both augmentation paths, real data, and clear errors for bad input."""

import urllib.error

import numpy as np
import pytest
import torch
import torchvision

from lit_digest import (
    BYOLViews,
    CIFAR10DataModule,
    DigitsDataModule,
    ImageFolderDataModule,
    NpzImageDataModule,
)
from lit_digest.core.lightning import Trainer
from lit_digest.ssl import STL10DataModule
from lit_digest.ssl.data import DatasetNotFoundError


class _Training:
    training = True


def test_digits_module_shapes_and_split():
    dm = DigitsDataModule(batch_size=32, num_workers=0, views=BYOLViews(crop_size=8))
    dm.setup()
    assert len(dm.splits.pretrain) + len(dm.splits.val) == 1797
    assert dm.num_classes == 10 and dm.in_channels == 1
    x, y = next(iter(dm.train_dataloader()))
    assert x.dtype == torch.uint8 and x.shape == (32, 1, 8, 8)
    assert [len(loader.dataset) for loader in dm.val_dataloader()] == [360, 1437]


def test_device_and_worker_paths_give_the_same_batch_structure():
    for mode in ("device", "workers"):
        dm = DigitsDataModule(batch_size=16, num_workers=0, views=BYOLViews(crop_size=8), augment_on=mode)
        dm.setup()
        dm.trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
        dm.trainer.state.fn, dm.trainer.training = "fit", True
        batch = next(iter(dm.train_dataloader()))
        views, labels = dm.on_after_batch_transfer(batch, 0)
        assert len(views) == 2 and views[0].shape == (16, 1, 8, 8) and views[0].dtype == torch.float32
        assert labels.shape == (16,)
        # normalised with the training statistics
        assert abs(views[0].mean().item()) < 1.5


def test_knn_bank_size_limits_the_second_validation_loader():
    dm = DigitsDataModule(batch_size=32, num_workers=0, knn_bank_size=100)
    assert [len(loader.dataset) for loader in dm.val_dataloader()] == [360, 100]
    assert len(DigitsDataModule(num_workers=0, knn_bank_size=0).val_dataloader()) == 1


def test_npz_module_reads_the_real_cifar_subset(cifar_subset):
    dm = NpzImageDataModule(path=str(cifar_subset), batch_size=64, num_workers=0)
    dm.setup()
    assert len(dm.splits.pretrain) == 5085 and len(dm.splits.val) == 1017 and dm.num_classes == 10
    assert dm.mean[0] == pytest.approx(0.49, abs=0.03)  # CIFAR-10's red-channel mean
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (64, 3, 32, 32) and x.dtype == torch.uint8 and int(y.max()) < 10


def test_npz_accepts_nhwc_and_rejects_missing_keys_and_corrupt_files(tmp_path):
    good = tmp_path / "nhwc.npz"
    img = np.random.randint(0, 255, (10, 8, 8, 3), dtype=np.uint8)
    np.savez(good, train_images=img, train_labels=np.arange(10) % 2, test_images=img[:4], test_labels=np.zeros(4))
    dm = NpzImageDataModule(path=str(good), batch_size=2, num_workers=0)
    dm.setup()
    assert dm.splits.pretrain.images.shape == (10, 3, 8, 8)

    partial = tmp_path / "partial.npz"
    np.savez(partial, train_images=img)
    with pytest.raises(ValueError, match=r"partial.npz.*lacks the keys \['train_labels'"):
        NpzImageDataModule(path=str(partial), num_workers=0).setup()

    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(ValueError, match=r"corrupt.npz. is not an .npz archive .*data.init_args.path"):
        NpzImageDataModule(path=str(corrupt), num_workers=0).setup()

    with pytest.raises(DatasetNotFoundError, match=r"\.npz file not found at .*nowhere\.npz"):
        NpzImageDataModule(path=str(tmp_path / "nowhere.npz"), num_workers=0).setup()


@pytest.mark.parametrize("module", [CIFAR10DataModule, STL10DataModule])
def test_missing_dataset_offline_names_path_and_url(tmp_path, monkeypatch, module):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", no_network)
    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", no_network)
    for cls in (torchvision.datasets.CIFAR10, torchvision.datasets.STL10):
        monkeypatch.setattr(cls, "download", lambda self: no_network())
    dm = module(data_dir=str(tmp_path / "datasets"), num_workers=0)
    url = torchvision.datasets.CIFAR10.url if module is CIFAR10DataModule else torchvision.datasets.STL10.url
    with pytest.raises(DatasetNotFoundError) as err:
        dm.prepare_data()
    message = str(err.value)
    assert str(tmp_path / "datasets") in message and url in message and "the download failed" in message


def test_corrupt_cifar_copy_is_reported(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta"]:
        (folder / name).write_bytes(b"garbage")
    with pytest.raises(DatasetNotFoundError, match="missing or corrupt"):
        CIFAR10DataModule(data_dir=str(tmp_path), download=False, num_workers=0).setup()


def test_image_folder_module_decodes_resizes_and_reports_bad_files(tmp_path):
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(3):
                img = torch.randint(0, 255, (3, 40 + i, 50), dtype=torch.uint8)
                torchvision.io.write_png(img, str(tmp_path / split / cls / f"{i}.png"))
    dm = ImageFolderDataModule(data_dir=str(tmp_path), image_size=24, load_size=32, batch_size=4, num_workers=0)
    dm.setup()
    assert dm.num_classes == 2
    x, y, sizes = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.uint8
    assert sizes.shape == (4, 2) and set(sizes[:, 1].tolist()) == {50} and set(sizes[:, 0].tolist()) <= {40, 41, 42}
    val_x, _ = next(iter(dm.val_dataloader()[0]))
    assert val_x.shape[-2:] == (24, 24)

    (tmp_path / "train" / "cat" / "broken.png").write_bytes(b"not a png")
    dm = ImageFolderDataModule(data_dir=str(tmp_path), image_size=24, load_size=32, batch_size=16, num_workers=0)
    with pytest.raises(ValueError, match="Could not decode image .*broken.png"):
        next(iter(dm.train_dataloader()))

    with pytest.raises(DatasetNotFoundError, match="Image folder not found at .*missing"):
        ImageFolderDataModule(data_dir=str(tmp_path / "missing"), num_workers=0).setup()


def test_stl10_pretrain_split_selects_labeled_or_all_images(monkeypatch):
    import types

    import lit_digest.ssl.datasets as images

    sizes = {"train": 6, "test": 4, "train+unlabeled": 20}

    def fake_open(cls, root, download, split):
        n = sizes[split]
        labels = np.arange(n) % 10 if split != "train+unlabeled" else np.r_[np.arange(6) % 10, -np.ones(14)]
        return types.SimpleNamespace(data=np.zeros((n, 3, 96, 96), np.uint8), labels=labels.astype(np.int64))

    monkeypatch.setattr(images, "_torchvision_open", fake_open)
    unlabeled = STL10DataModule(num_workers=0)
    unlabeled.setup()
    assert len(unlabeled.splits.pretrain) == 20 and int(unlabeled.splits.pretrain.labels.min()) == -1
    labeled = STL10DataModule(num_workers=0, pretrain_split="train")
    labeled.setup()
    assert len(labeled.splits.pretrain) == 6 and int(labeled.splits.pretrain.labels.min()) >= 0
    with pytest.raises(ValueError, match="pretrain_split"):
        STL10DataModule(pretrain_split="unlabeled")


def test_image_folder_training_views_see_the_whole_image_not_a_centre_crop(tmp_path):
    """A wide 40 x 120 image whose left and right thirds are red and blue, its middle green: a centre crop
    (what 0.1 did before the random resized crop) keeps only the green; views of the whole image must
    show red and blue too, and their crops keep torchvision's aspect ratios in the original's pixels."""
    image = torch.zeros(3, 40, 120, dtype=torch.uint8)
    image[0, :, :40] = 255  # red
    image[1, :, 40:80] = 255  # green
    image[2, :, 80:] = 255  # blue
    for split in ("train", "val"):
        (tmp_path / split / "a").mkdir(parents=True)
        torchvision.io.write_png(image, str(tmp_path / split / "a" / "wide.png"))
    dm = ImageFolderDataModule(data_dir=str(tmp_path), image_size=32, load_size=32, batch_size=1, num_workers=0,
                               views=BYOLViews(crop_size=16, min_scale=0.08, jitter_p=0.0, grayscale_p=0.0,
                                               solarize_p=(0.0, 0.0)), knn_bank_size=0)
    x, y, sizes = next(iter(dm.train_dataloader()))
    assert sizes.tolist() == [[40, 120]]
    x = x.repeat(256, 1, 1, 1)
    views = torch.cat(dm.prepare_views(x, sizes.repeat(256, 1)))  # (512, 3, 16, 16), normalised
    colour = dm.denormalize(views).mean(dim=(2, 3))  # (512, 3) mean colour of each view
    assert (colour[:, 0] > 0.9).any() and (colour[:, 2] > 0.9).any() and (colour[:, 1] > 0.9).any()
    view = dm.views.views[0]
    params = view.sample_params(2000, 32, 32, sizes=torch.tensor([[40, 120]]).repeat(2000, 1))
    top, left, h, w = params["crop"].unbind(1)  # in the batch's 32 x 32 pixels
    orig_h, orig_w = h * 40 / 32, w * 120 / 32  # back in the original's pixels
    ratio = orig_w / orig_h
    fits = (orig_h < 40 - 1e-3) | (orig_w < 120 - 1e-3)  # the whole-image fallback has the image's ratio
    assert ((ratio[fits] > 3 / 4 * 0.9) & (ratio[fits] < 4 / 3 * 1.1)).all()
    assert (left + w <= 32 + 1e-4).all() and (top + h <= 32 + 1e-4).all()
