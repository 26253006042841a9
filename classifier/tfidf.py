"""TF-IDF with numpy only: the serving side of `classifier.features.ngram_tfidf`.

scikit-learn fits the models (`classifier.model`, `guards.injection_model`); serving them needs only the fitted
vocabulary and idf weights, exported here to arrays, so a process that answers tickets never imports scikit-learn
or SciPy (about 0.9 s of a cold start). `NgramTfidf` reproduces scikit-learn 1.9's `TfidfVectorizer` for the
settings `ngram_tfidf` makes (lowercase, word n-grams over a token pattern or char_wb n-grams, sublinear tf,
smooth idf, L2-normalised rows): the same features in the same columns, values equal to rounding
(`tests/test_tfidf.py` compares both on the same texts). `fit` is also here for the knowledge base's lexical
index, which is fitted while serving.

Rows are returned as a small CSR matrix (`Rows`); `Rows.dot(w)` is `x @ w` for a dense `w`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["NgramTfidf", "Rows"]

SKLEARN_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
_WHITE_SPACES = re.compile(r"\s\s+")


@dataclass(frozen=True)
class Rows:
    """CSR rows (scipy's layout): row i has columns `indices[indptr[i]:indptr[i + 1]]` with `data` values."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    n_features: int

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @classmethod
    def from_dense(cls, x: np.ndarray) -> Rows:
        """The nonzeros of a dense (n, F) array (scipy.sparse.csr_matrix(x))."""
        x = np.asarray(x, dtype=np.float64)
        rows, cols = np.nonzero(x)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(x)))]).astype(np.int64)
        return cls(indptr, cols.astype(np.int64), x[rows, cols], x.shape[1])

    @staticmethod
    def hstack(blocks: Sequence[Rows]) -> Rows:
        """The blocks side by side, columns numbered on (scipy.sparse.hstack(...).tocsr())."""
        if len(blocks) == 1:
            return blocks[0]
        n = len(blocks[0])
        offsets = np.cumsum([0, *(b.n_features for b in blocks)])
        indptr = np.sum([b.indptr for b in blocks], axis=0)
        indices = np.empty(indptr[-1], dtype=np.int64)
        data = np.empty(indptr[-1], dtype=np.float64)
        for i in range(n):
            at = indptr[i]
            for b, off in zip(blocks, offsets, strict=False):
                lo, hi = b.indptr[i], b.indptr[i + 1]
                indices[at : at + hi - lo] = b.indices[lo:hi] + off
                data[at : at + hi - lo] = b.data[lo:hi]
                at += hi - lo
        return Rows(indptr, indices, data, int(offsets[-1]))

    def dot(self, weights: np.ndarray) -> np.ndarray:
        """`x @ weights` for a dense (n_features,) or (n_features, k) array. Each row's products are summed in
        column order from zero, as scipy.sparse does, so the numbers are scipy's to the last bit."""
        w = np.asarray(weights)
        if w.ndim == 1:
            rows = np.repeat(np.arange(len(self)), np.diff(self.indptr))
            return np.bincount(rows, weights=self.data * w[self.indices], minlength=len(self))
        out = np.zeros((len(self), w.shape[1]), dtype=np.result_type(self.data, w))
        for i in range(len(self)):
            lo, hi = self.indptr[i], self.indptr[i + 1]
            if hi > lo:
                out[i] = np.cumsum(self.data[lo:hi, None] * w[self.indices[lo:hi]], axis=0)[-1]
        return out

    def toarray(self) -> np.ndarray:
        out = np.zeros((len(self), self.n_features), dtype=np.float64)
        rows = np.repeat(np.arange(len(self)), np.diff(self.indptr))
        out[rows, self.indices] = self.data
        return out

    def dense_row(self, i: int) -> np.ndarray:
        """Row `i` as a dense (n_features,) array."""
        out = np.zeros(self.n_features, dtype=np.float64)
        lo, hi = self.indptr[i], self.indptr[i + 1]
        out[self.indices[lo:hi]] = self.data[lo:hi]
        return out


