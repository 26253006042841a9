"""Token prices and the usage record of one reply."""

from __future__ import annotations

from langchain_core.messages import AIMessage

from observability.config import load_observability

# USD per million tokens (input, output), from config/observability.yaml `prices`; unknown models are priced at 0.
PRICES: dict[str, tuple[float, float]] = dict(load_observability().prices)


def usage_of(message: AIMessage, model: str) -> dict[str, float]:
    """Token counts and cost of one reply (0 when the provider reports nothing)."""
    meta = getattr(message, "usage_metadata", None) or {}
    prompt = int(meta.get("input_tokens", 0))
    completion = int(meta.get("output_tokens", 0))
    pin, pout = PRICES.get(model, (0.0, 0.0))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "llm_calls": 1,
        "cost_usd": round((prompt * pin + completion * pout) / 1e6, 6),
    }
