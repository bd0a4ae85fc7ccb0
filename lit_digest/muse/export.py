"""Writing embeddings: ``.vec`` files streamed chunk by chunk, and MUSE's export of the aligned spaces
(every word of the original files, normalised as in training, the source side mapped by W)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lit_digest.muse.vec_io import Embeddings, _is_header, _parse_ops, iter_vec, normalize_embeddings

__all__ = ["export_aligned", "write_vec"]


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
