"""Lexical features (TF-IDF over word and character n-grams) and kNN helpers over sentence embeddings.

`ngram_tfidf` is the one TF-IDF feature builder: the intent classifier (`build_tfidf`), the injection screen's
model and its near-duplicate folds, the knowledge base's lexical score and the injection eval's overlap check all
take their vectoriser from it. scikit-learn is imported when a vectoriser is built, not with this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np

from classifier.config import ClassifierConfig

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

EVERY_WORD = r"(?u)\b\w+\b"
"""Word tokens of one letter too (scikit-learn's default pattern drops them)."""


def ngram_tfidf(
    analyzer: Literal["word", "char_wb"],
    ngrams: tuple[int, int],
    *,
    min_df: int = 1,
    token_pattern: str | None = None,
) -> TfidfVectorizer:
    """An unfitted TF-IDF vectoriser: lowercased word or char_wb (within-word) n-grams, sublinear tf, rows
    L2-normalised. `token_pattern` (word n-grams only) defaults to scikit-learn's words of two letters or more."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if analyzer not in ("word", "char_wb"):
        raise ValueError(f"unknown analyzer {analyzer!r}: use 'word' or 'char_wb'")
    if token_pattern is not None and analyzer != "word":
        raise ValueError("token_pattern applies to word n-grams only")
    extra = {"token_pattern": token_pattern} if token_pattern is not None else {}
    return TfidfVectorizer(analyzer=analyzer, ngram_range=ngrams, sublinear_tf=True, lowercase=True, min_df=min_df,
                           **extra)


def build_tfidf(config: ClassifierConfig) -> FeatureUnion:
    """The classifier's lexical block: word and char_wb TF-IDF (`config`'s n-gram ranges), each L2-normalised."""
    from sklearn.pipeline import FeatureUnion

    return FeatureUnion([
        ("word", ngram_tfidf("word", config.word_ngrams, token_pattern=EVERY_WORD)),
        ("char", ngram_tfidf("char_wb", config.char_ngrams, min_df=config.char_min_df)),
    ])


def top_k_similarities(
    queries: np.ndarray, bank: np.ndarray, k: int, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities (descending) and indices of the k nearest rows of `bank` for each query."""
    k = max(1, min(k, len(bank)))
    sims_out = np.empty((len(queries), k), dtype=np.float32)
    idx_out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), chunk):
        s = queries[start:start + chunk] @ bank.T
        idx = np.argpartition(-s, k - 1, axis=1)[:, :k]
        part = np.take_along_axis(s, idx, axis=1)
        order = np.argsort(-part, axis=1)
        sims_out[start:start + chunk] = np.take_along_axis(part, order, axis=1)
        idx_out[start:start + chunk] = np.take_along_axis(idx, order, axis=1)
    return sims_out, idx_out


def knn_probabilities(
    sims: np.ndarray, idx: np.ndarray, bank_labels: np.ndarray, n_classes: int, temperature: float
) -> np.ndarray:
    """A soft kNN vote: each neighbour adds exp(sim / temperature) to its class; rows sum to 1."""
    w = np.exp((sims - sims[:, :1]) / temperature)
    probs = np.zeros((len(sims), n_classes), dtype=np.float64)
    rows = np.repeat(np.arange(len(sims)), sims.shape[1])
    np.add.at(probs, (rows, bank_labels[idx].ravel()), w.ravel())
    probs /= probs.sum(axis=1, keepdims=True)
    return 0.98 * probs + 0.02 / n_classes
