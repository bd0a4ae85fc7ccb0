"""Word embeddings and bilingual dictionaries for MUSE (arXiv 1710.04087).

- ``read_vec`` / ``iter_vec``: fastText ``.vec`` text files, with the errors a person can act on
  (file and line number for every malformed line);
- ``load_embeddings``: ``.vec``/``.txt``, ``.pth``/``.pt`` and ``.npy`` matrices with a word list;
- ``read_dictionary``: MUSE-format dictionaries (``src tgt`` per line);
- ``normalize_embeddings``: MUSE's ``--normalize_embeddings`` (``center``, ``renorm``);
- ``fetch`` and the ``official_*`` helpers: the released fastText Wikipedia vectors and MUSE
  dictionaries, downloaded on request, otherwise a clear error naming the missing file;
- ``export_aligned`` / ``write_vec``: streamed export, never two full copies in memory;
- ``make_synthetic_pair``: a source space, a rotated noisy copy with a shuffled vocabulary and a
  planted gold dictionary, for tests and offline demos;
- ``EmbeddingsDataModule`` / ``SyntheticEmbeddingsDataModule``: the LightningDataModules.

``.vec`` format, as read here
- The first line is a header when it is exactly two integers (``n_words dim``); otherwise the file
  has no header, a warning says so, and the dimension is taken from the first line.
- Every other line is ``word v_1 ... v_dim`` separated by single ASCII spaces (trailing
  whitespace ignored); blank lines are skipped. A line with another number of values, a value
  that is not a number, or a non-finite value raises ``EmbeddingFormatError`` naming the file
  and line. Bytes that are not UTF-8 are replaced (U+FFFD), with one warning.
- A word seen before (after lowercasing, when asked) is skipped: the first occurrence, the most
  frequent in fastText's frequency order, is kept; one warning counts the skipped lines.
- An all-zero vector gets 0.01 as its first value so that it can be normalised (as MUSE does).
- ``max_vocab`` (> 0) keeps the first ``max_vocab`` distinct words.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from lit_digest.alignment import identical_strings_dictionary

__all__ = [
    "DICTIONARY_SPLITS",
    "EmbeddingFormatError",
    "Embeddings",
    "EmbeddingsDataModule",
    "MissingDataError",
    "SyntheticEmbeddingsDataModule",
    "SyntheticPair",
    "export_aligned",
    "fetch",
    "iter_vec",
    "load_embeddings",
    "make_synthetic_pair",
    "normalize_embeddings",
    "official_dictionary",
    "official_vectors",
    "read_dictionary",
    "read_vec",
    "write_vec",
]

log = logging.getLogger(__name__)

VECTORS_URL = "https://dl.fbaipublicfiles.com/fasttext/vectors-wiki/wiki.{lang}.vec"
DICTIONARY_URL = "https://dl.fbaipublicfiles.com/arrival/dictionaries/{src}-{tgt}{suffix}.txt"
DICTIONARY_SPLITS = {"full": "", "train": ".0-5000", "test": ".5000-6500"}


class EmbeddingFormatError(ValueError):
    """A malformed embeddings or dictionary file; the message names the file and line."""


class MissingDataError(FileNotFoundError):
    """A data file is absent and could not (or may not) be downloaded."""


@dataclass
class Embeddings:
    """A vocabulary and its vectors: ``words[i]`` has row ``vectors[i]``, (n, d) float32."""

    words: list[str]
    vectors: Tensor
    word2id: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.words) != self.vectors.shape[0]:
            raise ValueError(f"{len(self.words)} words for {self.vectors.shape[0]} vectors")
        self.word2id = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]


# --------------------------------------------------------------------------- .vec reading


def _is_header(tokens: list[str]) -> bool:
    return len(tokens) == 2 and all(t.isdigit() for t in tokens)


def _parse_values(tokens: list[str], dim: int, path: Path, lineno: int) -> np.ndarray:
    if len(tokens) != dim:
        raise EmbeddingFormatError(
            f"{path}:{lineno}: expected {dim} values after the word, found {len(tokens)}"
        )
    try:
        values = np.array(tokens, dtype=np.float32)
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        raise EmbeddingFormatError(f"{path}:{lineno}: value {bad!r} is not a number") from None
    if not np.isfinite(values).all():
        raise EmbeddingFormatError(f"{path}:{lineno}: non-finite value (nan or inf)")
    return values


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def iter_vec(
    path: str | os.PathLike,
    *,
    max_vocab: int = 0,
    lowercase: bool = False,
    chunk_rows: int = 8192,
) -> Iterator[tuple[list[str], np.ndarray]]:
    """Stream a ``.vec`` file as ``(words, vectors)`` chunks of at most ``chunk_rows`` rows.

    The rules are those of the module docstring; the first chunk is read before anything is
    yielded, so a header-less file is detected up front. Memory: one chunk.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"embeddings file not found: {path}")
    seen: set[str] = set()
    duplicates: list[int] = []
    zero_rows = 0
    bad_utf8 = 0
    dim: int | None = None
    words: list[str] = []
    rows: list[np.ndarray] = []
    kept = 0
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                line = raw.decode("utf-8", errors="replace")
                bad_utf8 += 1
            line = line.rstrip()
            if not line:
                continue
            tokens = line.split(" ")
            if dim is None:
                if _is_header(tokens):
                    dim = int(tokens[1])
                    if dim <= 0:
                        raise EmbeddingFormatError(f"{path}:{lineno}: header gives dimension {dim}")
                    continue
                dim = len(tokens) - 1
                if dim <= 0:
                    raise EmbeddingFormatError(f"{path}:{lineno}: a word with no values")
                warnings.warn(
                    f"{path} has no 'n_words dim' header; reading it as {dim}-dimensional from line {lineno}",
                    stacklevel=2,
                )
            word = tokens[0]
            if not word:
                raise EmbeddingFormatError(f"{path}:{lineno}: the line starts with a space (empty word)")
            values = _parse_values(tokens[1:], dim, path, lineno)
            key = word.lower() if lowercase else word
            if key in seen:
                duplicates.append(lineno)
                continue
            seen.add(key)
            if not values.any():
                values[0] = 0.01
                zero_rows += 1
            words.append(key)
            rows.append(values)
            kept += 1
            if len(words) >= chunk_rows:
                yield words, np.stack(rows)
                words, rows = [], []
            if 0 < max_vocab <= kept:
                break
    if dim is None:
        raise EmbeddingFormatError(f"{path}: no embeddings in the file")
    if words:
        yield words, np.stack(rows)
    if duplicates:
        warnings.warn(
            f"{path}: {len(duplicates)} duplicate word(s)"
            f"{' after lowercasing' if lowercase else ''} skipped, "
            f"the first occurrence kept (first at line {duplicates[0]})",
            stacklevel=2,
        )
    if zero_rows:
        warnings.warn(f"{path}: {zero_rows} all-zero vector(s) given 0.01 as first value", stacklevel=2)
    if bad_utf8:
        warnings.warn(f"{path}: {bad_utf8} line(s) with invalid UTF-8, bad bytes replaced", stacklevel=2)


