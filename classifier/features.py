"""Lexical features (TF-IDF over word and character n-grams) and kNN helpers over sentence embeddings."""

from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion

from classifier.config import ClassifierConfig


def build_tfidf(config: ClassifierConfig) -> FeatureUnion:
    """Word (1-2) and char_wb (2-5) TF-IDF with sublinear tf, each block L2-normalised."""
    return FeatureUnion([
        ("word", TfidfVectorizer(ngram_range=config.word_ngrams, sublinear_tf=True, lowercase=True,
                                 token_pattern=r"(?u)\b\w+\b")),
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=config.char_ngrams, sublinear_tf=True,
                                 lowercase=True, min_df=config.char_min_df)),
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
