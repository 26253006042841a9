"""Out-of-scope detection that does not rely on the maximum probability alone.

Per query it combines the calibrated classifier's max in-scope probability and normalised entropy, the
cosine similarity to the nearest in-scope training examples (top-1 and mean of top-k), and the probability of
a dedicated out-of-scope class when one was trained. With enough out-of-scope validation examples a small
logistic regression weighs these signals ("supervised"); otherwise each signal is turned into its
percentile among in-scope validation queries and the percentiles are averaged ("unsupervised").
The threshold is chosen on validation for a target in-scope accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

FEATURES = ("max_inscope_prob", "entropy", "knn_top1", "knn_mean", "oos_class_prob")
# +1: larger means more out-of-scope; -1: smaller means more out-of-scope.
_ORIENTATION = np.array([-1.0, 1.0, -1.0, -1.0, 1.0])


def oos_features(probs: np.ndarray, knn_sims: np.ndarray, oos_index: int | None) -> np.ndarray:
    """(n, 5) signals from calibrated probabilities (n, C) and sorted in-scope kNN similarities (n, k)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)
    n_classes = p.shape[1]
    inscope = np.delete(p, oos_index, axis=1) if oos_index is not None else p
    entropy = -(p * np.log(p)).sum(axis=1) / np.log(max(n_classes, 2))
    oos_prob = p[:, oos_index] if oos_index is not None else np.zeros(len(p))
    return np.column_stack([inscope.max(axis=1), entropy, knn_sims[:, 0], knn_sims.mean(axis=1), oos_prob])


def _inscope_accuracy_curve(scores: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Candidate thresholds (ascending) and the in-scope accuracy when flagging scores >= threshold."""
    order = np.argsort(scores)
    s, c = scores[order], correct[order].astype(np.float64)
    kept_correct = np.concatenate([[0.0], np.cumsum(c)])  # correct among the i lowest scores
    thresholds = np.concatenate([s, [np.inf]])
    # threshold s[i] keeps the i queries strictly below it (ties share the first index)
    first = np.searchsorted(s, thresholds, side="left")
    return thresholds, kept_correct[first] / max(len(s), 1)


@dataclass
class OOSDetector:
    """Scores how out-of-scope a query is (higher = more out-of-scope) and flags scores >= threshold."""

    mode: Literal["supervised", "unsupervised"]
    threshold: float
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray | None = None
    intercept: float = 0.0
    reference: np.ndarray | None = None  # unsupervised: sorted in-scope validation signals, one column each

    def score(self, features: np.ndarray) -> np.ndarray:
        """OOS score in [0, 1] for each row of `oos_features(...)`."""
        f = np.asarray(features, dtype=np.float64)
        if self.mode == "supervised":
            assert self.coef is not None
            z = ((f - self.mean) / self.scale) @ self.coef + self.intercept
            return 1.0 / (1.0 + np.exp(-z))
        assert self.reference is not None
        cols = []
        for j in range(4):  # the dedicated-class signal is unused without out-of-scope examples
            ref = self.reference[:, j] * _ORIENTATION[j]
            cols.append(np.searchsorted(np.sort(ref), f[:, j] * _ORIENTATION[j], side="right") / len(ref))
        return np.mean(cols, axis=0)

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        is_oos: np.ndarray,
        correct: np.ndarray,
        *,
        target_inscope_accuracy: float,
        max_inscope_drop: float,
        min_oos_examples: int,
        seed: int = 0,
    ) -> tuple[OOSDetector, dict[str, float]]:
        """Fit on validation signals; pick the lowest threshold keeping in-scope accuracy at the target.

        `correct` marks in-scope validation rows whose arg-max intent is right. The accuracy kept is
        `min(target_inscope_accuracy, accuracy_without_rejection - max_inscope_drop)`.
        """
        f = np.asarray(features, dtype=np.float64)
        is_oos = np.asarray(is_oos, dtype=bool)
        mean, scale = f.mean(axis=0), f.std(axis=0) + 1e-9
        if is_oos.sum() >= min_oos_examples and (~is_oos).sum() >= min_oos_examples:
            from sklearn.linear_model import LogisticRegression

            lr = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000, random_state=seed)
            lr.fit((f - mean) / scale, is_oos.astype(int))
            det = cls("supervised", np.inf, mean, scale, coef=lr.coef_[0].copy(), intercept=float(lr.intercept_[0]))
        else:
            det = cls("unsupervised", np.inf, mean, scale, reference=np.sort(f[~is_oos], axis=0))
        scores = det.score(f)
        inscope = ~is_oos
        thresholds, acc = _inscope_accuracy_curve(scores[inscope], np.asarray(correct)[inscope])
        base = float(acc[-1])
        wanted = min(target_inscope_accuracy, base - max_inscope_drop)
        ok = np.flatnonzero(acc >= wanted - 1e-12)
        det.threshold = float(thresholds[ok[0]]) if len(ok) else float("inf")
        stats = {"val_inscope_accuracy_no_rejection": base, "val_inscope_accuracy_target": float(wanted),
                 "val_inscope_accuracy": float(np.mean(correct[inscope] & (scores[inscope] < det.threshold)))}
        if is_oos.any():
            stats["val_oos_recall"] = float(np.mean(scores[is_oos] >= det.threshold))
        return det, stats

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state (the unsupervised reference is saved separately as an array)."""
        threshold = None if not np.isfinite(self.threshold) else self.threshold
        return {"mode": self.mode, "threshold": threshold, "mean": self.mean.tolist(),
                "scale": self.scale.tolist(), "coef": None if self.coef is None else self.coef.tolist(),
                "intercept": self.intercept}

    @classmethod
    def from_dict(cls, data: dict[str, Any], reference: np.ndarray | None) -> OOSDetector:
        """Inverse of `to_dict`."""
        coef = data.get("coef")
        threshold = float("inf") if data.get("threshold") is None else float(data["threshold"])
        return cls(data["mode"], threshold, np.asarray(data["mean"]), np.asarray(data["scale"]),
                   coef=None if coef is None else np.asarray(coef), intercept=float(data.get("intercept", 0.0)),
                   reference=reference)
