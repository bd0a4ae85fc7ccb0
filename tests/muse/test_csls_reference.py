"""CSLS and nearest neighbours beyond the plain calls (``make mutate`` on ``lit_digest/muse/csls.py``): precomputed
neighbourhood terms, the defaults, float64 inputs, the chunking each memory setting gives (seen through the progress
reports), the faiss path (through a plain stand-in for faiss's exact index, so that it runs without faiss), the
device of every tensor made here, and the messages."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

import lit_digest.muse.csls as csls
from lit_digest.muse.csls import (
    _chunk_rows,
    csls_topk,
    mean_topk_similarity,
    mutual_mean_topk_similarity,
    normalize_rows,
    topk_similarity,
)


def spaces(n_src=30, n_tgt=25, dim=6, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    src, tgt = torch.randn(n_src, dim, generator=g, dtype=torch.float64), torch.randn(n_tgt, dim, generator=g,
                                                                                      dtype=torch.float64)
    return (src / src.norm(dim=1, keepdim=True)).to(dtype), (tgt / tgt.norm(dim=1, keepdim=True)).to(dtype)


def brute_r(a, b, k):
    """Mean of each row of ``a``'s k best cosines to ``b``, row by row."""
    return torch.stack([torch.sort(a[i] @ b.T, descending=True).values[:k].mean() for i in range(a.shape[0])])


def brute_csls(src, tgt, r_src, r_tgt):
    return 2 * src @ tgt.T - r_src[:, None] - r_tgt[None, :]


class _FakeFaiss(types.ModuleType):
    """faiss's exact inner-product index, brute force in numpy, as strict about its inputs as faiss (C-contiguous
    float32 arrays of the index's dimension); counts the searches."""

    def __init__(self):
        super().__init__("faiss")
        self.searches = 0
        fake = self

        class IndexFlatIP:
            def __init__(self, d):
                assert isinstance(d, int) and d > 0
                self.d, self.xb = d, np.zeros((0, d), np.float32)

            def _check(self, x):
                assert isinstance(x, np.ndarray) and x.dtype == np.float32 and x.flags.c_contiguous
                assert x.ndim == 2 and x.shape[1] == self.d

            def add(self, x):
                self._check(x)
                self.xb = np.concatenate([self.xb, x])

            def search(self, x, k):
                self._check(x)
                fake.searches += 1
                scores = x.astype(np.float64) @ self.xb.T.astype(np.float64)
                order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
                return np.take_along_axis(scores, order, 1).astype(np.float32), order.astype(np.int64)

        self.IndexFlatIP = IndexFlatIP


@pytest.fixture
def fake_faiss(monkeypatch):
    fake = _FakeFaiss()
    monkeypatch.setitem(sys.modules, "faiss", fake)
    return fake


class _Reports:
    """Stands in for ``Progress``: records each loop's total, label and unit, and the chunk starts it reports."""

    def __init__(self):
        self.loops = []

    def __call__(self, total, label, unit=""):
        loop = types.SimpleNamespace(total=total, label=label, unit=unit, starts=[], closed=False)
        self.loops.append(loop)
        return types.SimpleNamespace(update=loop.starts.append, close=lambda: setattr(loop, "closed", True))


@pytest.fixture
def reports(monkeypatch):
    recorder = _Reports()
    monkeypatch.setattr(csls, "Progress", recorder)
    return recorder


def test_normalize_rows_gives_unit_rows_and_leaves_zero_rows_at_zero():
    x = torch.tensor([[3.0, 4.0], [1e-3, 0.0], [0.0, 0.0], [-2.0, 1e-4]])
    out = normalize_rows(x)
    torch.testing.assert_close(out[[0, 1, 3]].norm(dim=1), torch.ones(3))
    torch.testing.assert_close(out[0], torch.tensor([0.6, 0.8]))
    assert torch.equal(out[2], torch.zeros(2))


