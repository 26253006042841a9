"""Trainable intent classifier: MiniLM sentence embeddings + TF-IDF, logistic regression, calibrated, with OOS.

Fitting uses scikit-learn; serving needs numpy and the embedder only (no scikit-learn, SciPy or torch): `save`
exports the fitted TF-IDF vocabularies, idf weights and logistic-regression coefficients to `weights.npz`
(classifier.tfidf), and every prediction, the validation choices of `fit` included, is computed from those
arrays. Fit on train; every choice (blend weights or feature combination, temperature, out-of-scope threshold)
is made on validation; then, by default, refit on train + validation while keeping those choices.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import ThreadpoolController

from classifier.calibration import apply_temperature, expected_calibration_error, fit_temperature
from classifier.config import ClassifierConfig
from classifier.features import build_tfidf, knn_probabilities, top_k_similarities
from classifier.oos import OOSDetector, oos_features
from classifier.tfidf import NgramTfidf, Rows
from memory.embedder import Embedder

if TYPE_CHECKING:
    from sklearn.linear_model import LogisticRegression

FORMAT_VERSION = 1
COMPONENTS = ("embedding", "tfidf", "knn")
WEIGHTS_FILE = "weights.npz"
"""The fitted arrays (no pickle). Models saved before it existed have model.joblib instead, still read."""
ENCODER_FILE = "encoder.json"
"""`{"model_dir": "<folder>"}`: the fine-tuned encoder a model was trained with (absent: the caller's embedder)."""


@dataclass(frozen=True)
class Prediction:
    """One classified text. `confidence` is calibrated; `candidates` are the top 5 (intent, probability)."""

    intent: str
    confidence: float
    candidates: list[tuple[str, float]]
    oos_score: float
    is_oos: bool


@dataclass
class _Core:
    """The fitted models that turn (embeddings, texts) into a blended log-probability matrix, as arrays:
    `tfidf` the lexical blocks in column order (word, char), `models` each logistic regression's
    (coef (C, F), intercept (C,), in the dtypes scikit-learn fitted)."""

    combine: str
    tfidf: list[NgramTfidf]
    models: dict[str, tuple[np.ndarray, np.ndarray]]
    weights: dict[str, float] = field(default_factory=dict)


def _lr(c: float, config: ClassifierConfig) -> LogisticRegression:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=config.max_iter, tol=config.tol, random_state=config.seed)


def _fit_core(texts: list[str], emb: np.ndarray, y: np.ndarray, combine: str, config: ClassifierConfig) -> _Core:
    import scipy.sparse as sp

    vec = build_tfidf(config)
    tfidf = vec.fit_transform(texts)
    if combine == "concat":
        x = sp.hstack([sp.csr_matrix(emb * config.concat_embedding_scale), tfidf]).tocsr()
        models = {"concat": _lr(config.c_concat, config).fit(x, y)}
    else:
        models = {"embedding": _lr(config.c_embedding, config).fit(emb, y),
                  "tfidf": _lr(config.c_tfidf, config).fit(tfidf, y)}
    return _export_core(combine, vec, models, {})


def _export_core(combine: str, vectorizer: Any, models: dict[str, Any], weights: dict[str, float]) -> _Core:
    """A `_Core` of arrays from a fitted FeatureUnion and logistic regressions."""
    return _Core(combine, [NgramTfidf.from_sklearn(t) for _, t in vectorizer.transformer_list],
                 {k: (np.asarray(m.coef_), np.asarray(m.intercept_)) for k, m in models.items()},  # dtypes kept
                 dict(weights))


_CONTROLLER: ThreadpoolController | None = None


@contextlib.contextmanager
def _blas_single_thread(n_queries: int) -> Iterator[None]:
    """Run small batches on one BLAS thread: multi-threaded gemv on a busy machine (or beside onnxruntime's
    spinning threads) is 10x slower than one thread for a single query."""
    global _CONTROLLER
    if n_queries > 16:
        yield
        return
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    with _CONTROLLER.limit(limits=1, user_api="blas"):
        yield


def _tfidf(blocks: list[NgramTfidf], texts: list[str], dense: np.ndarray | None = None) -> Rows:
    """The lexical blocks side by side (FeatureUnion.transform), after `dense` columns when given."""
    parts = [b.transform(texts) for b in blocks]
    return Rows.hstack(parts if dense is None else [Rows.from_dense(dense), *parts])