def read_vec(path: str | os.PathLike, *, max_vocab: int = 200000, lowercase: bool = False) -> Embeddings:
    """Read a fastText ``.vec`` file (see the module docstring for the rules), float32 rows."""
    words: list[str] = []
    chunks: list[np.ndarray] = []
    for w, v in iter_vec(path, max_vocab=max_vocab, lowercase=lowercase):
        words += w
        chunks.append(v)
    vectors = torch.from_numpy(chunks[0] if len(chunks) == 1 else np.concatenate(chunks))
    return Embeddings(words, vectors)


def _read_word_list(path: Path) -> list[str]:
    if not path.is_file():
        raise MissingDataError(
            f"word list not found: {path} (one word per line, row i of the matrix = line i)"
        )
    with path.open(encoding="utf-8") as f:
        return [line.rstrip("\n").rstrip("\r") for line in f]


def _select_vocabulary(
    words: list[str], vectors: Tensor, max_vocab: int, lowercase: bool, source: Path
) -> Embeddings:
    keep: list[int] = []
    kept_words: list[str] = []
    seen: set[str] = set()
    for i, w in enumerate(words):
        key = w.lower() if lowercase else w
        if key in seen:
            continue
        seen.add(key)
        keep.append(i)
        kept_words.append(key)
        if 0 < max_vocab <= len(keep):
            break
    if len(keep) < min(len(words), max_vocab if max_vocab > 0 else len(words)):
        warnings.warn(f"{source}: duplicate words skipped, the first occurrence kept", stacklevel=3)
    index = torch.tensor(keep, dtype=torch.long)
    rows = vectors[: len(words)] if len(keep) == len(words) else vectors[index]
    return Embeddings(kept_words, torch.as_tensor(np.asarray(rows), dtype=torch.float32).clone())


