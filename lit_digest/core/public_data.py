"""The public data sets behind the README's numbers, fetched from their source and built exactly as measured.

``python -m lit_digest get <name> [--to DIR]`` (``lit_digest.cli.get``) runs ``get(name, DIR)``: the download goes
through ``lit_digest.core.download.fetch`` (a ``.part`` file renamed when complete; offline, an error naming the
URL and how to place the file by hand), is checked against the checksum of the file the numbers were measured on,
and is unpacked into ``DIR`` (``data`` by default, the folder the configs read):

- ``cifar10_subset`` -> ``DIR/cifar10_subset.npz``: the first 1017 images of each of ``data_batch_1..5`` and of
  ``test_batch`` of the official CIFAR-10 python archive, in file order, as ``numpy.savez_compressed`` writes them
  (keys ``train_images`` (5085, 3, 32, 32) uint8, ``train_labels`` (5085,) uint8, ``test_images`` (1017, 3, 32, 32),
  ``test_labels`` (1017,)). The arrays' checksum (``array_checksum``) must equal ``CIFAR10_SUBSET_ARRAYS``; the
  file's own sha256 is ``CIFAR10_SUBSET_SHA256`` where zlib deflates as numpy 2.4 / zlib 1.3 did.
- ``att_faces`` -> ``DIR/att_faces/s1..s40/1..10.pgm``: the AT&T (ORL) Database of Faces, 400 grey 92x112 PGM
  files, from the AT&T Laboratories Cambridge archive (``ATT_FACES_URLS``: the Cambridge Computer Laboratory's
  copy, then the Internet Archive's copy of that same URL). The pixels' checksum must equal ``ATT_FACES_PIXELS``.
  scikit-learn's ``fetch_olivetti_faces`` holds the same 400 faces, but downscaled to 64x64: other numbers.
- ``fashion_mnist`` -> ``DIR/FashionMNIST/raw/*-ubyte.gz``: the four original files from Zalando's server (the
  mirror torchvision uses), with their md5; Debian's ``apt install dataset-fashion-mnist`` gives the same data in
  ``/usr/share/datasets/fashion-mnist``.

Downloads are kept under ``DIR/downloads`` (a second ``get`` reuses them; delete them once built).
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lit_digest.core.download import MissingDataError, fetch, missing_data_error

__all__ = ["DATASETS", "PublicData", "get", "listing", "array_checksum", "build_cifar10_subset",
           "build_att_faces", "att_faces_checksum", "CIFAR10_URL", "ATT_FACES_URLS", "FASHION_MNIST_URL"]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"  # the archive's, as torchvision's CIFAR10.tgz_md5
CIFAR10_PER_BATCH = 1017
CIFAR10_SUBSET_KEYS = ("train_images", "train_labels", "test_images", "test_labels")
# of ../shared/data/cifar10_subset.npz, the file behind the README's CIFAR-10 subset numbers
CIFAR10_SUBSET_ARRAYS = "2f60cbf6a60566c4e074efb23e5b05879024990315209282df805658ad9fe25c"
CIFAR10_SUBSET_SHA256 = "c1816e3804ac89b3e91346b5093b17e26fef8e86789b547282c41e9ace636afd"

ATT_FACES_URLS = (
    "https://www.cl.cam.ac.uk/Research/DTG/attarchive/pub/data/att_faces.zip",
    "https://web.archive.org/web/2016id_/https://www.cl.cam.ac.uk/Research/DTG/attarchive/pub/data/att_faces.zip",
)
ATT_FACES_PIXELS = "2e4844a9f4fa4397058f69d6208047170f2e9d399cda18b55c1e8d28f0a83431"  # of ../shared/data/att_faces
_ATT_FILE = re.compile(r"(?:^|/)s([1-9]|[1-3][0-9]|40)/([1-9]|10)\.pgm$")

FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_FILES = {  # torchvision's FashionMNIST.resources
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}


def _digest(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with path.open("rb") as f:
        while chunk := f.read(2**20):
            h.update(chunk)
    return h.hexdigest()


def _download(path: Path, urls: tuple[str, ...], name: str) -> Path:
    """``path``, downloaded from the first of ``urls`` that answers when absent; offline, one error naming them
    and how to place the file by hand."""
    failures = []
    for url in urls:
        try:
            return fetch(path, url, download=True)
        except MissingDataError as err:
            failures.append(str(err.__cause__ or err))
    raise missing_data_error(path.name, path, url=" or ".join(urls), reason=f"the download failed: {failures[-1]}",
                             fix=f"download it by hand (`curl -L -o {path} {urls[0]}`), then run `python -m "
                                 f"lit_digest get {name}` again")


def _checked(path: Path, md5: str, url: str) -> Path:
    got = _digest(path, "md5")
    if got != md5:
        raise ValueError(f"'{path}' is not the file published at {url} (md5 {got}, expected {md5}): a truncated or "
                         "altered download. Delete it and run the command again.")
    return path


def array_checksum(arrays: dict[str, np.ndarray], keys: tuple[str, ...] = CIFAR10_SUBSET_KEYS) -> str:
    """sha256 of ``keys``' names, dtypes, shapes and bytes, in that order: the same arrays give the same value
    whatever wrote the file (``np.savez`` and ``savez_compressed`` differ in bytes)."""
    h = hashlib.sha256()
    for key in keys:
        a = np.ascontiguousarray(arrays[key])
        h.update(key.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


class _ArraysOnly(pickle.Unpickler):
    """Unpickles CIFAR's batches (dicts of lists, bytes and numpy arrays) and refuses anything else."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"a CIFAR-10 batch holds no {module}.{name}")
        return super().find_class(module, name)


