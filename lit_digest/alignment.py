"""Cross-lingual embedding alignment: kNN, CSLS, dictionary induction, Procrustes, evaluation.

Pure functions behind MUSE (Conneau, Lample, Ranzato, Denoyer, Jegou, "Word Translation
Without Parallel Data", arXiv 1710.04087). Everything runs with plain torch on CPU or GPU; the
similarity matrix of two vocabularies (200k x 200k = 160 GB in fp32) is never materialised:
queries are processed in chunks whose score block stays under ``chunk_bytes``. faiss is used
only when asked for (``backend="faiss"``) and is never required.

Conventions
- Embedding matrices are ``(n, d)`` row-per-word tensors; unless a docstring says otherwise the
  rows must already be L2-normalised (``normalize_rows``), so a dot product is a cosine.
- A mapping ``W`` is ``(d, d)`` and maps a row ``x`` to ``x @ W.T`` (as ``nn.Linear`` does).
- A dictionary is an ``(m, 2)`` int64 tensor of ``(source id, target id)`` pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "DICTIONARY_BUILDS",
    "EmptyDictionaryError",
    "candidate_pairs",
    "csls_topk",
    "identical_strings_dictionary",
    "induce_dictionary",
    "mean_cosine_criterion",
    "mean_topk_similarity",
    "mutual_mean_topk_similarity",
    "normalize_rows",
    "orthogonalize_",
    "procrustes",
    "topk_similarity",
    "translation_precision",
]

DEFAULT_CHUNK_BYTES = 256 * 2**20  # one (chunk, n_keys) fp32 score block: 256 MiB
DICTIONARY_BUILDS = ("S2T", "T2S", "S2T&T2S", "S2T|T2S")


class EmptyDictionaryError(RuntimeError):
    """An induced dictionary has no pair, so Procrustes has nothing to fit."""


# --------------------------------------------------------------------------- helpers


def normalize_rows(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Rows scaled to unit L2 norm (a new tensor). ``x``: (n, d)."""
    return x / x.norm(dim=1, keepdim=True).clamp_min(eps)