def load_embeddings(
    path: str | os.PathLike,
    *,
    max_vocab: int = 200000,
    lowercase: bool = False,
    words_path: str | os.PathLike | None = None,
) -> Embeddings:
    """Embeddings from ``.vec``/``.txt`` (``read_vec``), ``.pth``/``.pt`` or ``.npy``.

    ``.pth``: a dict ``{"words": [...], "vectors": Tensor}`` (what ``export_aligned`` writes), or a
    bare (n, d) tensor with a word list. ``.npy``: an (n, d) matrix with a word list. The word
    list is ``words_path`` or, by default, ``<file without suffix>.words.txt``: one word per line.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"embeddings file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".vec", ".txt"):
        return read_vec(path, max_vocab=max_vocab, lowercase=lowercase)
    default_words = path.with_suffix(".words.txt")
    if suffix in (".pth", ".pt"):
        obj = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(obj, dict):
            if "vectors" not in obj:
                raise EmbeddingFormatError(f"{path}: a dict without a 'vectors' entry (keys: {sorted(obj)})")
            vectors = obj["vectors"]
            words = (
                list(obj["words"]) if "words" in obj else _read_word_list(Path(words_path or default_words))
            )
        elif isinstance(obj, Tensor):
            vectors, words = obj, _read_word_list(Path(words_path or default_words))
        else:
            raise EmbeddingFormatError(
                f"{path}: expected a tensor or a dict with 'vectors', got {type(obj).__name__}"
            )
    elif suffix == ".npy":
        vectors = np.load(path, mmap_mode="r")
        words = _read_word_list(Path(words_path or default_words))
    else:
        raise EmbeddingFormatError(
            f"{path}: unknown embeddings format {suffix!r} (.vec, .txt, .pth, .pt, .npy)"
        )
    if vectors.ndim != 2:
        raise EmbeddingFormatError(f"{path}: expected an (n, d) matrix, got shape {tuple(vectors.shape)}")
    if len(words) != vectors.shape[0]:
        raise EmbeddingFormatError(
            f"{path}: {vectors.shape[0]} vectors but {len(words)} words in the word list"
        )
    return _select_vocabulary(words, vectors, max_vocab, lowercase, path)


# --------------------------------------------------------------------------- dictionaries


def read_dictionary(
    path: str | os.PathLike,
    src_word2id: dict[str, int],
    tgt_word2id: dict[str, int],
    *,
    lowercase: bool = False,
) -> Tensor:
    """A MUSE dictionary as (p, 2) ``(src id, tgt id)`` pairs sorted by source rank.

    One ``src tgt`` pair per line, separated by whitespace; a source word may have several
    lines (several gold translations). Pairs with a word outside the vocabularies are dropped
    and counted (as MUSE does); lines without exactly two fields are skipped with a warning
    naming the first; a file with no usable pair raises.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingDataError(f"dictionary not found: {path}")
    pairs: set[tuple[int, int]] = set()
    malformed: list[int] = []
    missing_src = missing_tgt = n_lines = 0
    with path.open(encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                malformed.append(lineno)
                continue
            n_lines += 1
            a, b = (p.lower() for p in parts) if lowercase else parts
            i, j = src_word2id.get(a), tgt_word2id.get(b)
            missing_src += i is None
            missing_tgt += j is None
            if i is not None and j is not None:
                pairs.add((i, j))
    if malformed:
        warnings.warn(
            f"{path}: {len(malformed)} line(s) without exactly two words skipped "
            f"(first: line {malformed[0]})",
            stacklevel=2,
        )
    if not pairs:
        raise EmbeddingFormatError(
            f"{path}: no pair of the dictionary has both words in the vocabularies "
            f"({n_lines} pairs read, {missing_src} unknown source and {missing_tgt} unknown target words)"
        )
    out = torch.tensor(sorted(pairs), dtype=torch.long)
    log.info(
        "%s: %d pairs (%d source words); %d source and %d target words not in the vocabularies",
        path,
        len(out),
        len(torch.unique(out[:, 0])),
        missing_src,
        missing_tgt,
    )
    return out


# --------------------------------------------------------------------------- normalisation


def _parse_ops(ops: str | Sequence[str]) -> list[str]:
    names = [o.strip() for o in (ops.split(",") if isinstance(ops, str) else ops) if o and o.strip()]
    for name in names:
        if name not in ("center", "renorm"):
            raise ValueError(
                f"unknown normalisation {name!r}: use 'center' and/or 'renorm', e.g. 'renorm,center,renorm'"
            )
    return names


@torch.no_grad()
def normalize_embeddings(
    x: Tensor, ops: str | Sequence[str] = "", mean: Tensor | None = None
) -> Tensor | None:
    """Apply MUSE's ``--normalize_embeddings`` in place, in order: ``center`` subtracts the mean
    row (``mean`` if given, else that of ``x``), ``renorm`` scales rows to unit norm.

    ``ops``: "", "center", "renorm", "renorm,center,renorm", ... Returns the mean used by
    ``center`` (1, d) so that the same shift can be replayed at export, or None.
    """
    used = None
    for op in _parse_ops(ops):
        if op == "center":
            used = x.mean(dim=0, keepdim=True) if mean is None else mean.to(x)
            x.sub_(used)
        else:
            x.div_(x.norm(dim=1, keepdim=True).clamp_min(1e-12))
    return used


# --------------------------------------------------------------------------- official files


def official_vectors(data_dir: str | os.PathLike, lang: str) -> tuple[Path, str]:
    """Where the fastText Wikipedia vectors of ``lang`` go, and their URL."""
    return Path(data_dir) / f"wiki.{lang}.vec", VECTORS_URL.format(lang=lang)


def official_dictionary(
    data_dir: str | os.PathLike, src: str, tgt: str, split: str = "test"
) -> tuple[Path, str]:
    """Where a MUSE dictionary goes, and its URL; ``split``: "train" (0-5000), "test" (5000-6500), "full"."""
    if split not in DICTIONARY_SPLITS:
        raise ValueError(f"split must be one of {sorted(DICTIONARY_SPLITS)}, got {split!r}")
    suffix = DICTIONARY_SPLITS[split]
    return Path(data_dir) / "dictionaries" / f"{src}-{tgt}{suffix}.txt", DICTIONARY_URL.format(
        src=src, tgt=tgt, suffix=suffix
    )


def fetch(path: str | os.PathLike, url: str, *, download: bool = False, timeout: float = 60.0) -> Path:
    """``path`` if it exists; else download ``url`` there when ``download``; else a clear error.

    The download goes to ``path + '.part'`` and is renamed when complete, so an interrupted
    one never passes for the file. Any failure raises ``MissingDataError`` naming the file,
    the URL and the way around it.
    """
    path = Path(path)
    if path.is_file():
        return path
    hint = f"download it by hand (e.g. `curl -L -o {path} {url}`) or point the config at a local copy"
    if not download:
        raise MissingDataError(
            f"{path} not found; pass download=True (--data.init_args.download true) or {hint}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    log.info("downloading %s -> %s", url, path)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, part.open("wb") as out:
            shutil.copyfileobj(response, out, length=2**20)
    except (urllib.error.URLError, OSError, ValueError) as err:
        part.unlink(missing_ok=True)
        raise MissingDataError(
            f"{path} not found and the download from {url} failed ({err}); {hint}"
        ) from err
    part.replace(path)
    return path


# --------------------------------------------------------------------------- export


def _vec_line_format(dim: int, precision: int) -> str:
    return "%s" + f" %.{precision}f" * dim + "\n"


def write_vec(
    path: str | os.PathLike,
    chunks: Iterator[tuple[list[str], np.ndarray | Tensor]] | Embeddings,
    *,
    precision: int = 5,
) -> int:
    """Write ``(words, vectors)`` chunks (or an ``Embeddings``) as a ``.vec`` file; returns the row count.

    Streamed: the header's count is written as a fixed-width placeholder and filled in at the end
    (readers split the header on whitespace, so the padding is harmless).
    """
    if isinstance(chunks, Embeddings):
        emb = chunks
        chunks = ((emb.words[i : i + 8192], emb.vectors[i : i + 8192]) for i in range(0, len(emb), 8192))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    dim = None
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.write(" " * 40 + "\n")
        for words, vectors in chunks:
            vectors = vectors.detach().cpu().numpy() if isinstance(vectors, Tensor) else vectors
            if dim is None:
                dim = vectors.shape[1]
                fmt = _vec_line_format(dim, precision)
            f.writelines(fmt % (w, *row) for w, row in zip(words, vectors.tolist(), strict=True))
            n += len(words)
        f.seek(0)
        f.write(f"{n} {dim or 0}".ljust(40))
    return n


@torch.no_grad()
def _aligned_chunks(
    chunks: Iterator[tuple[list[str], np.ndarray]],
    normalize: str,
    mean: Tensor | None,
    weight: Tensor | None,
    device: str | torch.device,
) -> Iterator[tuple[list[str], Tensor]]:
    if "center" in _parse_ops(normalize) and mean is None:
        raise ValueError("export with 'center' needs the training mean (src_mean / tgt_mean)")
    w = None if weight is None else weight.detach().to(device, torch.float32)
    for words, vectors in chunks:
        x = torch.from_numpy(vectors).to(device)
        normalize_embeddings(x, normalize, mean=None if mean is None else mean.to(device))
        yield words, (x if w is None else x @ w.t()).cpu()


def _count_rows(path: Path, max_vocab: int) -> int:
    with path.open("rb") as f:
        first = f.readline().split()
        n = sum(1 for _ in f) + (0 if _is_header([t.decode(errors="replace") for t in first]) else 1)
    return min(n, max_vocab) if max_vocab > 0 else n


def export_aligned(
    src_path: str | os.PathLike,
    tgt_path: str | os.PathLike,
    weight: Tensor,
    out_dir: str | os.PathLike,
    *,
    src_lang: str = "src",
    tgt_lang: str = "tgt",
    fmt: str = "vec",
    normalize: str = "",
    src_mean: Tensor | None = None,
    tgt_mean: Tensor | None = None,
    max_vocab: int = 0,
    lowercase: bool = False,
    chunk_rows: int = 8192,
    device: str | torch.device = "cpu",
) -> tuple[Path, Path]:
    """Write the mapped source and the target embeddings of two ``.vec`` files, streamed.

    As MUSE's export: every word of the files (``max_vocab=0``) gets the training normalisation
    (with the training means) and the source rows are multiplied by ``W``. ``fmt="vec"`` writes
    ``vectors-<lang>.txt`` chunk by chunk (memory: one chunk); ``fmt="pth"`` writes
    ``vectors-<lang>.pth`` = ``{"words", "vectors"}``, filling one preallocated matrix (memory:
    that matrix, never a second copy).
    """
    if fmt not in ("vec", "pth"):
        raise ValueError(f"fmt must be 'vec' or 'pth', got {fmt!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = []
    for path, lang, mean, w in ((src_path, src_lang, src_mean, weight), (tgt_path, tgt_lang, tgt_mean, None)):
        path = Path(path)
        chunks = _aligned_chunks(
            iter_vec(path, max_vocab=max_vocab, lowercase=lowercase, chunk_rows=chunk_rows),
            normalize,
            mean,
            w,
            device,
        )
        if fmt == "vec":
            out = out_dir / f"vectors-{lang}.txt"
            write_vec(out, chunks)
        else:
            out = out_dir / f"vectors-{lang}.pth"
            capacity = _count_rows(path, max_vocab)
            words: list[str] = []
            matrix: Tensor | None = None
            for chunk_words, x in chunks:
                if matrix is None:
                    matrix = torch.empty(capacity, x.shape[1])
                matrix[len(words) : len(words) + len(chunk_words)] = x
                words += chunk_words
            torch.save({"words": words, "vectors": matrix[: len(words)]}, out)
            del matrix
        outputs.append(out)
    return outputs[0], outputs[1]


# --------------------------------------------------------------------------- synthetic data


@dataclass
class SyntheticPair:
    src: Embeddings
    tgt: Embeddings
    rotation: Tensor  # (d, d): tgt row of word i's translation ~= src[i] @ rotation.T
    gold: Tensor  # (n, 2) every (src id, tgt id) translation pair, by source rank


def make_synthetic_pair(
    n_words: int = 2000,
    dim: int = 32,
    *,
    noise: float = 0.02,
    n_clusters: int = 24,
    n_identical: int = 0,
    rotation_angle: float | None = None,
    seed: int = 0,
) -> SyntheticPair:
    """Two vocabularies whose target space is an unknown rotation of the source plus noise.

    Source rows: ``dim`` independent, skewed (centred exponential) coordinates with spreads from
    1 down to 0.2, optionally shifted by ``n_clusters`` random centres, in a random basis. Distinct
    spreads pin the axes and skewness their signs, so only the planted rotation maps one cloud
    onto the other and the adversarial game has a single answer. Target row of word i's
    translation: ``src[i] @ R.T + noise * N(0, I)``, then the target vocabulary is shuffled.

    ``rotation_angle``: None draws R uniformly (QR of a Gaussian matrix); a float draws
    ``R = expm(angle * A)`` with ``A`` a random skew-symmetric matrix whose eigen-angles are of
    order 1 rad, which keeps R at a controlled distance from the identity where MUSE starts
    (``||R - I||_F`` about 3.8 in 16-d for angle 1, against 5.7 for a uniform R). Word strings
    differ between the languages except for ``n_identical`` random translation pairs, which
    share their spelling (for the identical-strings seed).
    """
    g = torch.Generator().manual_seed(seed)
    # independent skewed coordinates with distinct spreads: second moments fix the axes, third
    # moments their signs, so the rotation is identifiable from the two clouds alone
    scales = torch.logspace(0, -0.7, dim)  # 1 ... 0.2
    x = (-torch.rand(n_words, dim, generator=g).log() - 1.0) * scales  # centred exponential
    if n_clusters > 0:
        centers = 0.5 * torch.randn(n_clusters, dim, generator=g) * scales
        x = x + centers[torch.randint(n_clusters, (n_words,), generator=g)]
    basis, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g))
    x = x @ basis.t()  # the source space itself is not axis-aligned
    if rotation_angle is None:
        rotation, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g))  # Haar-like, any angle
    else:
        skew = torch.randn(dim, dim, generator=g)
        skew = (skew - skew.t()) / math.sqrt(2 * dim)  # eigen-angles of size ~1
        rotation = torch.linalg.matrix_exp(rotation_angle * skew)
    y = x @ rotation.t() + noise * torch.randn(n_words, dim, generator=g)
    perm = torch.randperm(n_words, generator=g)  # target row perm[k] holds source word k's translation
    y_shuffled = torch.empty_like(y)
    y_shuffled[perm] = y
    src_words = [f"s{i}" for i in range(n_words)]
    tgt_words = [f"t{int(j)}" for j in torch.argsort(perm)]  # target row r translates source argsort(perm)[r]
    shared = torch.randperm(n_words, generator=g)[:n_identical]
    for i in shared.tolist():
        src_words[i] = tgt_words[int(perm[i])] = f"w{i}"
    gold = torch.stack([torch.arange(n_words), perm], dim=1)
    return SyntheticPair(Embeddings(src_words, x), Embeddings(tgt_words, y_shuffled), rotation, gold)


