"""The image data a user points at: MNIST-format files as Debian ships them, subsets, clear errors, and
warnings for settings that quietly cost accuracy or minutes."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from lit_digest.core.lightning import Trainer
from lit_digest.ssl import (
    BYOL,
    BYOLViews,
    DigitsDataModule,
    FashionMNISTDataModule,
    NpzImageDataModule,
    SmallConvNet,
    SyntheticImageDataModule,
)
from lit_digest.ssl.mnist import FILES, read_idx

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


@pytest.mark.parametrize("layout", ["torchvision_gz", "flat_unpacked"])
def test_mnist_format_files_are_read_gzipped_or_not_in_either_layout(tmp_path, layout):
    rng = np.random.default_rng(0)
    folder = tmp_path / "FashionMNIST" / "raw" if layout == "torchvision_gz" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if layout == "torchvision_gz" else ""
    arrays = {}
    for split, n in (("train", 12), ("test", 5)):
        images, labels = FILES[split]
        arrays[split] = (rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n))
        write_idx(folder / f"{images}{suffix}", arrays[split][0])
        write_idx(folder / f"{labels}{suffix}", arrays[split][1])
    dm = FashionMNISTDataModule(data_dir=str(tmp_path), download=False, num_workers=0)
    dm.setup()
    x, y = dm.splits.pretrain[3]
    assert x.shape == (1, 28, 28) and torch.equal(x[0], torch.from_numpy(arrays["train"][0][3]).to(torch.uint8))
    assert int(y) == arrays["train"][1][3] and len(dm.splits.test) == 5


def test_missing_fashion_mnist_names_the_layout_and_debians_folder(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        FashionMNISTDataModule(data_dir=str(tmp_path), download=False).setup()
    message = str(err.value)
    for expected in (str(tmp_path), "FashionMNIST/raw/", "train-images-idx3-ubyte", "unpacked or .gz",
                     "/usr/share/datasets/fashion-mnist"):
        assert expected in message, expected


def test_a_corrupt_idx_file_is_named(tmp_path):
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(b"PK not idx")
    with pytest.raises(ValueError, match="is not an IDX file"):
        read_idx(bad)


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debians_fashion_mnist_reads_where_it_is():
    dm = FashionMNISTDataModule(data_dir=str(DEBIAN), download=False, num_workers=0, train_subset=1000)
    dm.setup()
    assert len(dm.splits.pretrain) == 1000 and len(dm.splits.test) == 10000 and dm.in_channels == 1


def test_train_subset_is_a_fixed_seeded_subset_of_the_training_images():
    def indices(**kw):
        dm = DigitsDataModule(num_workers=0, **kw)
        dm.setup()
        return dm.splits.pretrain.indices, dm.splits.eval_train is dm.splits.pretrain, len(dm.splits.val)

    (a, same, n_val), (b, _, _) = indices(train_subset=100, seed=1), indices(train_subset=100, seed=1)
    assert a == b and len(a) == 100 and same and n_val == 360  # validation untouched
    assert indices(train_subset=100, seed=2)[0] != a and len(indices(train_subset=0.5)[0]) == round(0.5 * 1437)
    with pytest.raises(ValueError, match="train_subset"):
        DigitsDataModule(train_subset=0.0)


def test_views_of_another_size_than_the_evaluation_images_are_warned_about():
    with pytest.warns(UserWarning, match="views are 32 px but the evaluation images are 28 px"):
        SyntheticImageDataModule(image_size=28, num_workers=0, views=BYOLViews(crop_size=32)).setup()


def test_the_knn_bank_is_capped_on_a_cpu_by_default():
    dm = SyntheticImageDataModule(num_train=12_000, num_test=8, image_size=8, num_workers=0)
    dm.setup()
    dm.trainer = Trainer(accelerator="cpu", logger=False)
    assert len(dm.knn_bank()) == 10_000
    dm.knn_bank_size = -1
    assert len(dm.knn_bank()) == 12_000


def test_grey_images_into_a_colour_encoder_are_named_before_training(tmp_path):
    model = BYOL(SmallConvNet(in_channels=3, width=4), proj_hidden_dim=16, proj_dim=8, pred_hidden_dim=16)
    trainer = Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, default_root_dir=tmp_path)
    with pytest.raises(ValueError, match="gives 1-channel images but SmallConvNet expects 3 channels: set "
                                         "model.init_args.backbone.init_args.in_channels: 1"):
        trainer.fit(model, DigitsDataModule(num_workers=0, batch_size=64, views=BYOLViews(crop_size=8)))


def test_a_file_that_is_not_an_npz_is_named_as_such(tmp_path):
    fake = tmp_path / "images.npz"
    np.save(tmp_path / "array.npy", np.zeros(3))
    fake.write_bytes((tmp_path / "array.npy").read_bytes())  # an .npy, not an .npz
    with pytest.raises(ValueError, match="is not an .npz archive") as err:
        NpzImageDataModule(path=str(fake), num_workers=0).setup()
    assert "pickle" not in str(err.value)