def _cifar_batch(archive: tarfile.TarFile, name: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    member = next((m for m in archive.getmembers() if m.isfile() and Path(m.name).name == name), None)
    if member is None:
        raise ValueError(f"'{archive.name}' has no {name}: not the CIFAR-10 python archive ({CIFAR10_URL}).")
    try:
        batch = _ArraysOnly(io.BytesIO(archive.extractfile(member).read()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError) as err:
        raise ValueError(f"{name} in '{archive.name}' is not a CIFAR-10 batch ({err}): not the CIFAR-10 python "
                         f"archive ({CIFAR10_URL}).") from err
    data, labels = np.asarray(batch[b"data"], dtype=np.uint8), np.asarray(batch[b"labels"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) < count or len(labels) != len(data):
        raise ValueError(f"{name} in '{archive.name}' holds {data.shape} images and {len(labels)} labels; a CIFAR-10 "
                         f"batch holds (10000, 3072) and 10000 (at least {count} needed).")
    return data[:count].reshape(count, 3, 32, 32), labels[:count]


def build_cifar10_subset(archive: str | Path, out: str | Path, per_batch: int = CIFAR10_PER_BATCH) -> Path:
    """``out`` (.npz): the first ``per_batch`` images of each training batch of the CIFAR-10 python ``archive``
    (``cifar-10-python.tar.gz``) and of its test batch, in file order, written by ``np.savez_compressed``."""
    with tarfile.open(archive, "r:gz") as tar:
        train = [_cifar_batch(tar, f"data_batch_{i}", per_batch) for i in range(1, 6)]
        test_images, test_labels = _cifar_batch(tar, "test_batch", per_batch)
    arrays = {"train_images": np.concatenate([x for x, _ in train]),
              "train_labels": np.concatenate([y for _, y in train]),
              "test_images": test_images, "test_labels": test_labels}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part.npz")
    np.savez_compressed(part, **arrays)
    part.replace(out)
    return out


def att_faces_checksum(folder: str | Path) -> str:
    """sha256 of the pixels of ``folder/s1..s40/1..10.pgm`` in that order (headers differ between copies)."""
    from PIL import Image

    h = hashlib.sha256()
    for person in range(1, 41):
        for image in range(1, 11):
            with Image.open(Path(folder) / f"s{person}" / f"{image}.pgm") as img:
                h.update(np.asarray(img.convert("L")).tobytes())
    return h.hexdigest()


def build_att_faces(archive: str | Path, out: str | Path) -> Path:
    """``out/s1..s40/1..10.pgm`` (and the database's README) from ``att_faces.zip``, with or without a top folder
    in the archive. Raises ``ValueError`` when the archive does not hold the 400 faces."""
    out = Path(out)
    with zipfile.ZipFile(archive) as zf:
        faces = {m.group(0).lstrip("/"): info for info in zf.infolist() if (m := _ATT_FILE.search(info.filename))}
        if len(faces) != 400:
            raise ValueError(f"'{archive}' holds {len(faces)} of the 400 face files s1..s40/1..10.pgm: not the AT&T "
                             f"faces archive ({ATT_FACES_URLS[0]}).")
        readme = next((i for i in zf.infolist() if Path(i.filename).name == "README"), None)
        for relative, info in [*faces.items(), *([("README", readme)] if readme else [])]:
            target = out / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
    return out


@dataclass(frozen=True)
class PublicData:
    """A data set ``get`` builds: its ``name``, what it is, where it comes from, its download size, what it
    builds under the target folder and the function that does it (``build(folder, log) -> path``)."""

    name: str
    what: str
    source: str
    size: str
    builds: str
    build: Callable[[Path, Callable[[str], None]], Path]


def _get_cifar10_subset(folder: Path, log: Callable[[str], None]) -> Path:
    archive = _checked(_download(folder / "downloads" / "cifar-10-python.tar.gz", (CIFAR10_URL,), "cifar10_subset"),
                       CIFAR10_MD5, CIFAR10_URL)
    out = build_cifar10_subset(archive, folder / "cifar10_subset.npz")
    with np.load(out) as npz:
        arrays = {k: npz[k] for k in npz.files}
    if array_checksum(arrays) != CIFAR10_SUBSET_ARRAYS:
        raise ValueError(f"the arrays built in '{out}' differ from those the README measured (array checksum "
                         f"{array_checksum(arrays)}, expected {CIFAR10_SUBSET_ARRAYS}); please report it.")
    sha = _digest(out)
    same = "the same file as measured" if sha == CIFAR10_SUBSET_SHA256 else \
        "the same arrays as measured (another zlib compressed them differently)"
    log(f"lit_digest: {out}: sha256 {sha}, {same}")
    return out


def _get_att_faces(folder: Path, log: Callable[[str], None]) -> Path:
    archive = _download(folder / "downloads" / "att_faces.zip", ATT_FACES_URLS, "att_faces")
    out = build_att_faces(archive, folder / "att_faces")
    got = att_faces_checksum(out)
    if got != ATT_FACES_PIXELS:
        raise ValueError(f"the faces unpacked in '{out}' differ from those the README measured (pixel checksum "
                         f"{got}, expected {ATT_FACES_PIXELS}): '{archive}' is another version of the archive.")
    log(f"lit_digest: {out}: 400 faces, pixel sha256 {got}, the same as measured")
    return out


def _get_fashion_mnist(folder: Path, log: Callable[[str], None]) -> Path:
    raw = folder / "FashionMNIST" / "raw"
    for name, md5 in FASHION_MNIST_FILES.items():
        _checked(_download(raw / name, (FASHION_MNIST_URL + name,), "fashion_mnist"), md5, FASHION_MNIST_URL + name)
    log(f"lit_digest: {raw}: the 4 original files (md5 as published); read with data_dir: {folder}")
    return raw


DATASETS: dict[str, PublicData] = {d.name: d for d in (
    PublicData("cifar10_subset", "CIFAR-10, first 1017 images of each batch: 5085 train / 1017 test, 32 px",
               CIFAR10_URL, "163 MB download, 17 MB built", "cifar10_subset.npz", _get_cifar10_subset),
    PublicData("att_faces", "AT&T (ORL) Database of Faces: 40 people x 10 grey 92x112 PGM", ATT_FACES_URLS[0],
               "about 4 MB", "att_faces/", _get_att_faces),
    PublicData("fashion_mnist", "Fashion-MNIST, 60k / 10k 28x28 grey, the original IDX files", FASHION_MNIST_URL,
               "30 MB", "FashionMNIST/raw/", _get_fashion_mnist),
)}


def listing() -> str:
    """The data sets ``get`` knows, with their source and size."""
    lines = ["python -m lit_digest get <name> [--to DIR]   (DIR: data, where the configs read)", ""]
    for d in DATASETS.values():
        lines += [f"  {d.name:16s}{d.what}", f"  {'':16s}from {d.source}", f"  {'':16s}{d.size}; builds DIR/{d.builds}"]
    return "\n".join(lines)


def get(name: str, to: str | Path = "data", log: Callable[[str], None] = print) -> Path:
    """Fetch and build the data set ``name`` under ``to``; returns the built path."""
    if name not in DATASETS:
        from difflib import get_close_matches

        close = [n for n in DATASETS if n.startswith(name.lower())] or get_close_matches(name, DATASETS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ValueError(f"no data set named {name!r}{hint}: choose one of {', '.join(DATASETS)}")
    return DATASETS[name].build(Path(to), log)