@dataclass(frozen=True)
class NgramTfidf:
    """A fitted TF-IDF vectoriser as arrays: `vocabulary` (terms in column order) and `idf`."""

    analyzer: Literal["word", "char_wb"]
    ngram_range: tuple[int, int]
    token_pattern: str
    vocabulary: dict[str, int]
    idf: np.ndarray

    # ------------------------------------------------------------------ analysis
    def analyze(self, text: str) -> list[str]:
        """The n-grams of one text, as `TfidfVectorizer.build_analyzer()` gives them."""
        return _analyzer(self.analyzer, self.ngram_range, self.token_pattern)(text)

    def transform(self, texts: Iterable[str]) -> Rows:
        """TF-IDF rows of `texts`: sublinear tf, times idf, L2-normalised (terms outside the vocabulary dropped)."""
        analyze = _analyzer(self.analyzer, self.ngram_range, self.token_pattern)
        vocab = self.vocabulary
        indptr, indices, counts = [0], [], []
        for text in texts:
            row = Counter(vocab[t] for t in analyze(text) if t in vocab)
            cols = sorted(row)
            indices += cols
            counts += [row[c] for c in cols]
            indptr.append(len(indices))
        ind = np.asarray(indices, dtype=np.int64)
        data = np.log(np.asarray(counts, dtype=np.float64)) + 1.0
        data *= self.idf[ind]
        ptr = np.asarray(indptr, dtype=np.int64)
        for i in range(len(ptr) - 1):  # row by row, as scikit-learn's inplace_csr_row_normalize_l2
            lo, hi = ptr[i], ptr[i + 1]
            if hi > lo:
                norm = np.sqrt(np.cumsum(data[lo:hi] * data[lo:hi])[-1])  # summed in order, as scikit-learn
                if norm > 0:
                    data[lo:hi] /= norm
        return Rows(ptr, ind, data, len(self.idf))

    # ------------------------------------------------------------------ fitting and export
    @classmethod
    def fit(
        cls,
        texts: Sequence[str],
        analyzer: Literal["word", "char_wb"],
        ngram_range: tuple[int, int],
        *,
        min_df: int = 1,
        token_pattern: str = SKLEARN_TOKEN_PATTERN,
    ) -> NgramTfidf:
        """Fit as `classifier.features.ngram_tfidf(...).fit(texts)` would: terms sorted, df >= min_df, smooth idf."""
        analyze = _analyzer(analyzer, ngram_range, token_pattern)
        df: Counter[str] = Counter()
        for text in texts:
            df.update(set(analyze(text)))
        terms = sorted(t for t, n in df.items() if n >= min_df)
        if not terms:
            raise ValueError("After pruning, no terms remain. Try a lower min_df or a higher max_df.")
        n = len(texts) + 1
        idf = np.log(n / (np.asarray([df[t] for t in terms], dtype=np.float64) + 1.0)) + 1.0
        return cls(analyzer, ngram_range, token_pattern, {t: i for i, t in enumerate(terms)}, idf)

    @classmethod
    def from_sklearn(cls, vectorizer: Any) -> NgramTfidf:
        """The arrays of a fitted `TfidfVectorizer` made by `ngram_tfidf` (other settings are refused)."""
        v = vectorizer
        expected = {"lowercase": True, "sublinear_tf": True, "use_idf": True, "smooth_idf": True, "norm": "l2",
                    "strip_accents": None, "stop_words": None, "preprocessor": None, "tokenizer": None,
                    "binary": False, "max_features": None}
        wrong = {k: getattr(v, k) for k, want in expected.items() if getattr(v, k) != want}
        if wrong or v.analyzer not in ("word", "char_wb"):
            raise ValueError(f"not a vectoriser ngram_tfidf makes: {wrong or v.analyzer}")
        return cls(v.analyzer, tuple(v.ngram_range), v.token_pattern,
                   {str(t): int(i) for t, i in v.vocabulary_.items()}, np.asarray(v.idf_, dtype=np.float64))

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """Arrays for `np.savez` (terms in column order, idf, settings), named `prefix`.*."""
        terms = np.empty(len(self.vocabulary), dtype=object)
        for term, i in self.vocabulary.items():
            terms[i] = term
        return {f"{prefix}.terms": terms.astype(str), f"{prefix}.idf": self.idf,
                f"{prefix}.settings": np.asarray([self.analyzer, str(self.ngram_range[0]), str(self.ngram_range[1]),
                                                  self.token_pattern])}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> NgramTfidf:
        analyzer, lo, hi, pattern = (str(s) for s in arrays[f"{prefix}.settings"])
        if analyzer not in ("word", "char_wb"):
            raise ValueError(f"unknown analyzer {analyzer!r}")
        terms = arrays[f"{prefix}.terms"].tolist()
        return cls(analyzer, (int(lo), int(hi)), pattern,  # type: ignore[arg-type]
                   {t: i for i, t in enumerate(terms)}, np.asarray(arrays[f"{prefix}.idf"], dtype=np.float64))


def _analyzer(analyzer: str, ngram_range: tuple[int, int], token_pattern: str) -> Callable[[str], list[str]]:
    lo, hi = ngram_range
    if analyzer == "char_wb":
        return lambda text: _char_wb_ngrams(text.lower(), lo, hi)
    if analyzer != "word":
        raise ValueError(f"unknown analyzer {analyzer!r}: use 'word' or 'char_wb'")
    pattern = re.compile(token_pattern)
    if pattern.groups > 1:
        raise ValueError("More than 1 capturing group in token pattern. Only a single group should be captured.")
    return lambda text: _word_ngrams(pattern.findall(text.lower()), lo, hi)


def _word_ngrams(tokens: list[str], min_n: int, max_n: int) -> list[str]:
    if max_n == 1:
        return tokens
    original = tokens
    if min_n == 1:
        tokens = list(original)
        min_n += 1
    else:
        tokens = []
    n_original = len(original)
    for n in range(min_n, min(max_n + 1, n_original + 1)):
        for i in range(n_original - n + 1):
            tokens.append(" ".join(original[i : i + n]))
    return tokens


def _char_wb_ngrams(text: str, min_n: int, max_n: int) -> list[str]:
    text = _WHITE_SPACES.sub(" ", text)
    ngrams: list[str] = []
    append = ngrams.append
    for w in text.split():
        w = " " + w + " "
        w_len = len(w)
        for n in range(min_n, max_n + 1):
            offset = 0
            append(w[offset : offset + n])
            while offset + n < w_len:
                offset += 1
                append(w[offset : offset + n])
            if offset == 0:  # a short word (w_len < n) counted once
                break
    return ngrams
