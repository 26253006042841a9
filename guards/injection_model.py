"""The learned stage of the prompt-injection screen: TF-IDF n-grams + MiniLM embedding, logistic regression.

Features: character 2-5-grams and word 1-2-grams (TF-IDF on the normalised text, so German and other languages
count as much as English) concatenated with the all-MiniLM-L6-v2 sentence embedding (memory/embeddings.py, the
encoder the graph already has loaded). A text's probability is the larger of the whole text's and that of its
windows (its sentences and 8-word windows), so an instruction stacked after a harmless question is scored on
its own. Settings live in ``config/guard.yaml``.

:func:`fit` trains on labelled rows: the project's own examples (``guards/injection_examples.yaml``), the shop's
support utterances (``demo/intent_examples.yaml``, benign) and any extra labelled set (the deepset train split,
or a user's file via ``python app.py train-guard``). It chooses the threshold on held-out folds first: grouped
cross-validation over the extra set (near-duplicates, e.g. a prompt and its translation, stay in one fold) or,
without one, over the project's examples; the support utterances are split into the same folds. The threshold
is the lowest that keeps the held-out false-positive rates within ``max_validation_fpr`` and
``max_support_fpr``; the model is then refitted on everything. The held-out figures are kept in ``meta``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from classifier.features import ngram_tfidf
from classifier.tfidf import NgramTfidf, Rows
from memory.embedder import CachedEmbedder, Embedder

CONFIG_FILE = Path(__file__).resolve().parents[1] / "config" / "guard.yaml"
FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.npz"
"""The fitted arrays (no pickle); models saved before it existed have model.joblib instead, still read."""
Source = Literal["data", "project", "support", "document"]


# --- configuration --------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Features(_Strict):
    char_ngrams: tuple[int, int] = (2, 5)
    word_ngrams: tuple[int, int] = (1, 2)
    min_df: int = Field(2, ge=1)
    embedding_weight: float = Field(1.0, ge=0)

    @model_validator(mode="after")
    def _ranges(self) -> Features:
        for name in ("char_ngrams", "word_ngrams"):
            lo, hi = getattr(self, name)
            if not 1 <= lo <= hi <= 8:
                raise ValueError(f"{name} must be [low, high] with 1 <= low <= high <= 8")
        return self


class Classifier(_Strict):
    C: float = Field(3.0, gt=0)


class Windows(_Strict):
    words: int = Field(8, ge=2)
    stride: int = Field(4, ge=1)
    weight: float = Field(1.0, ge=0, le=1)
    fragment_weight: float = Field(0.3, ge=0)


class Threshold(_Strict):
    folds: int = Field(5, ge=2, le=20)
    max_validation_fpr: float = Field(0.03, ge=0, le=1)
    max_support_fpr: float = Field(0.005, ge=0, le=1)
    fallback: float = Field(0.5, gt=0, lt=1)


class Documents(_Strict):
    max_fpr: float = Field(0.002, ge=0, le=1)


class GuardConfig(_Strict):
    """``config/guard.yaml``."""

    version: int = 1
    features: Features = Features()
    classifier: Classifier = Classifier()
    windows: Windows = Windows()
    threshold: Threshold = Threshold()
    documents: Documents = Documents()


YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""PyYAML's safe loader, on libyaml when available (the same documents, faster)."""


@lru_cache(maxsize=4)
def load_config(path: Path = CONFIG_FILE) -> GuardConfig:
    """Read and validate ``config/guard.yaml``; raises ValueError naming the file and the bad key."""
    try:
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=YAML_LOADER) or {}
    except FileNotFoundError as exc:
        raise ValueError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"config file {path} is not valid YAML: {exc}") from exc
    try:
        return GuardConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ValueError(f"{path}: {'.'.join(str(x) for x in err['loc'])}: {err['msg']}") from exc


# --- data -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One labelled training text: 1 = injection. ``source`` says which group it belongs to (see :func:`fit`)."""

    text: str
    label: int
    source: Source = "data"
    group: str = ""
    """Rows of one group (the sentences of one article) share a validation fold."""


