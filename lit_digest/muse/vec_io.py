"""Word-embedding files: fastText ``.vec`` text (streamed), ``.pth``/``.pt`` and ``.npy`` matrices with a
word list, MUSE's ``--normalize_embeddings``. Writing and the streamed export are in ``export.py``.

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

import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lit_digest.core.download import missing_data_error

__all__ = ["EmbeddingFormatError", "Embeddings", "iter_vec", "load_embeddings", "normalize_embeddings", "read_vec"]


class EmbeddingFormatError(ValueError):
    """A malformed embeddings or dictionary file; the message names the file and line."""


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
        raise missing_data_error("Embeddings file", path, fix="check the path given for the embeddings")
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
        raise missing_data_error(
            "Word list", path, fix="give one word per line, line i naming row i of the matrix (src_words / tgt_words)"
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
        raise missing_data_error("Embeddings file", path, fix="check the path given for the embeddings")
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
