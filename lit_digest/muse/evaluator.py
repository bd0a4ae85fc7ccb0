"""``AlignmentEvaluator``: everything MUSE computes about a mapping W on two fixed embedding spaces.

The unsupervised criterion, P@k with NN and CSLS retrieval, dictionary induction for the refinement
and the Procrustes solution. W is mapped over the whole source vocabulary once, with the CSLS
neighbourhood terms, and reused until W changes: the systems compose one evaluator and hand it
their current W; nothing is read back from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lit_digest.muse.csls import DEFAULT_CHUNK_BYTES, mutual_mean_topk_similarity, normalize_rows
from lit_digest.muse.dictionary import induce_dictionary
from lit_digest.muse.mapping import procrustes
from lit_digest.muse.metrics import mean_cosine_criterion, translation_precision

__all__ = ["AlignmentEvaluator", "InductionSettings"]


@dataclass(frozen=True)
class InductionSettings:
    """How the refinement builds its training dictionary (MUSE's ``--dico_*`` options)."""

    method: str = "csls"
    build: str = "S2T"
    max_rank: int = 15000
    max_size: int = 0
    min_size: int = 0
    threshold: float = 0.0


class AlignmentEvaluator:
    """Evaluates mappings of ``src`` (n_src, d) into the space of ``tgt`` (n_tgt, d).

    Args:
        src, tgt: the (normalised as in training) embeddings, on the device to compute on.
        knn: CSLS neighbourhood size K (paper: 10).
        criterion_words: the criterion's most frequent source words (paper: 10k).
        chunk_bytes: the largest score block held at once.
    """

    def __init__(self, src: Tensor, tgt: Tensor, knn: int = 10, criterion_words: int = 10000,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        if src.shape[1] != tgt.shape[1]:
            raise ValueError(f"dimension mismatch: source {tuple(src.shape)} vs target {tuple(tgt.shape)}")
        self.src, self.tgt = src, tgt
        self.tgt_unit = normalize_rows(tgt)
        self.knn, self.criterion_words, self.chunk_bytes = knn, criterion_words, chunk_bytes
        self._weight: Tensor | None = None  # the W of the cache below
        self._cache: tuple[Tensor, Tensor, Tensor] | None = None

    @torch.no_grad()
    def aligned(self, weight: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Unit-norm mapped source (n_src, d), unit target (n_tgt, d) and the CSLS terms r_src, r_tgt."""
        if self._weight is None or self._weight.shape != weight.shape or not torch.equal(self._weight, weight):
            self._cache = None  # free the old copy first
            src = normalize_rows(self.src @ weight.t().to(self.src))
            r_src, r_tgt = mutual_mean_topk_similarity(src, self.tgt_unit, self.knn, chunk_bytes=self.chunk_bytes)
            self._cache, self._weight = (src, r_src, r_tgt), weight.detach().clone()
        src, r_src, r_tgt = self._cache
        return src, self.tgt_unit, r_src, r_tgt

    def criterion(self, weight: Tensor) -> float:
        """Mean cosine of the CSLS S2T translations of the most frequent source words (section 3.5)."""
        src, tgt, r_src, r_tgt = self.aligned(weight)
        n = self.criterion_words
        return mean_cosine_criterion(src, tgt, knn=self.knn, max_rank=n, max_size=n, r_src=r_src, r_tgt=r_tgt,
                                     chunk_bytes=self.chunk_bytes)

    def precision(self, weight: Tensor, dictionary: Tensor, methods: tuple[str, ...] = ("nn", "csls"),
                  ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
        """``{"p@1_csls": ...}``: precision@k in percent on a gold dictionary (p, 2)."""
        src, tgt, r_src, r_tgt = self.aligned(weight)
        out = {}
        for method in methods:
            scores = translation_precision(src, tgt, dictionary, method=method, knn=self.knn, ks=ks, r_src=r_src,
                                           r_tgt=r_tgt, chunk_bytes=self.chunk_bytes)
            out.update({f"p@{k}_{method}": v for k, v in scores.items()})
        return out

    def induce(self, weight: Tensor, settings: InductionSettings) -> Tensor:
        """A training dictionary (p, 2) from the alignment under ``weight``."""
        src, tgt, r_src, r_tgt = self.aligned(weight)
        return induce_dictionary(src, tgt, method=settings.method, knn=self.knn, build=settings.build,
                                 max_rank=settings.max_rank, max_size=settings.max_size, min_size=settings.min_size,
                                 threshold=settings.threshold, r_src=r_src, r_tgt=r_tgt, chunk_bytes=self.chunk_bytes)

    @torch.no_grad()
    def procrustes(self, dictionary: Tensor) -> Tensor:
        """The orthogonal W fitting the dictionary's embedding pairs (eq. 2)."""
        ids = dictionary.to(self.src.device)
        return procrustes(self.src[ids[:, 0]], self.tgt[ids[:, 1]])
