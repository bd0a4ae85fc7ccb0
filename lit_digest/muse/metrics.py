"""Alignment quality: word-translation precision on a gold dictionary, and MUSE's unsupervised
validation criterion (arXiv 1710.04087, sections 3.5 and 4)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lit_digest.muse.csls import DEFAULT_CHUNK_BYTES, mean_topk_similarity, mutual_mean_topk_similarity, topk_similarity
from lit_digest.muse.dictionary import induce_dictionary

__all__ = ["mean_cosine_criterion", "translation_precision"]


@torch.no_grad()
def translation_precision(
    src: Tensor,
    tgt: Tensor,
    dictionary: Tensor,
    *,
    method: str = "csls",
    knn: int = 10,
    ks: Sequence[int] = (1, 5, 10),
    r_src: Tensor | None = None,
    r_tgt: Tensor | None = None,
    chunk_size: int | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    backend: str = "torch",
) -> dict[int, float]:
    """Word-translation precision@k in percent, ``{k: P@k}``, by "nn" or "csls" retrieval.

    ``src`` (aligned) and ``tgt`` are L2-normalised (n, d) spaces; ``dictionary`` (p, 2) gold
    pairs, several per source word allowed. As MUSE's ``get_word_translation_accuracy``: a
    source word counts as translated at k when any of its gold targets is among its k best
    retrieved words, and the mean runs over unique source words.
    """
    if dictionary.numel() == 0:
        raise ValueError("translation_precision needs a non-empty evaluation dictionary")
    dictionary = dictionary.to(torch.long).cpu()
    if int(dictionary[:, 0].max()) >= src.shape[0] or int(dictionary[:, 1].max()) >= tgt.shape[0]:
        raise IndexError("the evaluation dictionary refers to ids outside the vocabularies")
    sources, inverse = torch.unique(dictionary[:, 0], return_inverse=True)
    kmax = min(max(ks), tgt.shape[0])
    if method == "nn":
        _, top = topk_similarity(
            src[sources.to(src.device)],
            tgt,
            kmax,
            chunk_size=chunk_size,
            chunk_bytes=chunk_bytes,
            backend=backend,
        )
    elif method == "csls":
        if r_tgt is None and backend == "torch" and r_src is None:
            r_src, r_tgt = mutual_mean_topk_similarity(
                src, tgt, knn, chunk_size=chunk_size, chunk_bytes=chunk_bytes
            )
        if r_tgt is None:
            r_tgt = mean_topk_similarity(
                tgt, src, knn, chunk_size=chunk_size, chunk_bytes=chunk_bytes, backend=backend
            )
        rq = r_src[sources.to(r_src.device)] if r_src is not None else None
        if rq is None:
            rq = mean_topk_similarity(
                src[sources.to(src.device)],
                tgt,
                knn,
                chunk_size=chunk_size,
                chunk_bytes=chunk_bytes,
                backend=backend,
            )
        _, top = topk_similarity(
            src[sources.to(src.device)],
            tgt,
            kmax,
            query_bias=rq,
            key_bias=r_tgt,
            scale=2.0,
            chunk_size=chunk_size,
            chunk_bytes=chunk_bytes,
            backend=backend,
        )
    else:
        raise ValueError(f"method must be 'nn' or 'csls', got {method!r}")
    top = top.cpu()[inverse]  # (p, kmax): the retrieval list of each pair's source word
    hits_rank = (top == dictionary[:, 1:2]).long()  # (p, kmax)
    results = {}
    for k in ks:
        pair_hit = hits_rank[:, :k].any(dim=1).float()
        word_hit = torch.zeros(len(sources)).scatter_reduce(0, inverse, pair_hit, reduce="amax")
        results[int(k)] = 100.0 * word_hit.mean().item()
    return results


@torch.no_grad()
def mean_cosine_criterion(
    src: Tensor,
    tgt: Tensor,
    *,
    method: str = "csls",
    knn: int = 10,
    max_rank: int = 10000,
    max_size: int = 10000,
    r_src: Tensor | None = None,
    r_tgt: Tensor | None = None,
    chunk_size: int | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    backend: str = "torch",
) -> float:
    """MUSE's unsupervised validation criterion (arXiv 1710.04087, section 3.5).

    Mean cosine between the ``max_rank`` most frequent source words and their S2T translations
    by ``method`` (CSLS, k=10), keeping at most ``max_size`` pairs (the most confident). Needs no
    bilingual data; it tracks P@1 closely and drives model selection and the learning rate.
    """
    pairs = induce_dictionary(
        src,
        tgt,
        method=method,
        knn=knn,
        build="S2T",
        max_rank=max_rank,
        max_size=max_size,
        r_src=r_src,
        r_tgt=r_tgt,
        chunk_size=chunk_size,
        chunk_bytes=chunk_bytes,
        backend=backend,
    )
    a = src[pairs[:, 0].to(src.device)]
    b = tgt[pairs[:, 1].to(tgt.device)]
    return (a * b).sum(dim=1).mean().item()
