"""Token prices and the usage record of one reply."""

from __future__ import annotations

from langchain_core.messages import AIMessage

# USD per million tokens (input, output); unknown models are priced at 0 and say so in usage.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
}


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
