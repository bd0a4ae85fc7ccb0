"""Verbatim overlap in words: the longest run of words two texts share, and the nearest real passage.

Words are runs of letters and digits (``\\w+``, any script), lowercased; punctuation and spacing are ignored, so
"It is, he said" and "it is he said" share four words. A generated passage that shares a long run with a training
text has copied it (memorised); real held-out passages give the base rate, since people quote and reuse phrases
too. Carlini et al. (arXiv 2012.07805, Sec. 4; arXiv 2202.07646, Sec. 3) count a sample as memorised by the same
test, a verbatim match with the training data, at the level of tokens.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["words", "longest_shared_run", "Match", "NgramIndex"]

_WORD = re.compile(r"\w+")


def words(text: str) -> list[tuple[str, int, int]]:
    """``(word lowercased, start, end)`` of every word of ``text``."""
    return [(m.group().lower(), m.start(), m.end()) for m in _WORD.finditer(text)]


def longest_shared_run(a: str, b: str) -> int:
    """The most consecutive words that ``a`` and ``b`` share (dynamic programming over every pair of positions:
    the plain definition, for tests and short texts)."""
    x, y = [w for w, _, _ in words(a)], [w for w, _, _ in words(b)]
    best, previous = 0, [0] * (len(y) + 1)
    for i in range(len(x)):
        row = [0] * (len(y) + 1)
        for j in range(len(y)):
            if x[i] == y[j]:
                row[j + 1] = previous[j] + 1
                best = max(best, row[j + 1])
        previous = row
    return best


@dataclass(frozen=True)
class Match:
    """The longest run: its length in words, the text it is in (``text`` index, -1 for none), and the character
    spans of the run in the query and in that text."""

    length: int
    text: int
    query_span: tuple[int, int]
    text_span: tuple[int, int]


class NgramIndex:
    """Every word bigram of ``texts`` and where it occurs; ``longest(query)`` extends each shared bigram word by
    word, so it finds the longest shared run (of 2 words or more) exactly, in time linear in the hits."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = list(texts)
        self.words = [words(t) for t in self.texts]
        self.bigrams: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
        self.unigrams: dict[str, tuple[int, int]] = {}
        for t, ws in enumerate(self.words):
            for p in range(len(ws)):
                self.unigrams.setdefault(ws[p][0], (t, p))
                if p + 1 < len(ws):
                    self.bigrams[(ws[p][0], ws[p + 1][0])].append((t, p))

    def longest(self, query: str) -> Match:
        """The longest run of words ``query`` shares with one of the texts (the first such text on ties)."""
        q = words(query)
        best = (0, -1, 0, 0)  # length, text, start in query, start in text
        for i in range(len(q) - 1):
            for t, p in self.bigrams.get((q[i][0], q[i + 1][0]), ()):
                ws, n = self.words[t], 2
                while i + n < len(q) and p + n < len(ws) and q[i + n][0] == ws[p + n][0]:
                    n += 1
                if n > best[0]:
                    best = (n, t, i, p)
        if best[0] == 0:  # no shared bigram: a shared word, if any
            for i, (w, _, _) in enumerate(q):
                if w in self.unigrams:
                    best = (1, *self.unigrams[w][:1], i, self.unigrams[w][1])
                    break
        n, t, i, p = best
        if n == 0:
            return Match(0, -1, (0, 0), (0, 0))
        ws = self.words[t]
        return Match(n, t, (q[i][1], q[i + n - 1][2]), (ws[p][1], ws[p + n - 1][2]))

    def share_copied(self, queries: Sequence[str], min_words: int) -> float:
        """The share of ``queries`` that share a run of ``min_words`` words or more with one of the texts."""
        if not queries:
            return float("nan")
        return sum(self.longest(q).length >= min_words for q in queries) / len(queries)
