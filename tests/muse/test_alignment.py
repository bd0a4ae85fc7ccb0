"""MUSE's pure functions against brute-force references (csls, dictionary, mapping, metrics)."""

import importlib.util
import itertools

import pytest
import torch

from lit_digest.muse.csls import (
    csls_topk,
    mean_topk_similarity,
    mutual_mean_topk_similarity,
    normalize_rows,
    topk_similarity,
)
from lit_digest.muse.dictionary import (
    EmptyDictionaryError,
    candidate_pairs,
    identical_strings_dictionary,
    induce_dictionary,
)
from lit_digest.muse.mapping import orthogonalize_, procrustes
from lit_digest.muse.metrics import mean_cosine_criterion, translation_precision

HAS_FAISS = importlib.util.find_spec("faiss") is not None


def spaces(n_src=60, n_tgt=70, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return normalize_rows(torch.randn(n_src, dim, generator=g)), normalize_rows(
        torch.randn(n_tgt, dim, generator=g)
    )


def brute_csls(src, tgt, k):
    sim = src @ tgt.T
    r_src = sim.topk(min(k, sim.shape[1]), dim=1).values.mean(1)
    r_tgt = sim.T.topk(min(k, sim.shape[0]), dim=1).values.mean(1)
    return 2 * sim - r_src[:, None] - r_tgt[None, :], r_src, r_tgt


def brute_candidates(scores, max_rank, max_size=0, min_size=0, threshold=0.0):
    """The official get_candidates, row by row: best and second-best score of each query."""
    n = scores.shape[0] if max_rank <= 0 else min(max_rank, scores.shape[0])
    rows = []
    for i in range(n):
        order = sorted(range(scores.shape[1]), key=lambda j: (-scores[i, j].item(), j))
        rows.append((scores[i, order[0]].item() - scores[i, order[1]].item(), i, order[0]))
    rows.sort(key=lambda r: -r[0])  # stable: ties keep query order
    if max_rank > 0:  # official: `all_pairs.max(1)[0] <= params.dico_max_rank`
        rows = [r for r in rows if max(r[1], r[2]) <= max_rank]
    if max_size > 0:
        rows = rows[:max_size]
    if threshold > 0:
        rows = [r for idx, r in enumerate(rows) if idx < min_size or r[0] > threshold]
    return [(i, j) for _, i, j in rows]


@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_csls_scores_equal_brute_force(chunk_size):
    src, tgt = spaces()
    ref, r_src_ref, r_tgt_ref = brute_csls(src, tgt, 10)
    r_src, r_tgt = mutual_mean_topk_similarity(src, tgt, 10, chunk_size=chunk_size)
    torch.testing.assert_close(r_src, r_src_ref)
    torch.testing.assert_close(r_tgt, r_tgt_ref)
    torch.testing.assert_close(mean_topk_similarity(tgt, src, 10, chunk_size=chunk_size), r_tgt_ref)
    values, indices = csls_topk(src, tgt, 5, knn=10, chunk_size=chunk_size)
    torch.testing.assert_close(values, ref.topk(5, dim=1).values)
    assert torch.equal(indices, ref.topk(5, dim=1).indices)


def test_csls_restricted_queries_use_full_neighbourhoods():
    src, tgt = spaces()
    ref, _, _ = brute_csls(src, tgt, 10)
    ids = torch.tensor([3, 0, 41])
    values, indices = csls_topk(src, tgt, 2, knn=10, query_ids=ids, chunk_size=2)
    torch.testing.assert_close(values, ref[ids].topk(2, dim=1).values)
    assert torch.equal(indices, ref[ids].topk(2, dim=1).indices)


def test_topk_memory_budget_sets_the_chunk():
    src, tgt = spaces(n_src=50, n_tgt=40)
    calls = []
    original = torch.Tensor.topk

    def spy(self, *args, **kwargs):
        calls.append(self.shape)
        return original(self, *args, **kwargs)

    torch.Tensor.topk = spy
    try:
        values, _ = topk_similarity(src, tgt, 3, chunk_bytes=10 * 40 * 4)  # 10 rows of 40 fp32 scores
    finally:
        torch.Tensor.topk = original
    assert max(shape[0] for shape in calls) == 10 and len(calls) == 5
    torch.testing.assert_close(values, (src @ tgt.T).topk(3, dim=1).values)


@pytest.mark.parametrize("method", ["nn", "csls"])
@pytest.mark.parametrize(
    "opts",
    [
        dict(max_rank=0),
        dict(max_rank=30),
        dict(max_rank=30, max_size=10),
        dict(max_rank=0, threshold=0.05, min_size=3),
    ],
)
def test_candidate_pairs_equal_brute_force(method, opts):
    src, tgt = spaces()
    scores = brute_csls(src, tgt, 10)[0] if method == "csls" else src @ tgt.T
    got = candidate_pairs(src, tgt, method=method, knn=10, chunk_size=9, **opts)
    assert [tuple(p) for p in got.tolist()] == brute_candidates(scores, **opts)


@pytest.mark.parametrize("build", ["S2T", "T2S", "S2T&T2S", "S2T|T2S"])
@pytest.mark.parametrize("method", ["nn", "csls"])
def test_induced_dictionaries_equal_brute_force(build, method):
    src, tgt = spaces(n_src=50, n_tgt=50)
    # correlate the spaces so that the intersection is not empty
    tgt = normalize_rows(src[torch.randperm(50, generator=torch.Generator().manual_seed(1))] + 0.3 * tgt)
    scores = brute_csls(src, tgt, 10)[0] if method == "csls" else src @ tgt.T
    s2t = brute_candidates(scores, 40)
    t2s = [(i, j) for j, i in brute_candidates(scores.T.contiguous(), 40)]
    expected = {
        "S2T": s2t,
        "T2S": t2s,
        "S2T&T2S": sorted(set(s2t) & set(t2s)),
        "S2T|T2S": sorted(set(s2t) | set(t2s)),
    }
    got = induce_dictionary(src, tgt, method=method, build=build, max_rank=40, chunk_size=8)
    assert [tuple(p) for p in got.tolist()] == expected[build]
    assert got.dtype == torch.long and got.shape[1] == 2


def test_empty_induced_dictionary_fails_clearly():
    src, tgt = spaces()
    with pytest.raises(EmptyDictionaryError, match="induced dictionary is empty"):
        induce_dictionary(src, tgt, build="S2T&T2S", threshold=10.0)
    with pytest.raises(ValueError, match="build must be"):
        induce_dictionary(src, tgt, build="both")


def test_procrustes_recovers_a_rotation():
    g = torch.Generator().manual_seed(0)
    rotation, _ = torch.linalg.qr(torch.randn(16, 16, generator=g))
    a = torch.randn(200, 16, generator=g)
    w = procrustes(a, a @ rotation.T)
    torch.testing.assert_close(w, rotation, atol=1e-5, rtol=0)
    noisy = procrustes(a, a @ rotation.T + 0.05 * torch.randn(200, 16, generator=g))
    torch.testing.assert_close(noisy @ noisy.T, torch.eye(16), atol=1e-5, rtol=0)
    assert (noisy - rotation).norm() < 0.1
    with pytest.raises(EmptyDictionaryError):
        procrustes(a[:0], a[:0])


def test_orthogonalization_keeps_w_orthogonal():
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(32, 32, generator=g))
    fixed = q.clone()
    orthogonalize_(fixed, 0.01)
    torch.testing.assert_close(fixed, q, atol=1e-6, rtol=0)  # orthogonal matrices are fixed points

    def deviation(w):
        return (w @ w.T - torch.eye(32)).abs().max().item()

    w = q + 0.05 * torch.randn(32, 32, generator=g)
    before = deviation(w)
    orthogonalize_(w, 0.01)
    assert deviation(w) < before  # one step moves towards the orthogonal manifold
    for _ in range(2000):
        orthogonalize_(w, 0.01)
    assert deviation(w) < 1e-4
    # SGD-like drift followed by the update every step stays within tolerance
    w = q.clone()
    for _ in range(500):
        w -= 1e-3 * torch.randn(32, 32, generator=g)
        orthogonalize_(w, 0.01)
    assert deviation(w) < 0.05


