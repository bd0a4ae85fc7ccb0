"""The stylometrist's first baseline: character n-gram TF-IDF and logistic regression (scikit-learn).

Character n-grams are the representation that authorship attribution keeps coming back to: "the most
successful" family of features across the studies surveyed by Stamatatos (JASIST 60(3), 2009, "A survey of
modern authorship attribution methods", Sec. 3.2 and 5), and the baseline of the PAN shared tasks. Here: n from
2 to 5 within and across words, sublinear term frequency, terms seen in at least two training passages, L2-
normalised rows; a multinomial logistic regression with balanced class weights (the score is macro-F1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["CharNgramBaseline", "macro_f1"]


class CharNgramBaseline:
    """``fit(texts, labels)`` on real training passages; ``predict_proba`` / ``predict`` on any text.

    Args:
        ngram_range: character n-gram lengths.
        min_df: a term must occur in this many training passages.
        C: inverse regularisation strength of the logistic regression.
        seed: the solver's seed (lbfgs is deterministic; kept for the record).
    """

    def __init__(self, ngram_range: tuple[int, int] = (2, 5), min_df: int = 2, C: float = 10.0, seed: int = 0) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        self.vectorizer = TfidfVectorizer(analyzer="char", ngram_range=ngram_range, min_df=min_df, sublinear_tf=True,
                                          lowercase=False)
        self.classifier = LogisticRegression(C=C, max_iter=2000, class_weight="balanced", random_state=seed)
        self.num_labels = 0

    def fit(self, texts: Sequence[str], labels: Sequence[int], num_labels: int | None = None) -> CharNgramBaseline:
        labels = np.asarray(labels)
        self.num_labels = int(num_labels if num_labels is not None else labels.max() + 1)
        if len(set(labels.tolist())) < 2:
            raise ValueError("the TF-IDF baseline needs training passages of at least two labels")
        self.classifier.fit(self.vectorizer.fit_transform(list(texts)), labels)
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """``(N, num_labels)`` probabilities (0 for a label absent from the training passages)."""
        probs = self.classifier.predict_proba(self.vectorizer.transform(list(texts)))
        out = np.zeros((len(texts), self.num_labels))
        out[:, self.classifier.classes_] = probs
        return out

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_proba(texts).argmax(axis=1)


def macro_f1(true: Sequence[int], predicted: Sequence[int], num_labels: int) -> float:
    """The mean over the ``num_labels`` labels of F1 (0 for a label never true nor predicted)."""
    true, predicted = np.asarray(true), np.asarray(predicted)
    scores = []
    for c in range(num_labels):
        tp = np.sum((true == c) & (predicted == c))
        fp, fn = np.sum((true != c) & (predicted == c)), np.sum((true == c) & (predicted != c))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores))
