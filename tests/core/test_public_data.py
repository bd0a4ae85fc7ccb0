"""``python -m lit_digest get``: the data behind the README's numbers, built from archives of the official layout
(written here, small: no network) exactly as the local copies the numbers were measured on."""

from __future__ import annotations

import io
import pickle
import tarfile
import urllib.error
import zipfile

import numpy as np
import pytest

from lit_digest.cli.get import main as get_main
from lit_digest.core import public_data
from lit_digest.core.download import MissingDataError
from lit_digest.core.public_data import (
    ATT_FACES_PIXELS,
    CIFAR10_SUBSET_ARRAYS,
    CIFAR10_SUBSET_KEYS,
    CIFAR10_SUBSET_SHA256,
    array_checksum,
    att_faces_checksum,
    build_att_faces,
    build_cifar10_subset,
)


def _cifar_archive(path, rows: int = 7, seed: int = 0) -> dict[str, tuple[np.ndarray, list[int]]]:
    """A ``cifar-10-python.tar.gz`` of the official layout: ``cifar-10-batches-py/data_batch_1..5`` and
    ``test_batch``, each a pickled dict of ``b"data"`` (rows, 3072) uint8 and ``b"labels"``, written as Python 2
    wrote them (protocol 2, byte-string keys)."""
    rng = np.random.default_rng(seed)
    batches = {}
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            data = rng.integers(0, 256, (rows, 3072), dtype=np.uint8)
            labels = rng.integers(0, 10, rows).tolist()
            batches[name] = (data, labels)
            blob = pickle.dumps({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                                 b"filenames": [b"x.png"] * rows}, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return batches


def test_the_cifar_subset_is_the_first_images_of_each_batch_in_file_order(tmp_path):
    batches = _cifar_archive(tmp_path / "cifar.tar.gz")
    out = build_cifar10_subset(tmp_path / "cifar.tar.gz", tmp_path / "subset.npz", per_batch=3)
    with np.load(out) as npz:
        got = {k: npz[k] for k in npz.files}
    assert list(got) == list(CIFAR10_SUBSET_KEYS)
    train = [(data[i], labels[i]) for name in [f"data_batch_{b}" for b in range(1, 6)]
             for data, labels in [batches[name]] for i in range(3)]
    assert got["train_images"].shape == (15, 3, 32, 32) and got["train_images"].dtype == np.uint8
    for row, (data, label) in enumerate(train):  # a row is 1024 red, 1024 green, 1024 blue values, row-major
        for c in range(3):
            assert np.array_equal(got["train_images"][row, c], data[1024 * c: 1024 * (c + 1)].reshape(32, 32))
        assert got["train_labels"][row] == label
    assert np.array_equal(got["test_images"].reshape(3, -1), batches["test_batch"][0][:3])
    assert got["test_labels"].tolist() == batches["test_batch"][1][:3] and got["test_labels"].dtype == np.uint8


def test_the_built_file_has_the_layout_of_the_measured_copy_and_the_documented_checksums(tmp_path, cifar_subset):
    _cifar_archive(tmp_path / "cifar.tar.gz")
    built = np.load(build_cifar10_subset(tmp_path / "cifar.tar.gz", tmp_path / "subset.npz", per_batch=2))
    with np.load(cifar_subset) as measured:
        assert measured.files == built.files
        for key in measured.files:
            assert measured[key].dtype == built[key].dtype and measured[key].shape[1:] == built[key].shape[1:]
        assert measured["train_images"].shape[0] == 5 * 1017 and measured["test_images"].shape[0] == 1017
        assert array_checksum({k: measured[k] for k in measured.files}) == CIFAR10_SUBSET_ARRAYS
    assert public_data._digest(cifar_subset) == CIFAR10_SUBSET_SHA256


def test_a_pickle_that_is_no_cifar_batch_is_refused(tmp_path):
    blob = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"evil": print}, protocol=2)
    with tarfile.open(tmp_path / "bad.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(ValueError, match="data_batch_1 .* is not a CIFAR-10 batch .*holds no .*print"):
        build_cifar10_subset(tmp_path / "bad.tar.gz", tmp_path / "x.npz", per_batch=1)


def _faces_zip(path, top: str = "att_faces/", missing: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{top}README", "The ORL face database")
        for person in range(1, 41):
            for image in range(1, 11):
                if person * 10 + image <= 10 + missing:
                    continue
                buffer = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (112, 92), dtype=np.uint8)).save(buffer, format="PPM")
                zf.writestr(f"{top}s{person}/{image}.pgm", buffer.getvalue())


@pytest.mark.parametrize("top", ["att_faces/", ""])
def test_the_faces_are_unpacked_as_s1_to_s40(tmp_path, top):
    _faces_zip(tmp_path / "faces.zip", top)
    out = build_att_faces(tmp_path / "faces.zip", tmp_path / "att_faces")
    assert len(list(out.glob("s*/*.pgm"))) == 400 and (out / "README").is_file()
    assert (out / "s40" / "10.pgm").is_file()
    _faces_zip(tmp_path / "short.zip", top, missing=2)
    with pytest.raises(ValueError, match="holds 398 of the 400"):
        build_att_faces(tmp_path / "short.zip", tmp_path / "other")


def test_the_documented_pixel_checksum_is_the_measured_faces(att_faces):
    assert att_faces_checksum(att_faces) == ATT_FACES_PIXELS


def test_offline_the_error_names_the_url_and_the_command(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("lit_digest.core.download.urllib.request.urlopen", offline)
    with pytest.raises(MissingDataError, match=r"att_faces.zip not found.*cl\.cam\.ac\.uk.*web\.archive\.org.*"
                                               r"curl -L -o .*get att_faces"):
        public_data.get("att_faces", tmp_path)
    assert not list(tmp_path.rglob("*.part"))


def test_a_wrong_archive_is_refused_by_its_checksum(tmp_path):
    (tmp_path / "downloads").mkdir()
    _cifar_archive(tmp_path / "downloads" / "cifar-10-python.tar.gz")  # placed by hand: used, not downloaded
    with pytest.raises(ValueError, match="not the file published at .*md5"):
        public_data.get("cifar10_subset", tmp_path)


def test_the_command_lists_the_data_sets_and_names_a_typo(capsys):
    assert get_main([]) == 0
    listed = capsys.readouterr().out
    for name in ("cifar10_subset", "att_faces", "fashion_mnist", "cs.toronto.edu", "MB"):
        assert name in listed
    assert get_main(["cifar"]) == 1  # one line, no traceback
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no data set named 'cifar' (did you mean cifar10_subset?)" in err