def test_chunk_rows_follow_the_budget_within_one_and_65536():
    assert _chunk_rows(40, 1, 10**9) == 1 and _chunk_rows(40, 7, 10**9) == 7  # a chunk size wins
    assert _chunk_rows(40, None, 10 * 40 * 4) == 10  # 10 rows of 40 fp32 scores
    assert _chunk_rows(40, None, 10 * 40 * 8, 8) == 10  # fp64 scores take twice the bytes
    assert _chunk_rows(40, None, 100) == 1  # at least one row, whatever the budget
    assert _chunk_rows(1, None, 2**30) == 65536  # at most 65536 rows
    assert _chunk_rows(0, None, 100) == 100  # no keys: the budget in rows of one byte


def test_defaults_are_k_10_neighbourhoods_and_2_csls_candidates():
    src, tgt = spaces()
    r_src, r_tgt = brute_r(src, tgt, 10), brute_r(tgt, src, 10)
    torch.testing.assert_close(mean_topk_similarity(src, tgt), r_src)
    got_src, got_tgt = mutual_mean_topk_similarity(src, tgt)
    torch.testing.assert_close(got_src, r_src)
    torch.testing.assert_close(got_tgt, r_tgt)
    values, indices = csls_topk(src, tgt)
    ref = brute_csls(src, tgt, r_src, r_tgt).topk(2, dim=1)
    torch.testing.assert_close(values, ref.values)
    assert torch.equal(indices, ref.indices)


@pytest.mark.parametrize("given", ["none", "queries", "keys", "both"])
def test_csls_uses_the_neighbourhood_terms_it_is_given_and_computes_the_others(given):
    src, tgt = spaces()
    g = torch.Generator().manual_seed(1)
    r_src, r_tgt = brute_r(src, tgt, 4), brute_r(tgt, src, 4)
    if given in ("queries", "both"):
        r_src = r_src + 0.3 * torch.rand(r_src.shape, generator=g)  # not what csls would compute itself
    if given in ("keys", "both"):
        r_tgt = r_tgt + 0.3 * torch.rand(r_tgt.shape, generator=g)
    kwargs = dict(r_queries=r_src if given in ("queries", "both") else None,
                  r_keys=r_tgt if given in ("keys", "both") else None)
    values, indices = csls_topk(src, tgt, 3, knn=4, chunk_size=4, **kwargs)
    ref = brute_csls(src, tgt, r_src, r_tgt).topk(3, dim=1)
    torch.testing.assert_close(values, ref.values)
    assert torch.equal(indices, ref.indices)


def test_float64_inputs_stay_float64():
    src, tgt = spaces(dtype=torch.float64)
    r_src, r_tgt = mutual_mean_topk_similarity(src, tgt, 5, chunk_size=4)
    assert r_src.dtype == r_tgt.dtype == torch.float64
    torch.testing.assert_close(r_src, brute_r(src, tgt, 5), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(r_tgt, brute_r(tgt, src, 5), rtol=1e-12, atol=1e-12)
    values, _ = topk_similarity(src, tgt, 3, chunk_size=4)
    assert values.dtype == torch.float64
    torch.testing.assert_close(values, (src @ tgt.T).topk(3, dim=1).values, rtol=1e-12, atol=1e-12)


def test_half_precision_inputs_keep_their_dtype():
    src, tgt = spaces(dtype=torch.bfloat16)
    r_src, r_tgt = mutual_mean_topk_similarity(src, tgt, 3, chunk_size=7)
    assert r_src.dtype == r_tgt.dtype == torch.bfloat16
    ref_src, ref_tgt = brute_r(src.float(), tgt.float(), 3), brute_r(tgt.float(), src.float(), 3)
    torch.testing.assert_close(r_src.float(), ref_src, rtol=0, atol=2e-2)
    torch.testing.assert_close(r_tgt.float(), ref_tgt, rtol=0, atol=2e-2)


def test_biases_are_cast_to_the_scores_dtype_before_they_are_subtracted():
    """float32 scores minus float64 biases: each bias is rounded to float32 first, then subtracted in float32."""
    src, tgt = spaces()
    g = torch.Generator().manual_seed(2)
    qb, kb = torch.rand(30, generator=g, dtype=torch.float64), torch.rand(25, generator=g, dtype=torch.float64)
    values, _ = topk_similarity(src, tgt, 25, query_bias=qb, key_bias=kb, scale=2.0)  # one chunk
    scores = src @ tgt.T
    scores = scores * 2.0
    scores = scores - kb.float()[None, :]
    scores = scores - qb.float()[:, None]
    assert values.dtype == torch.float32
    assert torch.equal(values, scores.topk(25, dim=1).values)


def test_a_later_block_that_beats_the_running_best_in_a_single_column_updates_it():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [0.6, 0.8]])  # row 1 of a beats row 0 only in column 1
    r_a, r_b = mutual_mean_topk_similarity(a, b, 1, chunk_size=1)
    torch.testing.assert_close(r_a, torch.tensor([1.0, 0.8]))
    torch.testing.assert_close(r_b, torch.tensor([1.0, 0.8]))


