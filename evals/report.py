"""Plots for eval reports (matplotlib, Agg backend): reliability, coverage-accuracy, top confusions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from classifier.calibration import reliability_bins  # noqa: E402


def coverage_accuracy_curve(confidence: np.ndarray, correct: np.ndarray, points: int = 101
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For thresholds 0..1: fraction of queries with confidence >= threshold, and their accuracy."""
    conf, corr = np.asarray(confidence), np.asarray(correct, dtype=float)
    thresholds = np.linspace(0.0, 1.0, points)
    cov = np.array([(conf >= t).mean() for t in thresholds])
    acc = np.array([corr[conf >= t].mean() if (conf >= t).any() else np.nan for t in thresholds])
    return thresholds, cov, acc


def top_confusions(y_true: Sequence[str], y_pred: Sequence[str], n: int = 12) -> list[tuple[str, str, int]]:
    """The n most frequent (true, predicted) error pairs."""
    pairs = Counter((t, p) for t, p in zip(y_true, y_pred, strict=True) if t != p)
    return [(t, p, c) for (t, p), c in pairs.most_common(n)]


def plot_intent_report(path: Path, title: str, confidence: np.ndarray, correct: np.ndarray,
                       confusions: list[tuple[str, str, int]], auto_threshold: float, n_bins: int = 15) -> Path:
    """Write one PNG with three panels: reliability diagram, coverage-accuracy curve, top confusions."""
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.5))
    bins = reliability_bins(confidence, correct, n_bins)
    ax = axes[0]
    centers = [(b["lo"] + b["hi"]) / 2 for b in bins]
    ax.bar(centers, [b["accuracy"] for b in bins], width=1.0 / n_bins, edgecolor="black", alpha=0.7,
           label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "ro-", ms=3, label="bin mean conf.")
    ax.set(xlabel="confidence", ylabel="accuracy", title="Reliability diagram", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[1]
    thr, cov, acc = coverage_accuracy_curve(confidence, correct)
    ax.plot(cov, acc, "b-")
    mask = np.asarray(confidence) >= auto_threshold
    if mask.any():
        ax.plot([mask.mean()], [np.asarray(correct)[mask].mean()], "ro", label=f"auto >= {auto_threshold:.2f}")
        ax.legend(loc="lower left", fontsize=8)
    ax.set(xlabel="coverage (confidence >= t)", ylabel="accuracy", title="Coverage vs accuracy", xlim=(0, 1.02))
    ax = axes[2]
    if confusions:
        names = [f"{t} -> {p}" for t, p, _ in confusions][::-1]
        ax.barh(names, [c for _, _, c in confusions][::-1], color="tab:orange")
        ax.tick_params(axis="y", labelsize=7)
    ax.set(title="Top confusions (true -> predicted)", xlabel="count")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