_TRUE = {"1", "true", "yes", "injection", "attack", "malicious", "jailbreak"}
_FALSE = {"0", "false", "no", "benign", "safe", "legit", "legitimate"}


def _label(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
    key = str(value).strip().lower()
    if key in _TRUE:
        return 1
    if key in _FALSE:
        return 0
    raise ValueError(f"label must be 0/1 (or injection/benign), got {value!r}")


def read_labelled(path: Path) -> list[tuple[str, int]]:
    """Read a labelled set: JSON Lines (``{"text": ..., "label": 0|1}``) or CSV with ``text`` and ``label`` columns.

    Raises ValueError listing the bad lines (at most ten, with line numbers) when any line is bad, and when the
    file holds no rows or only one class; nothing is returned half-read.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    rows: list[tuple[str, int]] = []
    errors: list[str] = []
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        for lineno, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict):
                    raise ValueError("expected an object with 'text' and 'label'")
                rows.append((_text(rec.get("text")), _label(rec.get("label"))))
            except (json.JSONDecodeError, ValueError) as exc:
                errors.append(f"{path}:{lineno}: {exc}")
    elif suffix in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(raw), delimiter="\t" if suffix == ".tsv" else ",")
        missing = {"text", "label"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))} (need text,label)")
        for rec in reader:
            try:
                rows.append((_text(rec.get("text")), _label(rec.get("label"))))
            except ValueError as exc:
                errors.append(f"{path}:{reader.line_num}: {exc}")
    else:
        raise ValueError(f"{path}: unsupported file type (use .jsonl or .csv with text,label)")
    if errors:
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        raise ValueError("; ".join(errors[:10]) + more)
    if not rows:
        raise ValueError(f"{path}: no labelled rows")
    if len({y for _, y in rows}) < 2:
        raise ValueError(f"{path}: needs both classes (label 1 = injection, 0 = benign)")
    return rows


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("missing or empty 'text'")
    return value


# --- windows and features -------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.?!:;])\s+|\n+|\\n")


def windows(text: str, words: int = 8, stride: int = 4) -> list[str]:
    """The parts of ``text`` scored on their own: its sentences (when it has several) and ``words``-word windows
    every ``stride`` words (when it is longer than ``words + 2`` words). Excludes the text itself."""
    out: list[str] = []
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s and len(s.strip()) >= 3]
    if len(sentences) > 1:
        out += sentences
    tokens = text.split()
    if len(tokens) > words + 2:
        out += [" ".join(tokens[i : i + words]) for i in range(0, len(tokens) - words + 1, stride)]
    stripped = text.strip()
    return [w for w in dict.fromkeys(out) if w != stripped]


def _normalise(text: str) -> str:
    from guards.injection import normalise

    return normalise(text)


def _expit(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))


@dataclass
class GuardModel:
    """A fitted learned stage: vectorisers, logistic-regression weights, threshold and what it was trained on.
    Scoring needs numpy only (the vectorisers are scikit-learn's fitted ones exported to arrays)."""

    config: GuardConfig
    char: NgramTfidf
    word: NgramTfidf
    coef: np.ndarray
    intercept: float
    threshold: float
    meta: dict[str, Any] = field(default_factory=dict)
    document_threshold: float = 0.99
    """Model probability at or above which one window of a document flags (see :func:`fit`)."""

    def _features(self, texts: Sequence[str], vectors: np.ndarray | None) -> Rows:
        norm = [_normalise(t) for t in texts]
        parts = [self.char.transform(norm), self.word.transform(norm)]
        if self.config.features.embedding_weight > 0:
            if vectors is None:
                raise ValueError("this guard model needs sentence embeddings")
            parts.append(Rows.from_dense(np.asarray(vectors, dtype=np.float64) * self.config.features.embedding_weight))
        return Rows.hstack(parts)

    def _raw(self, texts: Sequence[str], vectors: np.ndarray | None) -> np.ndarray:
        z = self._features(texts, vectors).dot(self.coef) + self.intercept
        return _expit(z)

    def probabilities(self, texts: Sequence[str], embedder: Embedder | None) -> np.ndarray:
        """Probability that each text is an injection: max(p(text), window weight x max p(window))."""
        return self.scores(texts, embedder)[0]

    def scores(
        self, texts: Sequence[str], embedder: Embedder | None, *, sub_windows: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(combined, whole_text)`` probabilities for ``texts`` (one embedding call for texts and windows);
        without ``sub_windows`` both are the whole texts' probabilities."""
        texts = list(texts)
        if not texts:
            return np.zeros(0), np.zeros(0)
        w = self.config.windows
        parts = [windows(t, w.words, w.stride) if w.weight > 0 and sub_windows else [] for t in texts]
        flat = texts + [p for ws in parts for p in ws]
        vectors = _embed(embedder, flat) if self.config.features.embedding_weight > 0 else None
        p = self._raw(flat, vectors)
        whole = p[: len(texts)]
        combined = whole.copy()
        at = len(texts)
        for i, ws in enumerate(parts):
            if ws:
                combined[i] = max(combined[i], w.weight * float(p[at : at + len(ws)].max()))
                at += len(ws)
        return combined, whole

    # --- persistence
    def save(self, directory: Path) -> Path:
        """Write ``manifest.json`` and ``weights.npz`` (vocabularies, idf, coefficients) atomically."""
        from storage.files import write_dir_atomically

        def fill(tmp: Path) -> None:
            manifest = {"format_version": FORMAT_VERSION, "threshold": self.threshold,
                        "document_threshold": self.document_threshold,
                        "config": self.config.model_dump(mode="json"), "meta": self.meta}
            # Any, not ndarray: savez's own keyword allow_pickle (a bool) is among the names ** could fill.
            arrays: dict[str, Any] = {**self.char.to_arrays("char"), **self.word.to_arrays("word"), "coef": self.coef,
                                      "intercept": np.asarray(self.intercept, dtype=np.float64)}
            np.savez(tmp / WEIGHTS_FILE, **arrays)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=float) + "\n", encoding="utf-8")

        return write_dir_atomically(directory, fill)

    @classmethod
    def load(cls, directory: Path) -> GuardModel:
        """Load a model written by :meth:`save`: weights.npz (nothing unpickled), or an older model.joblib (scikit-learn
        vectorisers, exported to arrays here; only load directories you wrote: joblib unpickles)."""
        from storage.files import read_manifest

        directory = Path(directory)
        manifest = read_manifest(directory, FORMAT_VERSION, "guard model")
        if (directory / WEIGHTS_FILE).is_file():
            with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as data:
                w = {k: data[k] for k in data.files}
            parts: dict[str, Any] = {"char": NgramTfidf.from_arrays(w, "char"),
                                     "word": NgramTfidf.from_arrays(w, "word"),
                                     "coef": w["coef"], "intercept": w["intercept"]}
        else:
            import joblib

            parts = joblib.load(directory / "model.joblib")
            for name in ("char", "word"):
                parts[name] = NgramTfidf.from_sklearn(parts[name])
        return cls(config=GuardConfig.model_validate(manifest["config"]), char=parts["char"], word=parts["word"],
                   coef=np.asarray(parts["coef"]), intercept=float(parts["intercept"]),
                   threshold=float(manifest["threshold"]), meta=dict(manifest.get("meta") or {}),
                   document_threshold=float(manifest.get("document_threshold", 0.99)))


def _embed(embedder: Embedder | None, texts: Sequence[str]) -> np.ndarray:
    if embedder is None:
        raise ValueError("this guard model needs an embedder (memory.embeddings.get_embedder())")
    return np.asarray(embedder.embed(list(texts)), dtype=np.float32)


# --- fitting --------------------------------------------------------------------------------------------


_LAST: list[CachedEmbedder] = []


def _vectors(embedder: Embedder | None, texts: Sequence[str], enabled: bool) -> CachedEmbedder | None:
    """The embedder of a fit: every text it needs embedded once, in one batch, and kept (memory.embedder). The
    last one is kept for the next fit with the same embedder in this process (e.g. the settings compared by
    ``evals.injection --select``). None when the model uses no embeddings."""
    if not enabled:
        return None
    if embedder is None:
        raise ValueError("this guard model needs an embedder (memory.embeddings.get_embedder())")
    cached = _LAST[0] if _LAST and _LAST[0].inner is embedder else CachedEmbedder(embedder)
    _LAST[:] = [cached]
    unique = list(dict.fromkeys(texts))
    if unique:
        cached.embed(unique)
    return cached


def _vectors_of(vectors: CachedEmbedder | None, texts: Sequence[str]) -> np.ndarray | None:
    return vectors.embed(list(texts)) if vectors is not None else None


def _fit_once(config: GuardConfig, rows: Sequence[Row], vectors: CachedEmbedder | None) -> GuardModel:
    """Fit vectorisers and classifier on ``rows`` (plus the windows of their benign texts, as benign)."""
    from sklearn.linear_model import LogisticRegression

    wc, f = config.windows, config.features
    texts = [r.text for r in rows]
    labels = [r.label for r in rows]
    weights = [1.0] * len(rows)
    if wc.fragment_weight > 0 and wc.weight > 0:
        for r in rows:
            if r.label == 0:
                parts = windows(r.text, wc.words, wc.stride)
                texts += parts
                labels += [0] * len(parts)
                weights += [wc.fragment_weight] * len(parts)
    y = np.asarray(labels)
    w = np.asarray(weights, dtype=np.float64)
    pos, neg = w[y == 1].sum(), w[y == 0].sum()
    if pos == 0 or neg == 0:
        raise ValueError("training data needs both injections and benign texts")
    w[y == 1] *= neg / pos  # the classes weigh the same in total
    norm = [_normalise(t) for t in texts]
    min_df = f.min_df if len(texts) >= 20 * f.min_df else 1
    char = ngram_tfidf("char_wb", f.char_ngrams, min_df=min_df)
    word = ngram_tfidf("word", f.word_ngrams)
    char.fit(norm)
    word.fit(norm)
    model = GuardModel(config=config, char=NgramTfidf.from_sklearn(char), word=NgramTfidf.from_sklearn(word),
                       coef=np.zeros(0), intercept=0.0, threshold=config.threshold.fallback)
    x = _scipy_rows(model._features(texts, _vectors_of(vectors, texts)))
    clf = LogisticRegression(C=config.classifier.C, solver="lbfgs", max_iter=5000)
    clf.fit(x, y, sample_weight=w)
    model.coef, model.intercept = clf.coef_.ravel().astype(np.float64), float(clf.intercept_[0])
    return model


def _scipy_rows(rows: Rows) -> Any:
    """The rows as a scipy CSR matrix (for fitting)."""
    import scipy.sparse as sp

    return sp.csr_matrix((rows.data, rows.indices, rows.indptr), shape=(len(rows), rows.n_features))


def _near_duplicate_groups(texts: Sequence[str], vectors: np.ndarray | None) -> np.ndarray:
    """Connected components of "near-duplicate" pairs (char 3-5-gram cosine > 0.5 or embedding cosine > 0.8),
    so that a prompt, its paraphrases and its translations land in the same fold."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    n = len(texts)
    x = ngram_tfidf("char_wb", (3, 5)).fit_transform([_normalise(t) for t in texts])
    rows, cols = [], []
    for lo in range(0, n, 1024):
        block = (x[lo : lo + 1024] @ x.T).toarray() > 0.5
        if vectors is not None:
            block |= (vectors[lo : lo + 1024] @ vectors.T) > 0.8
        r, c = np.nonzero(block)
        rows.append(r + lo)
        cols.append(c)
    graph = sp.csr_matrix((np.ones(sum(len(r) for r in rows)), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _fpr(scores: np.ndarray, labels: np.ndarray, t: float) -> float:
    neg = labels == 0
    return float(((scores >= t) & neg).sum() / max(1, neg.sum()))


def choose_threshold(
    scores: np.ndarray, labels: np.ndarray, support: np.ndarray, max_fpr: float, max_support_fpr: float
) -> float:
    """The lowest threshold at which the held-out benign false-positive rate is at most ``max_fpr`` and the
    held-out support false-positive rate at most ``max_support_fpr`` (a text flags at ``p >= threshold``)."""
    candidates = np.unique(np.concatenate([scores, support, [1.0]]))
    for t in candidates:
        support_fpr = float((support >= t).mean()) if len(support) else 0.0
        if _fpr(scores, labels, t) <= max_fpr and support_fpr <= max_support_fpr:
            return float(min(0.99, max(0.05, t)))
    return 0.99


def choose_document_threshold(scores: np.ndarray, floor: float, max_fpr: float) -> float:
    """The lowest threshold, not below ``floor``, at which at most ``max_fpr`` of the held-out document windows
    flag (0.999 when none is low enough, or when there are no documents)."""
    if not len(scores):
        return max(floor, 0.999)
    for t in np.unique(np.concatenate([scores[scores >= floor], [floor]])):
        if float((scores >= t).mean()) <= max_fpr:
            return float(max(floor, t))
    return 0.999


def metrics(labels: Sequence[int], flagged: Sequence[bool]) -> dict[str, Any]:
    """Confusion counts with precision, recall, F1 and false-positive rate (1 = injection)."""
    y, p = np.asarray(labels, dtype=int), np.asarray(flagged, dtype=bool)
    tp, fp = int((p & (y == 1)).sum()), int((p & (y == 0)).sum())
    fn, tn = int((~p & (y == 1)).sum()), int((~p & (y == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {"n": len(y), "tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": round(precision, 4),
            "recall": round(recall, 4), "f1": round(2 * precision * recall / (precision + recall), 4)
            if precision + recall else 0.0, "fpr": round(fp / (fp + tn), 4) if fp + tn else 0.0}


def cross_validate(rows: Sequence[Row], embedder: Embedder | None, config: GuardConfig) -> dict[str, Any]:
    """Out-of-fold probabilities for the validation pool and the support utterances (see :func:`fit`)."""
    from sklearn.model_selection import StratifiedGroupKFold

    k = config.threshold.folds
    pool_source: Source = "data" if any(r.source == "data" for r in rows) else "project"
    pool = [i for i, r in enumerate(rows) if r.source == pool_source]
    support = [i for i, r in enumerate(rows) if r.source == "support"]
    documents = [i for i, r in enumerate(rows) if r.source == "document"]
    fixed = [i for i, r in enumerate(rows) if r.source not in (pool_source, "support", "document")]
    labels = np.asarray([rows[i].label for i in pool])
    if min(int((labels == 1).sum()), int((labels == 0).sum())) < k:
        raise ValueError(f"too few rows to cross-validate ({len(pool)} {pool_source} rows, {k} folds)")
    wc = config.windows
    texts = [r.text for r in rows]
    every = texts + [p for r in rows for p in windows(r.text, wc.words, wc.stride)] if wc.weight > 0 else texts
    vectors = _vectors(embedder, every, config.features.embedding_weight > 0)
    groups = _near_duplicate_groups([rows[i].text for i in pool], _vectors_of(vectors, [rows[i].text for i in pool]))
    oof, oof_whole = np.zeros(len(pool)), np.zeros(len(pool))
    oof_support = np.zeros(len(support))
    doc_groups = sorted({rows[i].group for i in documents})
    doc_fold = np.asarray([doc_groups.index(rows[i].group) % k for i in documents], dtype=int)
    oof_documents = np.zeros(len(documents))
    grouped = all(len(set(groups[labels == c])) >= k for c in (0, 1))
    if not grouped:  # too few distinct groups in a class to keep near-duplicates together: plain folds
        groups = np.arange(len(pool))
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=0)
    support_fold = np.arange(len(support)) % k  # the intent file is grouped by intent: interleave
    shim = vectors  # the CV folds score texts embedded once up front
    for f, (train, held) in enumerate(splitter.split(np.zeros(len(pool)), labels, groups)):
        s_train = [support[j] for j in np.nonzero(support_fold != f)[0]]
        s_held = np.nonzero(support_fold == f)[0]
        d_train = [documents[j] for j in np.nonzero(doc_fold != f)[0]]
        d_held = np.nonzero(doc_fold == f)[0]
        fold_rows = [rows[pool[j]] for j in train] + [rows[i] for i in fixed + s_train + d_train]
        model = _fit_once(config, fold_rows, vectors)
        combined, whole = model.scores([rows[pool[j]].text for j in held], shim)
        oof[held], oof_whole[held] = combined, whole
        if len(s_held):
            oof_support[s_held] = model.probabilities([rows[support[j]].text for j in s_held], shim)
        if len(d_held):
            oof_documents[d_held] = model.scores([rows[documents[j]].text for j in d_held], shim,
                                                 sub_windows=False)[1]
    return {"pool": pool_source, "labels": labels, "scores": oof, "whole_text_scores": oof_whole,
            "support_scores": oof_support, "document_scores": oof_documents, "grouped": grouped,
            "groups": len(set(groups.tolist())), "folds": k,
            "vectors": vectors}


def fit(
    rows: Sequence[Row], embedder: Embedder | None, config: GuardConfig | None = None, *,
    select_threshold: bool = True, meta: dict[str, Any] | None = None,
) -> GuardModel:
    """Choose the threshold on held-out folds (``select_threshold``), then fit on every row.

    ``meta`` is stored with the model; the validation figures are added under ``validation``.
    """
    config = config or load_config()
    rows = list(rows)
    info: dict[str, Any] = dict(meta or {})
    info["training"] = {s: {"injection": sum(1 for r in rows if r.source == s and r.label),
                            "benign": sum(1 for r in rows if r.source == s and not r.label)}
                        for s in ("data", "project", "support") if any(r.source == s for r in rows)}
    threshold = config.threshold.fallback
    document_threshold = 0.99
    vectors = None
    if select_threshold:
        cv = cross_validate(rows, embedder, config)
        vectors = cv["vectors"]
        t = config.threshold
        threshold = choose_threshold(cv["scores"], cv["labels"], cv["support_scores"], t.max_validation_fpr,
                                     t.max_support_fpr)
        from sklearn.metrics import roc_auc_score

        docs = cv["document_scores"]
        document_threshold = choose_document_threshold(docs, threshold, config.documents.max_fpr)
        info["validation"] = {
            "pool": cv["pool"], "folds": cv["folds"], "grouped_by_near_duplicates": cv["grouped"],
            "groups": cv["groups"],
            "threshold": round(threshold, 4), **metrics(cv["labels"], cv["scores"] >= threshold),
            "auc": round(float(roc_auc_score(cv["labels"], cv["scores"])), 4),
            "support_n": len(cv["support_scores"]),
            "support_fpr": round(float((cv["support_scores"] >= threshold).mean()), 4)
            if len(cv["support_scores"]) else 0.0,
            "document_windows_n": len(docs), "document_threshold": round(document_threshold, 4),
            "document_fpr": round(float((docs >= document_threshold).mean()), 4) if len(docs) else 0.0,
        }
    if vectors is None:
        wc = config.windows
        every = [r.text for r in rows] + [p for r in rows if not r.label for p in windows(r.text, wc.words,
                                                                                             wc.stride)]
        vectors = _vectors(embedder, every, config.features.embedding_weight > 0)
    model = _fit_once(config, rows, vectors)
    model.threshold = threshold
    model.document_threshold = max(threshold, document_threshold)
    model.meta = info
    if embedder is not None:
        info["embedder"] = {"name": "all-MiniLM-L6-v2", "weights_sha256": getattr(embedder, "weights_hash", None)}
    return model


def fingerprint(*parts: str | bytes) -> str:
    """A short sha256 over ``parts`` (to name a cached built-in model by what it was trained from)."""
    h = hashlib.sha256()
    for p in parts:
        b = p.encode("utf-8") if isinstance(p, str) else p
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()[:16]