# --------------------------------------------------------------------------- DataModules


class _EpochSteps(IterableDataset):
    """Yields ``0 .. n-1`` where ``n`` is asked anew at every epoch (the method's schedule)."""

    def __init__(self, steps: Callable[[], int]) -> None:
        self.steps = steps

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.steps()))


class EmbeddingsDataModule(pl.LightningDataModule):
    """Two monolingual embedding spaces and their dictionaries, for MUSE's LightningModules.

    After ``setup`` it holds ``src`` / ``tgt`` (``Embeddings``, normalised as asked),
    ``src_mean`` / ``tgt_mean`` (the ``center`` shifts, for export), ``dico_train`` and
    ``dico_eval`` ((p, 2) pairs or None). Paths left as None are the official files under
    ``data_dir`` (``wiki.<lang>.vec``, ``dictionaries/<src>-<tgt>.<split>.txt``), fetched when
    ``download`` is true and otherwise reported missing with their URL.

    ``dico_train``: None (unsupervised), "default" (the official 0-5000 split),
    "identical_char" (words spelled the same in both vocabularies) or a path. ``dico_eval``:
    "default" (the official 5000-6500 split), a path, or None (criterion only).
    ``lowercase`` (MUSE's default when loading the training vocabulary) also applies to the
    dictionaries. ``src_words`` / ``tgt_words``: word lists for ``.npy`` / bare-tensor ``.pth``.

    Batches: the MUSE methods sample their own word ids on the device, so the training stream
    only counts steps, as many per epoch as the LightningModule's ``train_steps_in_epoch``
    says. Validation and test yield the evaluation dictionary as one batch.
    """

    def __init__(
        self,
        src_lang: str = "en",
        tgt_lang: str = "es",
        src_emb: str | None = None,
        tgt_emb: str | None = None,
        data_dir: str = "data/muse",
        max_vocab: int = 200000,
        lowercase: bool = True,
        normalize: str = "",
        dico_train: str | None = None,
        dico_eval: str | None = "default",
        download: bool = False,
        src_words: str | None = None,
        tgt_words: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        _parse_ops(normalize)
        self.src_lang, self.tgt_lang = src_lang, tgt_lang
        self.src_emb_path, self.tgt_emb_path = src_emb, tgt_emb
        self.src_words_path, self.tgt_words_path = src_words, tgt_words
        self.data_dir, self.download = data_dir, download
        self.max_vocab, self.lowercase, self.normalize = max_vocab, lowercase, normalize
        self.dico_train_spec, self.dico_eval_spec = dico_train, dico_eval
        self.src: Embeddings | None = None
        self.tgt: Embeddings | None = None
        self.src_mean: Tensor | None = None
        self.tgt_mean: Tensor | None = None
        self.dico_train: Tensor | None = None
        self.dico_eval: Tensor | None = None

    # files --------------------------------------------------------------------
    def _emb_file(self, given: str | None, lang: str) -> tuple[Path, str | None]:
        return (Path(given), None) if given is not None else official_vectors(self.data_dir, lang)

    def _dico_file(self, given: str, split: str) -> tuple[Path, str | None]:
        if given != "default":
            return Path(given), None
        return official_dictionary(self.data_dir, self.src_lang, self.tgt_lang, split)

    def _files(self) -> list[tuple[Path, str | None]]:
        files = [
            self._emb_file(self.src_emb_path, self.src_lang),
            self._emb_file(self.tgt_emb_path, self.tgt_lang),
        ]
        if self.dico_train_spec not in (None, "identical_char"):
            files.append(self._dico_file(self.dico_train_spec, "train"))
        if self.dico_eval_spec is not None:
            files.append(self._dico_file(self.dico_eval_spec, "test"))
        return files

    def _ensure(self, path: Path, url: str | None) -> Path:
        if url is None:
            if not path.is_file():
                raise MissingDataError(f"{path} not found")
            return path
        return fetch(path, url, download=self.download)

    # Lightning hooks ----------------------------------------------------------
    def prepare_data(self) -> None:
        if self.download:
            for path, url in self._files():
                self._ensure(path, url)

    def _load_spaces(self) -> tuple[Embeddings, Embeddings]:
        spaces = []
        for given, lang, words in (
            (self.src_emb_path, self.src_lang, self.src_words_path),
            (self.tgt_emb_path, self.tgt_lang, self.tgt_words_path),
        ):
            path = self._ensure(*self._emb_file(given, lang))
            spaces.append(
                load_embeddings(path, max_vocab=self.max_vocab, lowercase=self.lowercase, words_path=words)
            )
        return spaces[0], spaces[1]

    def _load_dictionaries(self) -> None:
        if self.dico_train_spec == "identical_char":
            self.dico_train = identical_strings_dictionary(self.src.words, self.tgt.words)
        elif self.dico_train_spec is not None:
            path = self._ensure(*self._dico_file(self.dico_train_spec, "train"))
            self.dico_train = read_dictionary(
                path, self.src.word2id, self.tgt.word2id, lowercase=self.lowercase
            )
        if self.dico_eval_spec is not None:
            path = self._ensure(*self._dico_file(self.dico_eval_spec, "test"))
            self.dico_eval = read_dictionary(
                path, self.src.word2id, self.tgt.word2id, lowercase=self.lowercase
            )

    def setup(self, stage: str | None = None) -> None:
        if self.src is not None:
            return
        src, tgt = self._load_spaces()
        if src.dim != tgt.dim:
            raise ValueError(
                f"source vectors are {src.dim}-dimensional, target vectors {tgt.dim}-dimensional"
            )
        self.src_mean = normalize_embeddings(src.vectors, self.normalize)
        self.tgt_mean = normalize_embeddings(tgt.vectors, self.normalize)
        self.src, self.tgt = src, tgt
        self._load_dictionaries()

    def _steps_this_epoch(self) -> int:
        module = self.trainer.lightning_module if self.trainer is not None else None
        steps = getattr(module, "train_steps_in_epoch", None)
        if steps is None:
            raise TypeError(
                "EmbeddingsDataModule drives training by the LightningModule's train_steps_in_epoch(epoch); "
                f"{type(module).__name__} has none (use lit_digest.methods.muse.MUSE or MUSEProcrustes)"
            )
        return int(steps(self.trainer.current_epoch))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_EpochSteps(self._steps_this_epoch), batch_size=None)

    def _dictionary_loader(self) -> DataLoader:
        pairs = self.dico_eval if self.dico_eval is not None else torch.empty(0, 2, dtype=torch.long)
        return DataLoader([pairs], batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return self._dictionary_loader()

    def test_dataloader(self) -> DataLoader:
        return self._dictionary_loader()

    # export -------------------------------------------------------------------
    def export(self, weight: Tensor, out_dir: str | os.PathLike, fmt: str = "vec") -> tuple[Path, Path]:
        """Every word of the two ``.vec`` files, mapped / normalised, streamed to ``out_dir``.

        As MUSE's export (``export_aligned``); embeddings loaded from ``.pth`` / ``.npy`` are
        exported from memory instead (the loaded vocabularies).
        """
        src_path, _ = self._emb_file(self.src_emb_path, self.src_lang)
        tgt_path, _ = self._emb_file(self.tgt_emb_path, self.tgt_lang)
        if src_path.suffix.lower() not in (".vec", ".txt") or tgt_path.suffix.lower() not in (".vec", ".txt"):
            return self._export_loaded(weight, out_dir, fmt)
        return export_aligned(
            src_path,
            tgt_path,
            weight,
            out_dir,
            src_lang=self.src_lang,
            tgt_lang=self.tgt_lang,
            fmt=fmt,
            normalize=self.normalize,
            src_mean=self.src_mean,
            tgt_mean=self.tgt_mean,
        )

    @torch.no_grad()
    def _export_loaded(self, weight: Tensor, out_dir: str | os.PathLike, fmt: str) -> tuple[Path, Path]:
        if self.src is None:
            raise RuntimeError("call setup() before export()")
        if fmt not in ("vec", "pth"):
            raise ValueError(f"fmt must be 'vec' or 'pth', got {fmt!r}")
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        w = weight.detach().cpu().float()
        step = 8192
        outputs = []
        for emb, lang, mapped in ((self.src, self.src_lang, True), (self.tgt, self.tgt_lang, False)):
            chunks = (
                (
                    emb.words[i : i + step],
                    emb.vectors[i : i + step] @ w.t() if mapped else emb.vectors[i : i + step],
                )
                for i in range(0, len(emb), step)
            )
            if fmt == "vec":
                out = out_dir / f"vectors-{lang}.txt"
                write_vec(out, chunks)
            else:
                out = out_dir / f"vectors-{lang}.pth"
                matrix = torch.empty_like(emb.vectors)
                for i, (_, x) in enumerate(chunks):
                    matrix[i * step : i * step + x.shape[0]] = x
                torch.save({"words": list(emb.words), "vectors": matrix}, out)
            outputs.append(out)
        return outputs[0], outputs[1]


class SyntheticEmbeddingsDataModule(EmbeddingsDataModule):
    """``EmbeddingsDataModule`` on ``make_synthetic_pair`` data: offline, seeded, any size.

    The evaluation dictionary is ``n_eval`` random gold pairs; ``dico_train`` is None, "default"
    (``n_train`` other gold pairs) or "identical_char" (the ``n_identical`` shared spellings).
    """

    def __init__(
        self,
        n_words: int = 2000,
        dim: int = 32,
        noise: float = 0.02,
        n_clusters: int = 24,
        n_identical: int = 0,
        n_train: int = 500,
        n_eval: int = 500,
        rotation_angle: float | None = None,
        seed: int = 0,
        normalize: str = "",
        dico_train: str | None = None,
    ) -> None:
        super().__init__(
            src_lang="src", tgt_lang="tgt", normalize=normalize, dico_train=dico_train, max_vocab=0
        )
        self.save_hyperparameters()
        self.n_words, self.dim, self.noise, self.n_clusters = n_words, dim, noise, n_clusters
        self.n_identical, self.n_train, self.n_eval, self.seed = n_identical, n_train, n_eval, seed
        self.rotation_angle = rotation_angle
        self.pair: SyntheticPair | None = None

    def prepare_data(self) -> None:
        pass

    def _load_spaces(self) -> tuple[Embeddings, Embeddings]:
        self.pair = make_synthetic_pair(
            self.n_words,
            self.dim,
            noise=self.noise,
            n_clusters=self.n_clusters,
            n_identical=self.n_identical,
            rotation_angle=self.rotation_angle,
            seed=self.seed,
        )
        return self.pair.src, self.pair.tgt

    def _load_dictionaries(self) -> None:
        order = torch.randperm(self.n_words, generator=torch.Generator().manual_seed(self.seed + 1))
        gold = self.pair.gold
        n_eval = min(self.n_eval, self.n_words // 2)  # leave words for a training dictionary
        eval_ids = order[:n_eval]
        self.dico_eval = gold[eval_ids.sort().values] if n_eval > 0 else None
        if self.dico_train_spec == "identical_char":
            self.dico_train = identical_strings_dictionary(self.src.words, self.tgt.words)
        elif self.dico_train_spec is not None:
            train_ids = order[n_eval : n_eval + self.n_train]
            self.dico_train = gold[train_ids.sort().values]

    def export(self, weight: Tensor, out_dir: str | os.PathLike, fmt: str = "vec") -> tuple[Path, Path]:
        return self._export_loaded(weight, out_dir, fmt)