def _softmax(z: np.ndarray) -> np.ndarray:
    """scipy.special.softmax(z, axis=1), the same operations."""
    e = np.exp(z - np.max(z, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)


def _lr_proba(model: tuple[np.ndarray, np.ndarray], x: np.ndarray | Rows) -> np.ndarray:
    """`predict_proba(x)` of a logistic regression from its (coef, intercept)."""
    coef, intercept = model
    z = (x.dot(coef.T) if isinstance(x, Rows) else np.asarray(x @ coef.T)) + intercept
    if z.shape[1] == 1:
        p1 = 1.0 / (1.0 + np.exp(-z[:, 0]))
        return np.column_stack([1 - p1, p1])
    return _softmax(z)


def _weight_grid(step: float) -> list[dict[str, float]]:
    n = round(1 / step)
    return [{"embedding": a / n, "tfidf": b / n, "knn": (n - a - b) / n}
            for a, b in itertools.product(range(n + 1), repeat=2) if a + b <= n]


def _nll(probs: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)).mean())


class IntentClassifier:
    """Calibrated intent classifier with an out-of-scope detector. Build it with `fit` or `load`."""

    def __init__(self, *, labels: list[str], config: ClassifierConfig, core: _Core, temperature: float,
                 bank: np.ndarray, bank_labels: np.ndarray, detector: OOSDetector, oos_label: str | None,
                 embedder: Embedder, metrics: dict[str, Any]) -> None:
        self.labels = labels
        self.config = config
        self.core = core
        self.temperature = temperature
        self.bank = bank.astype(np.float32)
        self.bank_labels = bank_labels.astype(np.int64)
        self.detector = detector
        self.oos_label = oos_label
        self.embedder = embedder
        self.metrics = metrics
        self._oos_index = labels.index(oos_label) if oos_label in labels else None

    # ------------------------------------------------------------------ scoring
    def _components(self, core: _Core, emb: np.ndarray, texts: list[str], bank: np.ndarray,
                    bank_labels: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Per-component probabilities and the sorted in-scope kNN similarities (for OOS)."""
        n_classes = len(self.labels)
        sims, idx = top_k_similarities(emb, bank, self.config.knn_k)
        comps = {"knn": knn_probabilities(sims, idx, bank_labels, n_classes, self.config.knn_temperature)}
        if core.combine == "concat":
            x = _tfidf(core.tfidf, texts, np.asarray(emb * self.config.concat_embedding_scale, dtype=np.float64))
            comps["concat"] = _lr_proba(core.models["concat"], x)
        else:
            comps["embedding"] = _lr_proba(core.models["embedding"], emb)
            comps["tfidf"] = _lr_proba(core.models["tfidf"], _tfidf(core.tfidf, texts))
        in_sims = sims
        if self._oos_index is not None and (bank_labels == self._oos_index).any():
            inscope = bank_labels != self._oos_index
            in_sims, _ = top_k_similarities(emb, bank[inscope] if inscope.any() else bank, self.config.knn_k)
        return comps, in_sims

    @staticmethod
    def _blend(core: _Core, comps: dict[str, np.ndarray], weights: dict[str, float] | None = None) -> np.ndarray:
        w = weights if weights is not None else core.weights
        p = sum(w.get(k, 0.0) * v for k, v in comps.items() if w.get(k, 0.0) > 0)
        return np.log(np.clip(p, 1e-12, None))

    def _score(self, emb: np.ndarray, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities (n, C) and OOS scores (n,) for already-embedded texts."""
        with _blas_single_thread(len(texts)):
            comps, in_sims = self._components(self.core, emb, texts, self.bank, self.bank_labels)
        probs = apply_temperature(self._blend(self.core, comps), self.temperature)
        return probs, self.detector.score(oos_features(probs, in_sims, self._oos_index))

    def predict_proba(self, texts: Sequence[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        """Calibrated class probabilities, columns in `self.labels` order."""
        texts = list(texts)
        emb = self.embedder.embed(texts) if embeddings is None else embeddings
        return self._score(np.asarray(emb, dtype=np.float32), texts)[0]

    def predict(self, texts: Sequence[str], embeddings: np.ndarray | None = None) -> list[Prediction]:
        """Classify texts. Out-of-scope (detector or dedicated class) returns `oos_label` when one is set.

        `embeddings` may be passed when the caller already embedded the texts with the same embedder.
        """
        texts = list(texts)
        if not texts:
            return []
        emb = self.embedder.embed(texts) if embeddings is None else embeddings
        probs, scores = self._score(np.asarray(emb, dtype=np.float32), texts)
        out = []
        for p, s in zip(probs, scores, strict=True):
            order = np.argsort(-p)[:5]
            top = int(order[0])
            flagged = bool(s >= self.detector.threshold) or (self._oos_index is not None and top == self._oos_index)
            if flagged and self.oos_label is not None:
                intent = self.oos_label
                if top == self._oos_index:
                    conf = float(p[top])
                elif self.detector.mode == "supervised":  # a probability fitted on labelled OOS examples
                    conf = max(float(s), float(p[self._oos_index]) if self._oos_index is not None else 0.0)
                else:  # no OOS examples to calibrate on: the chance that the top intent is wrong
                    conf = 1.0 - float(p[top])
            else:
                intent, conf = self.labels[top], float(p[top])
            out.append(Prediction(intent=intent, confidence=conf,
                                  candidates=[(self.labels[i], float(p[i])) for i in order],
                                  oos_score=float(s), is_oos=flagged))
        return out

    # ------------------------------------------------------------------ training
    @classmethod
    def fit(cls, texts: Sequence[str], labels: Sequence[str], *, embedder: Embedder,
            val_texts: Sequence[str] | None = None, val_labels: Sequence[str] | None = None,
            oos_label: str | None = "out_of_scope", config: ClassifierConfig | None = None) -> IntentClassifier:
        """Fit on (texts, labels); choose blend, temperature and OOS threshold on validation.

        Without validation data a stratified `config.holdout_fraction` of train is held out for those
        choices. With `config.refit_on_all` the models are then refit on train + validation.
        """
        config = config or ClassifierConfig()
        t0 = time.perf_counter()
        tr_x, tr_y = _check_pairs(texts, labels, "train")
        if val_texts is None or val_labels is None:
            tr_x, va_x, tr_y, va_y = _holdout(tr_x, tr_y, config.holdout_fraction, config.seed)
            val_source = f"holdout {config.holdout_fraction:.0%} of train"
        else:
            va_x, va_y = _check_pairs(val_texts, val_labels, "validation")
            val_source = "given"
        class_names = sorted(set(tr_y))
        if len(class_names) < 2:
            raise ValueError("need at least two intents to train a classifier")
        index = {c: i for i, c in enumerate(class_names)}
        keep = [i for i, lab in enumerate(va_y) if lab in index]
        va_x, va_y = [va_x[i] for i in keep], [va_y[i] for i in keep]
        y_tr = np.array([index[c] for c in tr_y])
        y_va = np.array([index[c] for c in va_y])
        e_tr = np.asarray(embedder.embed(tr_x), dtype=np.float32)
        e_va = np.asarray(embedder.embed(va_x), dtype=np.float32)

        shell = cls(labels=class_names, config=config, core=_Core("average", [], {}),
                    temperature=1.0, bank=e_tr, bank_labels=y_tr,
                    detector=OOSDetector("unsupervised", np.inf, np.zeros(5), np.ones(5)),
                    oos_label=oos_label, embedder=embedder, metrics={})
        modes = ["average", "concat"] if config.combine == "auto" else [config.combine]
        best: tuple[float, float, _Core, dict[str, np.ndarray], np.ndarray] | None = None
        choice_log: dict[str, float] = {}
        for mode in modes:
            core = _fit_core(tr_x, e_tr, y_tr, mode, config)
            comps, in_sims = shell._components(core, e_va, va_x, e_tr, y_tr)
            grid = _weight_grid(config.weight_step) if mode == "average" else [
                {"concat": a, "knn": 1 - a} for a in np.arange(1.0, -1e-9, -config.weight_step)]
            mode_best = 0.0
            # Blend weights serve the choice among in-scope intents; out-of-scope is the detector's job
            # (its threshold is chosen below), so they are chosen on in-scope validation rows.
            oos_i = index.get(oos_label) if oos_label is not None else None
            inscope = y_va != oos_i if oos_i is not None and (y_va != oos_i).any() else np.ones(len(y_va), bool)
            for w in grid:
                p = np.exp(cls._blend(core, comps, w))
                acc, nll = float((p.argmax(1) == y_va)[inscope].mean()), _nll(p, y_va)
                mode_best = max(mode_best, acc)
                if best is None or (acc, -nll) > (best[0], -best[1]):
                    core.weights = w
                    best = (acc, nll, core, comps, in_sims)
            choice_log[mode] = mode_best
        assert best is not None
        val_acc, _, core, comps, in_sims = best
        log_p = cls._blend(core, comps)
        temperature = fit_temperature(log_p, y_va)
        probs = apply_temperature(log_p, temperature)
        oos_index = index.get(oos_label) if oos_label is not None else None
        is_oos_val = y_va == oos_index if oos_index is not None else np.zeros(len(y_va), dtype=bool)
        detector, oos_stats = OOSDetector.fit(
            oos_features(probs, in_sims, oos_index), is_oos_val, probs.argmax(1) == y_va,
            target_inscope_accuracy=config.target_inscope_accuracy, max_inscope_drop=config.max_inscope_drop,
            min_oos_examples=config.min_oos_examples, seed=config.seed)
        conf = probs.max(1)
        metrics: dict[str, Any] = {
            "n_train": len(tr_x), "n_val": len(va_x), "n_classes": len(class_names), "validation": val_source,
            "combine": core.combine, "weights": {k: round(v, 3) for k, v in core.weights.items()},
            "val_accuracy": val_acc, "val_accuracy_rows": "in-scope" if oos_i is not None else "all",
            "val_accuracy_by_combine": choice_log,
            "temperature": temperature, "val_nll": _nll(probs, y_va),
            "val_ece": expected_calibration_error(conf, probs.argmax(1) == y_va),
            "oos_mode": detector.mode, "oos_threshold": detector.threshold, **oos_stats,
        }
        bank, bank_y = e_tr, y_tr
        if config.refit_on_all:
            all_x, bank = tr_x + va_x, np.vstack([e_tr, e_va])
            bank_y = np.concatenate([y_tr, y_va])
            weights = core.weights
            core = _fit_core(all_x, bank, bank_y, core.combine, config)
            core.weights = weights
            metrics["refit_on"] = len(all_x)
        metrics["fit_seconds"] = round(time.perf_counter() - t0, 1)
        return cls(labels=class_names, config=config, core=core, temperature=temperature, bank=bank,
                   bank_labels=bank_y, detector=detector, oos_label=oos_label, embedder=embedder, metrics=metrics)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: Path, *, encoder_dir: Path | None = None, source: dict[str, str] | None = None) -> Path:
        """Write manifest.json, weights.npz (TF-IDF vocabularies and idf, regression coefficients) and knn.npz
        atomically (temp dir, then rename).

        `encoder_dir` names the fine-tuned encoder the model was trained with (written as encoder.json in the same
        atomic step), so `load` embeds with it rather than with the caller's embedder. `source` (see
        `training_source`) records what it was trained on, so `app.py seed` can tell a stale demo model.
        """
        from storage.files import write_dir_atomically

        def fill(tmp: Path) -> None:
            if encoder_dir is not None:
                pointer = {"model_dir": str(Path(encoder_dir).resolve())}
                (tmp / ENCODER_FILE).write_text(json.dumps(pointer) + "\n", encoding="utf-8")
            manifest = {
                "format_version": FORMAT_VERSION, "labels": self.labels, "oos_label": self.oos_label,
                "config": self.config.to_dict(), "metrics": self.metrics, "temperature": self.temperature,
                "combine": self.core.combine, "weights": self.core.weights, "detector": self.detector.to_dict(),
            }
            if source is not None:
                manifest["source"] = dict(source)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=float), encoding="utf-8")
            weights: dict[str, Any] = {}
            for i, block in enumerate(self.core.tfidf):
                weights.update(block.to_arrays(f"tfidf{i}"))
            for name, (coef, intercept) in self.core.models.items():
                weights[f"model.{name}.coef"], weights[f"model.{name}.intercept"] = coef, intercept
            np.savez(tmp / WEIGHTS_FILE, **weights)
            # Any, not ndarray: savez's own keyword allow_pickle (a bool) is among the names ** could fill.
            arrays: dict[str, Any] = {"bank": self.bank, "bank_labels": self.bank_labels}
            if self.detector.reference is not None:
                arrays["oos_reference"] = self.detector.reference
            np.savez(tmp / "knn.npz", **arrays)

        return write_dir_atomically(directory, fill)

    @classmethod
    def load(cls, directory: Path, embedder: Embedder) -> IntentClassifier:
        """Load a model written by `save`: from weights.npz (numpy only, nothing unpickled), or, for a model saved
        before weights.npz existed, from model.joblib (scikit-learn; only load directories you wrote: it unpickles).

        The one loader of a trained model: when the directory holds encoder.json (a model trained on a fine-tuned
        encoder) the classifier embeds with that encoder, not with `embedder`.
        """
        from storage.files import read_manifest

        directory = Path(directory)
        manifest = read_manifest(directory, FORMAT_VERSION, "intent classifier")
        encoder = encoder_dir(directory)
        if encoder is not None:
            from memory.embeddings import MiniLMEmbedder

            embedder = MiniLMEmbedder(model_dir=encoder)
        if (directory / WEIGHTS_FILE).is_file():
            with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as data:
                w = {k: data[k] for k in data.files}
            n_blocks = len({k.split(".")[0] for k in w if k.startswith("tfidf")})
            names = sorted({k.split(".")[1] for k in w if k.startswith("model.")})
            core = _Core(manifest["combine"], [NgramTfidf.from_arrays(w, f"tfidf{i}") for i in range(n_blocks)],
                         {n: (w[f"model.{n}.coef"], w[f"model.{n}.intercept"]) for n in names},
                         dict(manifest["weights"]))
        else:
            import joblib

            parts = joblib.load(directory / "model.joblib")
            core = _export_core(manifest["combine"], parts["vectorizer"], parts["models"], manifest["weights"])
        with np.load(directory / "knn.npz") as data:
            arrays = {k: data[k] for k in data.files}
        detector = OOSDetector.from_dict(manifest["detector"], arrays.get("oos_reference"))
        return cls(labels=list(manifest["labels"]), config=ClassifierConfig.from_dict(manifest["config"]),
                   core=core, temperature=float(manifest["temperature"]), bank=arrays["bank"],
                   bank_labels=arrays["bank_labels"], detector=detector, oos_label=manifest.get("oos_label"),
                   embedder=embedder, metrics=dict(manifest.get("metrics", {})))


