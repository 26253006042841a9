"""Optional language model: langchain-openai behind retries, a circuit breaker and a fallback chain.

Without `OPENAI_API_KEY` or `SWITCHBOARD_LLM_BASE_URL` there is no model and every caller uses its
offline tier. With one, `LLM.generate()` returns None instead of raising when the chain is exhausted,
so callers fall back to the offline tier (primary -> secondary -> offline -> human).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage

from config.settings import LLMPolicy, Settings

log = logging.getLogger("switchboard.llm")

# USD per million tokens (input, output); unknown models are priced at 0 and say so in usage.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
}


@dataclass
class CircuitBreaker:
    """Opens after `threshold` consecutive failures; lets one trial call through after `cooldown_s`.

    In-process only: with several server instances this state belongs in Redis (see DESIGN.md).
    """

    threshold: int = 3
    cooldown_s: float = 30.0
    clock: object = time.monotonic
    failures: int = 0
    opened_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def allow(self) -> bool:
        with self._lock:
            if self.opened_at is None:
                return True
            if self.clock() - self.opened_at >= self.cooldown_s:  # type: ignore[operator]
                return True  # half-open: one trial
            return False

    def record(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self.failures, self.opened_at = 0, None
            else:
                self.failures += 1
                if self.failures >= self.threshold:
                    self.opened_at = self.clock()  # type: ignore[operator]

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.allow() else "open"


@dataclass
class LLMReply:
    text: str
    usage: dict[str, float]
    model: str


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


@dataclass
class LLM:
    """A chain of chat models tried in order, each behind its own circuit breaker."""

    models: list[tuple[str, BaseChatModel]]
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, _ in self.models:
            self.breakers.setdefault(name, CircuitBreaker())

    @property
    def name(self) -> str:
        return self.models[0][0] if self.models else "none"

    def generate(self, messages: Sequence[BaseMessage]) -> LLMReply | None:
        """First successful reply along the chain, or None (caller uses its offline tier)."""
        for name, model in self.models:
            breaker = self.breakers[name]
            if not breaker.allow():
                log.warning("llm %s skipped: circuit open", name)
                continue
            try:
                reply = model.invoke(list(messages))
            except Exception as exc:  # noqa: BLE001 - any provider failure falls through the chain
                breaker.record(False)
                log.warning("llm %s failed: %s", name, exc)
                continue
            breaker.record(True)
            text = reply.content if isinstance(reply.content, str) else str(reply.content)
            return LLMReply(text=text, usage=usage_of(reply, name), model=name)
        return None


def build_llm(settings: Settings, policy: LLMPolicy) -> LLM | None:
    """The configured model chain, or None when no model is configured (offline tier)."""
    if not settings.llm_enabled:
        return None
    from langchain_openai import ChatOpenAI  # imported only when a model is configured

    def make(model: str) -> BaseChatModel:
        return ChatOpenAI(
            model=model,
            api_key=settings.openai_api_key or "not-needed",
            base_url=settings.llm_base_url,
            temperature=policy.temperature,
            timeout=policy.timeout_s,
            max_retries=policy.max_retries,
        )

    models = [(settings.llm_model, make(settings.llm_model))]
    if settings.llm_fallback_model:
        models.append((settings.llm_fallback_model, make(settings.llm_fallback_model)))
    return LLM(models=models)