def test_the_chunking_follows_chunk_size_and_chunk_bytes(reports):
    src, tgt = spaces(n_src=30, n_tgt=25)
    topk_similarity(src, tgt, 3, chunk_size=7)
    topk_similarity(src, tgt, 3, chunk_bytes=4 * 25 * 4)  # 4 rows of 25 fp32 scores
    topk_similarity(src.double(), tgt.double(), 3, chunk_bytes=4 * 25 * 8)  # 4 rows of 25 fp64 scores
    mutual_mean_topk_similarity(src, tgt, 3, chunk_size=7)
    mutual_mean_topk_similarity(src.double(), tgt.double(), 3, chunk_bytes=4 * 25 * 8)
    loops = [(r.total, r.label, r.unit, r.starts, r.closed) for r in reports.loops]
    words = "nearest neighbours of 30 x 25 words"
    assert loops == [
        (30, words, "queries", [0, 7, 14, 21, 28], True),
        (30, words, "queries", list(range(0, 30, 4)), True),
        (30, words, "queries", list(range(0, 30, 4)), True),
        (30, "CSLS neighbourhoods of 30 x 25 words", "rows", [0, 7, 14, 21, 28], True),
        (30, "CSLS neighbourhoods of 30 x 25 words", "rows", list(range(0, 30, 4)), True),
    ]


@pytest.mark.parametrize("given", ["none", "queries", "keys"])
def test_csls_passes_its_chunking_to_every_pass(reports, given):
    src, tgt = spaces(n_src=30, n_tgt=25)
    r = dict(r_queries=brute_r(src, tgt, 10) if given == "queries" else None,
             r_keys=brute_r(tgt, src, 10) if given == "keys" else None)
    csls_topk(src, tgt, 2, chunk_size=7, **r)
    csls_topk(src, tgt, 2, chunk_bytes=4 * 30 * 4, **r)  # 4 rows of 30 fp32 scores (and of 25 for the last pass)
    starts = [(r.total, r.starts) for r in reports.loops]
    by_size = {"none": [(30, [0, 7, 14, 21, 28]), (30, [0, 7, 14, 21, 28])],
               "queries": [(25, [0, 7, 14, 21]), (30, [0, 7, 14, 21, 28])],
               "keys": [(30, [0, 7, 14, 21, 28]), (30, [0, 7, 14, 21, 28])]}[given]
    by_bytes = {"none": [(30, list(range(0, 30, 4))), (30, list(range(0, 30, 4)))],
                "queries": [(25, list(range(0, 25, 4))), (30, list(range(0, 30, 4)))],
                "keys": [(30, list(range(0, 30, 4))), (30, list(range(0, 30, 4)))]}[given]
    assert starts == by_size + by_bytes


@pytest.mark.parametrize("scale", [1.0, 2.0])
@pytest.mark.parametrize("biases", [(False, False), (True, False), (False, True), (True, True)])
def test_the_faiss_path_folds_the_key_bias_into_one_more_coordinate(fake_faiss, scale, biases):
    src, tgt = spaces()
    g = torch.Generator().manual_seed(3)
    qb = torch.rand(30, generator=g, dtype=torch.float64) if biases[0] else None
    kb = torch.rand(25, generator=g) if biases[1] else None
    expected = scale * src @ tgt.T - (0 if qb is None else qb.float()[:, None]) - (0 if kb is None else kb[None, :])
    with torch.device("meta"):  # every tensor made on the way must follow the inputs, not the default device
        values, indices = topk_similarity(src, tgt, 4, query_bias=qb, key_bias=kb, scale=scale, backend="faiss")
    assert values.dtype == torch.float32 and values.device.type == indices.device.type == "cpu"
    torch.testing.assert_close(values, expected.topk(4, dim=1).values, rtol=0, atol=1e-5)
    assert torch.equal(indices, expected.topk(4, dim=1).indices)
    assert fake_faiss.searches == 1


