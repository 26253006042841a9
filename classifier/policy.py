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


def _knowledge_only(flow: Any) -> bool:
    """A workflow that answers from the knowledge base alone: no action, no hand-over, no order to pin down."""
    return (
        flow is not None
        and tuple(flow.specialists) == ("retrieve_knowledge",)
        and flow.action is None
        and not flow.escalate
        and not flow.needs_order
    )


def interchangeable(
    intent: str, candidates: list[tuple[str, float]], workflows: Mapping[str, Any], *, min_p: float = 0.1
) -> list[str]:
    """`intent` and the candidate intents that would build the same answer for this ticket.

    Two knowledge-only workflows with the same read tools differ only in which articles they prefer, and retrieval
    searches the union of the group's articles. The answer is then right whichever of them the ticket is, so the
    tier may rest on their summed probability ("how much is express delivery?" is delivery_options or
    delivery_period; either way the delivery articles answer it). Candidates below `min_p` are left out: they
    would widen the search without changing the confidence.
    """
    flow = workflows.get(intent)
    if flow is None or not _knowledge_only(flow):
        return [intent]
    group = [intent]
    for other, p in candidates:
        peer = workflows.get(other)
        if other == intent or float(p) < min_p:
            continue
        if peer is not None and _knowledge_only(peer) and tuple(peer.read_tools) == tuple(flow.read_tools):
            group.append(other)
    return group