def test_translation_precision_counts_unique_source_words():
    # source words 0 and 1; targets 0..3. Word 0 has two gold translations (2 and 0).
    src = normalize_rows(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    tgt = normalize_rows(torch.tensor([[1.0, 0.1], [0.1, 1.0], [0.7, 0.7], [-1.0, 0.0]]))
    gold = torch.tensor([[0, 2], [0, 0], [1, 3]])
    p = translation_precision(src, tgt, gold, method="nn", ks=(1, 2, 4))
    assert p == {1: 50.0, 2: 50.0, 4: 100.0}  # word 0 found at rank 1 (target 0), word 1 only at rank 4


@pytest.mark.parametrize("method", ["nn", "csls"])
def test_translation_precision_equals_brute_force(method):
    src, tgt = spaces(n_src=40, n_tgt=45)
    gold = torch.tensor([[i, (3 * i) % 45] for i in range(0, 40, 2)] + [[0, 5], [4, 44]])
    scores = brute_csls(src, tgt, 10)[0] if method == "csls" else src @ tgt.T
    top = scores.topk(10, dim=1).indices
    expected = {}
    for k in (1, 5, 10):
        words = {}
        for s, t in gold.tolist():
            words[s] = words.get(s, False) or t in top[s, :k].tolist()
        expected[k] = 100.0 * sum(words.values()) / len(words)
    got = translation_precision(src, tgt, gold, method=method, chunk_size=4)
    assert got == pytest.approx(expected)


def test_mean_cosine_criterion_equals_brute_force():
    src, tgt = spaces()
    scores = brute_csls(src, tgt, 10)[0]
    pairs = brute_candidates(scores, 30, max_size=30)
    expected = torch.stack([src[i] @ tgt[j] for i, j in pairs]).mean().item()
    assert mean_cosine_criterion(src, tgt, max_rank=30, max_size=30) == pytest.approx(expected, abs=1e-6)


def test_identical_strings_seed():
    pairs = identical_strings_dictionary(["the", "paris", "a", "x1"], ["paris", "le", "x1", "la"])
    assert pairs.tolist() == [[1, 0], [3, 2]]
    with pytest.raises(EmptyDictionaryError):
        identical_strings_dictionary(["a"], ["b"])


@pytest.mark.skipif(not HAS_FAISS, reason="faiss is optional")
def test_faiss_backend_matches_torch():
    src, tgt = spaces()
    for a, b in itertools.permutations([src, tgt]):
        v1, i1 = topk_similarity(a, b, 4)
        v2, i2 = topk_similarity(a, b, 4, backend="faiss")
        torch.testing.assert_close(v1, v2, atol=1e-5, rtol=0)
        assert torch.equal(i1, i2)
    v1, i1 = csls_topk(src, tgt, 3)
    v2, i2 = csls_topk(src, tgt, 3, backend="faiss")
    torch.testing.assert_close(v1, v2, atol=1e-5, rtol=0)
    assert torch.equal(i1, i2)


@pytest.mark.skipif(HAS_FAISS, reason="checks the message shown when faiss is absent")
def test_faiss_is_never_required():
    src, tgt = spaces()
    topk_similarity(src, tgt, 3)  # the default needs nothing but torch
    with pytest.raises(ImportError, match="faiss is not installed"):
        topk_similarity(src, tgt, 3, backend="faiss")


def test_max_rank_keeps_a_target_of_rank_max_rank_as_the_official_code():
    """get_candidates keeps pairs whose ids are at most dico_max_rank: a source word whose best target is
    word ``max_rank`` itself stays in the dictionary (0.1 dropped it: an off-by-one from the official code)."""
    src = normalize_rows(torch.eye(6)[:, :6] + 0.01)
    tgt = src[[0, 1, 2, 4, 3, 5]]  # source word 3's translation is target word 4
    pairs = candidate_pairs(src, tgt, method="nn", max_rank=4)
    assert (3, 4) in {tuple(p) for p in pairs.tolist()}
    assert all(max(p) <= 4 for p in pairs.tolist()) and len(pairs) == 4  # queries 0..3, as the official n_src