@pytest.mark.parametrize("given", ["none", "queries", "keys"])
def test_csls_through_faiss_equals_brute_force(fake_faiss, given):
    src, tgt = spaces()
    r_src, r_tgt = brute_r(src, tgt, 4), brute_r(tgt, src, 4)
    r = dict(r_queries=r_src if given == "queries" else None, r_keys=r_tgt if given == "keys" else None)
    values, indices = csls_topk(src, tgt, 3, knn=4, backend="faiss", **r)
    ref = brute_csls(src, tgt, r_src, r_tgt).topk(3, dim=1)
    torch.testing.assert_close(values, ref.values, rtol=0, atol=1e-5)
    assert torch.equal(indices, ref.indices)
    assert fake_faiss.searches == {"none": 3, "queries": 2, "keys": 2}[given]  # every pass went through faiss


def test_every_tensor_stays_on_the_inputs_device():
    """Under another default device (meta here; CUDA inputs with a CPU default in practice), the results follow the
    inputs."""
    src, tgt = spaces()
    with torch.device("meta"):
        r_src, r_tgt = mutual_mean_topk_similarity(src, tgt, 3, chunk_size=7)
        values, indices = topk_similarity(src, tgt, 3, chunk_size=7)
    assert {t.device.type for t in (r_src, r_tgt, values, indices)} == {"cpu"}


def test_messages_name_the_choices_and_the_fix(monkeypatch):
    src, tgt = spaces()
    with pytest.raises(ValueError, match="backend must be 'torch' or 'faiss', got 'annoy'"):
        topk_similarity(src, tgt, 3, backend="annoy")
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss raises ImportError
    with pytest.raises(ImportError) as err:
        topk_similarity(src, tgt, 3, backend="faiss")
    assert str(err.value) == ("backend='faiss' was asked for but faiss is not installed; install faiss-cpu (or "
                              "faiss-gpu) or use backend='torch', which needs nothing more")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device: CUDA")
def test_queries_on_the_cpu_and_keys_on_the_gpu(fake_faiss, monkeypatch):
    """Every tensor is moved where it is used: queries, query ids and query biases on the CPU, keys and key biases on
    the GPU (and, through faiss, queries on the GPU); results on the queries' device, equal to the CPU ones."""
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)  # full float32 products, as on the CPU
    src, tgt = spaces()
    g = torch.Generator().manual_seed(4)
    qb, kb = torch.rand(30, generator=g), torch.rand(25, generator=g)
    ids = torch.tensor([3, 0, 17])
    want_values, want_indices = topk_similarity(src, tgt, 4, query_bias=qb, key_bias=kb, scale=2.0, chunk_size=7)
    values, indices = topk_similarity(src, tgt.cuda(), 4, query_bias=qb, key_bias=kb, scale=2.0, chunk_size=7)
    assert values.device.type == indices.device.type == "cpu"
    torch.testing.assert_close(values, want_values)
    assert torch.equal(indices, want_indices)
    want_r = mutual_mean_topk_similarity(src, tgt, 4, chunk_size=7)
    r_src, r_tgt = mutual_mean_topk_similarity(src, tgt.cuda(), 4, chunk_size=7)
    torch.testing.assert_close((r_src, r_tgt.cpu()), want_r)
    want_csls = csls_topk(src, tgt, 3, knn=4, query_ids=ids, chunk_size=7)
    got_csls = csls_topk(src, tgt.cuda(), 3, knn=4, query_ids=ids.cuda(), chunk_size=7)
    torch.testing.assert_close(got_csls[0], want_csls[0])
    assert torch.equal(got_csls[1], want_csls[1])
    values, indices = topk_similarity(src.cuda(), tgt.cuda(), 4, query_bias=qb, key_bias=kb, scale=2.0,
                                      backend="faiss")
    assert values.device.type == indices.device.type == "cuda"
    torch.testing.assert_close(values.cpu(), want_values, rtol=0, atol=1e-5)
    assert torch.equal(indices.cpu(), want_indices)
