"""Confidence -> autonomy tier, with thresholds passed in (config/policy.yaml `confidence:`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Tier = Literal["auto", "review", "escalate"]


def _get(thresholds: Mapping[str, float] | Any, key: str) -> float:
    value = thresholds[key] if isinstance(thresholds, Mapping) else getattr(thresholds, key)
    return float(value)


def decide(confidence: float, thresholds: Mapping[str, float] | Any) -> Tier:
    """`auto` at or above `thresholds.auto`, `review` at or above `thresholds.review`, else `escalate`.

    `thresholds` is a mapping or an object with `auto` and `review` (e.g. `Policy.confidence`).
    """
    auto, review = _get(thresholds, "auto"), _get(thresholds, "review")
    if not 0.0 <= review <= auto <= 1.0:
        raise ValueError(f"thresholds must satisfy 0 <= review <= auto <= 1, got review={review}, auto={auto}")
    if confidence != confidence:  # NaN never earns autonomy
        return "escalate"
    if confidence >= auto:
        return "auto"
    if confidence >= review:
        return "review"
    return "escalate"
