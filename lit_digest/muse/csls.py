"""Nearest neighbours and CSLS between two embedding spaces, chunked so that the similarity matrix
of two vocabularies (200k x 200k = 160 GB in fp32) is never materialised.

Conneau, Lample, Ranzato, Denoyer, Jegou, "Word Translation Without Parallel Data", arXiv 1710.04087,
section 2.3. Everything runs with plain torch on CPU or GPU; queries are processed in chunks whose
score block stays under ``chunk_bytes``. faiss is used only when asked for (``backend="faiss"``).

Conventions (all of ``lit_digest.muse``)
- Embedding matrices are ``(n, d)`` row-per-word tensors; unless a docstring says otherwise the
  rows must already be L2-normalised (``normalize_rows``), so a dot product is a cosine.
- A mapping ``W`` is ``(d, d)`` and maps a row ``x`` to ``x @ W.T`` (as ``nn.Linear`` does).
- A dictionary is an ``(m, 2)`` int64 tensor of ``(source id, target id)`` pairs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lit_digest.core.progress import Progress

__all__ = ["DEFAULT_CHUNK_BYTES", "csls_topk", "mean_topk_similarity", "mutual_mean_topk_similarity",
           "normalize_rows", "topk_similarity"]

DEFAULT_CHUNK_BYTES = 256 * 2**20  # one (chunk, n_keys) fp32 score block: 256 MiB


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
    progress = Progress(n, f"nearest neighbours of {n} x {m} words", "queries")
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        progress.update(start)
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
    progress.close()
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
    progress = Progress(n_a, f"CSLS neighbourhoods of {n_a} x {n_b} words", "rows")
    for start in range(0, n_a, rows):
        stop = min(n_a, start + rows)
        progress.update(start)
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
    progress.close()
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
