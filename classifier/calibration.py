"""Probability calibration (temperature scaling) and calibration metrics. Fitting uses SciPy; applying a
temperature needs numpy only (serving imports no SciPy)."""

from __future__ import annotations

import numpy as np


def apply_temperature(log_probs: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax of `log_probs / temperature` (rows sum to 1; scipy.special.softmax's operations)."""
    z = np.asarray(log_probs, dtype=np.float64) / temperature
    e = np.exp(z - np.max(z, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)


def fit_temperature(log_probs: np.ndarray, y: np.ndarray) -> float:
    """The temperature in [0.05, 20] minimising validation negative log-likelihood."""
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    lp = np.asarray(log_probs, dtype=np.float64)
    y = np.asarray(y)

    def nll(log_t: float) -> float:
        return float(-log_softmax(lp / np.exp(log_t), axis=1)[np.arange(len(y)), y].mean())

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))


def reliability_bins(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> list[dict[str, float]]:
    """Equal-width confidence bins: count, mean confidence and accuracy of each non-empty bin."""
    conf = np.asarray(confidence, dtype=np.float64)
    corr = np.asarray(correct, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    out = []
    for b in range(n_bins):
        m = idx == b
        if m.any():
            out.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": int(m.sum()),
                        "confidence": float(conf[m].mean()), "accuracy": float(corr[m].mean())})
    return out


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """ECE with `n_bins` equal-width bins: sum over bins of |accuracy - confidence| weighted by bin size."""
    n = len(confidence)
    if n == 0:
        return 0.0
    return float(sum(b["count"] / n * abs(b["accuracy"] - b["confidence"])
                     for b in reliability_bins(confidence, correct, n_bins)))