def encoder_dir(directory: Path) -> Path | None:
    """The fine-tuned encoder folder named by `directory`/encoder.json, None without that file.

    A relative `model_dir` is taken relative to `directory`. A malformed file or a folder without the encoder's
    weights is an error naming both, never a silent fall-back to another encoder.
    """
    path = Path(directory) / ENCODER_FILE
    if not path.exists():
        return None
    try:
        pointer = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(pointer, dict) or not isinstance(pointer.get("model_dir"), str) or not pointer["model_dir"]:
        raise ValueError(f'{path}: expected {{"model_dir": "<folder of the fine-tuned encoder>"}}')
    folder = Path(directory) / Path(pointer["model_dir"]).expanduser()
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"{path}: the fine-tuned encoder {folder} has no model.safetensors")
    return folder


def _check_pairs(texts: Sequence[str], labels: Sequence[str], what: str) -> tuple[list[str], list[str]]:
    texts, labels = list(texts), [str(x) for x in labels]
    if len(texts) != len(labels):
        raise ValueError(f"{what}: {len(texts)} texts but {len(labels)} labels")
    if not texts:
        raise ValueError(f"{what}: no examples")
    if not all(isinstance(t, str) and t.strip() for t in texts):
        raise ValueError(f"{what}: every text must be a non-empty string")
    return texts, labels


def _holdout(x: list[str], y: list[str], fraction: float, seed: int) -> tuple[list[str], ...]:
    """Stratified hold-out; classes with fewer than 2 examples stay entirely in train."""
    counts = Counter(y)
    solo = [i for i, lab in enumerate(y) if counts[lab] < 2]
    rest = [i for i, lab in enumerate(y) if counts[lab] >= 2]
    n_classes = len({y[i] for i in rest})
    n_val = max(n_classes, int(round(fraction * len(rest))))
    if not rest or n_val >= len(rest):
        raise ValueError("too few examples to hold out a validation split; give at least 2 per intent")
    from sklearn.model_selection import train_test_split

    tr, va = train_test_split(rest, test_size=n_val, stratify=[y[i] for i in rest], random_state=seed)
    tr = list(tr) + solo
    return [x[i] for i in tr], [x[i] for i in va], [y[i] for i in tr], [y[i] for i in va]