def _chunk_rows(n_keys: int, chunk_size: int | None, chunk_bytes: int, element_size: int = 4) -> int:
    if chunk_size is not None:
        return max(1, int(chunk_size))
    return max(1, min(65536, chunk_bytes // max(1, n_keys * element_size)))


def _require_faiss():
    try:
        import faiss  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "backend='faiss' was asked for but faiss is not installed; install faiss-cpu (or "
            "faiss-gpu) or use backend='torch', which needs nothing more"
        ) from err
    return faiss


def _check_backend(backend: str) -> None:
    if backend not in ("torch", "faiss"):
        raise ValueError(f"backend must be 'torch' or 'faiss', got {backend!r}")


def _faiss_search(queries: Tensor, keys: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Exact inner-product search with faiss (IndexFlatIP); results on the queries' device."""
    faiss = _require_faiss()
    keys_np = keys.detach().float().cpu().contiguous().numpy()
    queries_np = queries.detach().float().cpu().contiguous().numpy()
    index = faiss.IndexFlatIP(keys_np.shape[1])
    index.add(keys_np)
    values, indices = index.search(queries_np, k)
    return (
        torch.from_numpy(values).to(queries.device),
        torch.from_numpy(indices).long().to(queries.device),
    )


# --------------------------------------------------------------------------- kNN and CSLS


@torch.no_grad()
def topk_similarity(
    queries: Tensor,
    keys: Tensor,
    k: int,
    *,
    query_bias: Tensor | None = None,
    key_bias: Tensor | None = None,
    scale: float = 1.0,
    chunk_size: int | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    backend: str = "torch",
) -> tuple[Tensor, Tensor]:
    """Top-k keys of every query under ``scale * <q_i, k_j> - query_bias[i] - key_bias[j]``.

    ``queries`` (n, d), ``keys`` (m, d); returns values and indices, both (n, k), sorted best
    first. Nearest neighbours are ``scale=1`` without biases; CSLS is ``scale=2`` with the mean
    neighbourhood similarities as biases (``csls_topk``). Memory beyond the inputs is one
    (chunk, m) score block, sized by ``chunk_size`` rows or ``chunk_bytes``.
    """
    _check_backend(backend)
    n, m = queries.shape[0], keys.shape[0]
    k = min(k, m)
    if backend == "faiss":
        # fold the key bias into one more coordinate: <[s*q, -1], [k, b_k]> = s<q,k> - b_k
        q_aug = torch.cat([queries.float() * scale, -torch.ones(n, 1, device=queries.device)], 1)
        kb = key_bias if key_bias is not None else torch.zeros(m, device=keys.device)
        k_aug = torch.cat([keys.float(), kb.float().to(keys.device)[:, None]], 1)
        values, indices = _faiss_search(q_aug, k_aug, k)
        if query_bias is not None:
            values = values - query_bias.to(values.device, values.dtype)[:, None]
        return values, indices

    rows = _chunk_rows(m, chunk_size, chunk_bytes, keys.element_size())
    all_values = torch.empty(
        n, k, dtype=torch.promote_types(queries.dtype, keys.dtype), device=queries.device
    )
    all_indices = torch.empty(n, k, dtype=torch.long, device=queries.device)
    keys_t = keys.t()
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        scores = queries[start:stop].to(keys.device) @ keys_t  # (c, m)
        if scale != 1.0:
            scores.mul_(scale)
        if key_bias is not None:
            scores.sub_(key_bias.to(scores.device, scores.dtype)[None, :])
        if query_bias is not None:
            scores.sub_(query_bias[start:stop].to(scores.device, scores.dtype)[:, None])
        values, indices = scores.topk(k, dim=1, largest=True, sorted=True)
        all_values[start:stop] = values.to(all_values.device)
        all_indices[start:stop] = indices.to(all_indices.device)
        del scores
    return all_values, all_indices


@torch.no_grad()
def mean_topk_similarity(
    queries: Tensor,
    keys: Tensor,
    k: int = 10,
    *,
    chunk_size: int | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    backend: str = "torch",
) -> Tensor:
    """``r(q_i)``: mean cosine of each query to its k nearest keys, (n,). CSLS section 2.3."""
    values, _ = topk_similarity(
        queries, keys, k, chunk_size=chunk_size, chunk_bytes=chunk_bytes, backend=backend
    )
    return values.mean(dim=1)


@torch.no_grad()
def mutual_mean_topk_similarity(
    a: Tensor,
    b: Tensor,
    k: int = 10,
    *,
    chunk_size: int | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> tuple[Tensor, Tensor]:
    """Both neighbourhood terms of CSLS from one pass over ``a @ b.T``.

    Returns ``r_a`` (n_a,): mean of each row of ``a``'s top-k cosines to ``b``, and ``r_b``
    (n_b,): mean of each row of ``b``'s top-k cosines to ``a``. Equal to two calls of
    ``mean_topk_similarity`` at half the matrix products: the column top-k of every score
    block is merged into a running (k, n_b) buffer.
    """
    n_a, n_b = a.shape[0], b.shape[0]
    ka, kb = min(k, n_b), min(k, n_a)
    rows = _chunk_rows(n_b, chunk_size, chunk_bytes, b.element_size())
    dtype = torch.promote_types(a.dtype, b.dtype)
    r_a = torch.empty(n_a, dtype=dtype, device=a.device)
    best_b = torch.full((kb, n_b), -math.inf, dtype=dtype, device=b.device)  # running column top-k
    b_t = b.t()
    for start in range(0, n_a, rows):
        stop = min(n_a, start + rows)
        scores = a[start:stop].to(b.device) @ b_t  # (c, n_b)
        r_a[start:stop] = scores.topk(ka, dim=1).values.mean(dim=1).to(r_a.device)
        # only columns where this block beats the running k-th best can change; after the first
        # blocks they are few, which spares most of the (slow, strided) column top-k
        cols = (scores > best_b[-1]).any(dim=0).nonzero().squeeze(1)
        if cols.numel() == n_b:
            block = scores.topk(min(kb, stop - start), dim=0).values  # (<=k, n_b)
            best_b = torch.cat([best_b, block], 0).topk(kb, dim=0).values
        elif cols.numel() > 0:
            block = scores[:, cols].topk(min(kb, stop - start), dim=0).values
            best_b[:, cols] = torch.cat([best_b[:, cols], block], 0).topk(kb, dim=0).values
        del scores
    return r_a, best_b.mean(dim=0)


@torch.no_grad()
def csls_topk(
    queries: Tensor,
    keys: Tensor,
    k: int = 2,
    *,
    knn: int = 10,
    r_queries: Tensor | None = None,
    r_keys: Tensor | None = None,
    query_ids: Tensor | None = None,
    chunk_size: int | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    backend: str = "torch",
) -> tuple[Tensor, Tensor]:
    """Top-k keys of each query by CSLS (arXiv 1710.04087, eq. 6).

    ``CSLS(q, y) = 2 cos(q, y) - r_K(q) - r_Q(y)`` where ``r_K(q)`` is the mean cosine of ``q``
    to its ``knn`` nearest keys and ``r_Q(y)`` that of ``y`` to its ``knn`` nearest queries. The
    neighbourhoods are taken over *all* rows of ``queries`` and ``keys``; ``query_ids`` restricts
    which queries are answered (e.g. the first 15k words). Precomputed ``r_queries`` (indexed by
    query row, full length) / ``r_keys`` skip their passes.
    """
    if r_queries is None or r_keys is None:
        if backend == "torch" and r_queries is None and r_keys is None:
            r_queries, r_keys = mutual_mean_topk_similarity(
                queries, keys, knn, chunk_size=chunk_size, chunk_bytes=chunk_bytes
            )
        else:
            if r_queries is None:
                r_queries = mean_topk_similarity(
                    queries, keys, knn, chunk_size=chunk_size, chunk_bytes=chunk_bytes, backend=backend
                )
            if r_keys is None:
                r_keys = mean_topk_similarity(
                    keys, queries, knn, chunk_size=chunk_size, chunk_bytes=chunk_bytes, backend=backend
                )
    q = queries if query_ids is None else queries[query_ids.to(queries.device)]
    rq = r_queries if query_ids is None else r_queries[query_ids.to(r_queries.device)]
    return topk_similarity(
        q,
        keys,
        k,
        query_bias=rq,
        key_bias=r_keys,
        scale=2.0,
        chunk_size=chunk_size,
        chunk_bytes=chunk_bytes,
        backend=backend,
    )


# --------------------------------------------------------------------------- dictionaries


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
    best score; a pair is kept only if both ids are below ``max_rank`` (the official code keeps
    ids equal to ``max_rank`` too, an off-by-one we drop); then ``max_size`` truncates, and
    ``threshold`` drops pairs whose margin is not above it, except the ``min_size`` first.
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
        keep = pairs.max(dim=1).values < max_rank
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


# --------------------------------------------------------------------------- mapping


@torch.no_grad()
def procrustes(src: Tensor, tgt: Tensor) -> Tensor:
    """Orthogonal ``W`` (d, d) minimising ``||src @ W.T - tgt||_F``: ``U V^T`` of ``SVD(tgt^T src)``.

    ``src``, ``tgt``: (p, d) rows of the dictionary pairs (arXiv 1710.04087, eq. 2). The SVD
    runs in float64 on the inputs' device; the result has ``src``'s dtype.
    """
    if src.shape != tgt.shape:
        raise ValueError(
            f"procrustes needs paired rows of equal shape, got {tuple(src.shape)} and {tuple(tgt.shape)}"
        )
    if src.shape[0] == 0:
        raise EmptyDictionaryError("procrustes was given an empty dictionary")
    m = tgt.double().t() @ src.double()  # (d, d)
    u, _, vh = torch.linalg.svd(m)
    return (u @ vh).to(src.dtype)


@torch.no_grad()
def orthogonalize_(weight: Tensor, beta: float) -> Tensor:
    """In place ``W <- (1 + beta) W - beta (W W^T) W`` (arXiv 1710.04087, section 3.3).

    One step of an iteration whose fixed points with singular values 1 are the orthogonal
    matrices; applied after every mapping update it keeps ``W`` close to the orthogonal
    manifold. Returns ``weight``.
    """
    if beta > 0:
        weight.copy_((1 + beta) * weight - beta * (weight @ weight.t()) @ weight)
    return weight


# --------------------------------------------------------------------------- evaluation


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
