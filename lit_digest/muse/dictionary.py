"""Bilingual dictionaries: induced from aligned spaces (the refinement's training pairs), seeded from
identical spellings, or read from MUSE-format files. A dictionary is an ``(m, 2)`` int64 tensor of
``(source id, target id)`` pairs (arXiv 1710.04087, sections 2.2-2.3 and 4.1)."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from lit_digest.core.download import missing_data_error
from lit_digest.muse.csls import DEFAULT_CHUNK_BYTES, csls_topk, mutual_mean_topk_similarity, topk_similarity
from lit_digest.muse.vec_io import EmbeddingFormatError

__all__ = ["DICTIONARY_BUILDS", "EmptyDictionaryError", "candidate_pairs", "identical_strings_dictionary",
           "induce_dictionary", "read_dictionary"]

log = logging.getLogger(__name__)

DICTIONARY_BUILDS = ("S2T", "T2S", "S2T&T2S", "S2T|T2S")


class EmptyDictionaryError(RuntimeError):
    """An induced dictionary has no pair, so Procrustes has nothing to fit."""


@torch.no_grad()
def candidate_pairs(
    queries: Tensor,
    keys: Tensor,
    *,
    method: str = "csls",
    knn: int = 10,
    max_rank: int = 15000,
    max_size: int = 0,
    min_size: int = 0,
    threshold: float = 0.0,
    r_queries: Tensor | None = None,
    r_keys: Tensor | None = None,
    chunk_size: int | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    backend: str = "torch",
) -> Tensor:
    """One-direction translation candidates ``(query id, best key id)``, (p, 2), most confident first.

    As MUSE's ``get_candidates``: the first ``max_rank`` queries (0: all) each take their best key
    by ``method`` ("nn" or "csls"); pairs are sorted by the margin between the best and second
    best score; a pair is kept only if both ids are at most ``max_rank`` (the official
    ``all_pairs.max(1)[0] <= dico_max_rank``: a key of rank ``max_rank`` itself stays); then
    ``max_size`` truncates, and ``threshold`` drops pairs whose margin is not above it, except the
    ``min_size`` first.
    """
    if method not in ("nn", "csls"):
        raise ValueError(f"method must be 'nn' or 'csls', got {method!r}")
    n_q = queries.shape[0]
    n_used = n_q if max_rank <= 0 else min(max_rank, n_q)
    ids = torch.arange(n_used, device=queries.device)
    if keys.shape[0] < 2:
        raise ValueError("candidate_pairs needs at least two keys (the margin uses the second best)")
    if method == "nn":
        scores, best = topk_similarity(
            queries[:n_used], keys, 2, chunk_size=chunk_size, chunk_bytes=chunk_bytes, backend=backend
        )
    else:
        scores, best = csls_topk(
            queries,
            keys,
            2,
            knn=knn,
            r_queries=r_queries,
            r_keys=r_keys,
            query_ids=ids if n_used < n_q else None,
            chunk_size=chunk_size,
            chunk_bytes=chunk_bytes,
            backend=backend,
        )
    pairs = torch.stack([ids.to(best.device), best[:, 0]], dim=1)
    margin = scores[:, 0] - scores[:, 1]
    order = margin.argsort(descending=True, stable=True)
    pairs, margin = pairs[order], margin[order]
    if max_rank > 0:
        keep = pairs.max(dim=1).values <= max_rank
        pairs, margin = pairs[keep], margin[keep]
    if max_size > 0:
        pairs, margin = pairs[:max_size], margin[:max_size]
    if threshold > 0:
        keep = margin > threshold
        keep[: max(0, min_size)] = True
        pairs = pairs[keep]
    return pairs.cpu()


@torch.no_grad()
def induce_dictionary(
    src: Tensor,
    tgt: Tensor,
    *,
    method: str = "csls",
    knn: int = 10,
    build: str = "S2T",
    max_rank: int = 15000,
    max_size: int = 0,
    min_size: int = 0,
    threshold: float = 0.0,
    r_src: Tensor | None = None,
    r_tgt: Tensor | None = None,
    chunk_size: int | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    backend: str = "torch",
) -> Tensor:
    """A bilingual dictionary ``(src id, tgt id)``, (p, 2), from aligned, L2-normalised spaces.

    ``build``: "S2T" (each source word's best target), "T2S" (each target word's best source),
    "S2T&T2S" (pairs found both ways: mutual nearest neighbours, the paper's refinement
    dictionary, section 3.4) or "S2T|T2S" (either way). S2T / T2S keep the confidence order;
    the set builds are sorted by (src, tgt). ``r_src`` / ``r_tgt`` are CSLS neighbourhood terms
    (``mutual_mean_topk_similarity(src, tgt, knn)``) when already at hand.

    Raises ``EmptyDictionaryError`` when no pair survives, instead of handing Procrustes nothing.
    """
    if build not in DICTIONARY_BUILDS:
        raise ValueError(f"build must be one of {DICTIONARY_BUILDS}, got {build!r}")
    if src.shape[1] != tgt.shape[1]:
        raise ValueError(f"dimension mismatch: source {tuple(src.shape)} vs target {tuple(tgt.shape)}")
    if method == "csls" and (r_src is None or r_tgt is None) and backend == "torch":
        r_src, r_tgt = mutual_mean_topk_similarity(
            src, tgt, knn, chunk_size=chunk_size, chunk_bytes=chunk_bytes
        )
    opts = dict(
        method=method,
        knn=knn,
        max_rank=max_rank,
        max_size=max_size,
        min_size=min_size,
        threshold=threshold,
        chunk_size=chunk_size,
        chunk_bytes=chunk_bytes,
        backend=backend,
    )
    s2t = t2s = None
    if "S2T" in build:
        s2t = candidate_pairs(src, tgt, r_queries=r_src, r_keys=r_tgt, **opts)
    if "T2S" in build:
        t2s = candidate_pairs(tgt, src, r_queries=r_tgt, r_keys=r_src, **opts).flip(1)
    if build == "S2T":
        pairs = s2t
    elif build == "T2S":
        pairs = t2s
    else:
        a = {tuple(p) for p in s2t.tolist()}
        b = {tuple(p) for p in t2s.tolist()}
        chosen = a & b if build == "S2T&T2S" else a | b
        pairs = torch.tensor(sorted(chosen), dtype=torch.long).reshape(-1, 2)
    if pairs.shape[0] == 0:
        sizes = ", ".join(
            f"{name}: {p.shape[0]} pairs" for name, p in (("S2T", s2t), ("T2S", t2s)) if p is not None
        )
        raise EmptyDictionaryError(
            f"the induced dictionary is empty (build={build}, method={method}, max_rank={max_rank}, "
            f"threshold={threshold}; {sizes}). The two spaces are not aligned enough for mutual "
            "translations; try build='S2T', a larger max_rank, no threshold, or check the embeddings "
            "and their normalisation"
        )
    return pairs


def identical_strings_dictionary(src_words: Sequence[str], tgt_words: Sequence[str]) -> Tensor:
    """Seed dictionary of words spelled identically in both vocabularies, (p, 2), by source rank.

    The "identical character strings" supervision of MUSE's ``supervised.py --dico_train
    identical_char`` (arXiv 1710.04087, section 4.1 and Table 3).
    """
    tgt_index = {w: i for i, w in reversed(list(enumerate(tgt_words)))}  # first occurrence wins
    pairs = [(i, tgt_index[w]) for i, w in enumerate(src_words) if w in tgt_index]
    if not pairs:
        raise EmptyDictionaryError(
            "no word is spelled identically in the two vocabularies; give a training dictionary instead"
        )
    seen: set[int] = set()
    unique = [p for p in pairs if not (p[0] in seen or seen.add(p[0]))]
    return torch.tensor(unique, dtype=torch.long)


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
        raise missing_data_error("Dictionary", path, fix="check the path given for the dictionary")
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
