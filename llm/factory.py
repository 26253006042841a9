"""Builds the model chain from settings: one ChatOpenAI client per configured endpoint, each with its breaker
(in process, or shared through Redis when `SWITCHBOARD_REDIS_URL` is set), the routes and the retry waits.

    llm = build_llm(settings, settings.policy().llm)   # None without a configured model: the offline tier
    breaker_states(llm, settings)                       # endpoint -> closed / open / half_open
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from langchain_core.language_models import BaseChatModel

from config.settings import ErrorPolicies, LLMPolicy, Settings
from llm.breaker import BreakerStore, CircuitBreaker, MemoryStore, RedisStore
from llm.chain import LLM


def endpoint_models(settings: Settings, policies: ErrorPolicies) -> dict[str, str]:
    """Endpoint name -> provider model id; primary / secondary without one take the settings' models."""
    from_settings = {"primary": settings.llm_model, "secondary": settings.llm_fallback_model}
    ids = {name: ep.model or from_settings.get(name) for name, ep in policies.models.items()}
    return {name: model_id for name, model_id in ids.items() if model_id}


def build_breakers(
    settings: Settings,
    policies: ErrorPolicies,
    store: BreakerStore | None = None,
    clock: Callable[[], float] | None = None,
) -> dict[str, CircuitBreaker]:
    """One breaker per configured endpoint, keyed in the store by model id and base URL, so every process
    configured alike shares each endpoint's state (with a Redis store)."""
    if store is None:
        store = RedisStore(settings.redis_url) if settings.redis_url else MemoryStore()
    host = settings.llm_base_url or "api.openai.com"
    return {
        name: CircuitBreaker(
            policies.models[name].breaker.failure_threshold,
            policies.models[name].breaker.cooldown_s,
            clock,
            name=f"{model_id}@{host}",
            store=store,
            trial_timeout_s=policies.models[name].breaker.trial_timeout_s or 2 * policies.models[name].timeout_s,
        )
        for name, model_id in endpoint_models(settings, policies).items()
    }


def breaker_states(llm: LLM | None = None, settings: Settings | None = None) -> dict[str, str] | None:
    """Circuit state per endpoint: from a built chain, else (no chain in this process, e.g. a health command)
    from the shared Redis store the settings name; None when neither is there."""
    if llm is not None:
        return llm.breaker_states()
    if settings is None or not settings.llm_enabled or not settings.redis_url:
        return None
    return {name: b.state for name, b in build_breakers(settings, settings.error_policies()).items()}


def build_llm(
    settings: Settings,
    policy: LLMPolicy,
    *,
    policies: ErrorPolicies | None = None,
    store: BreakerStore | None = None,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], Any] = time.sleep,
) -> LLM | None:
    """The configured model chain, or None when no model is configured (offline tier).

    Timeouts, retries, breakers, routes and rate limits come from config/error-policies.yaml (`policies`);
    `policy` (policy.yaml's `llm`) gives the temperature. The client's own retries are off: ours wait
    through `sleep` and pass the breaker on every attempt.
    """
    if not settings.llm_enabled:
        return None
    from langchain_core.rate_limiters import InMemoryRateLimiter
    from langchain_openai import ChatOpenAI  # imported only when a model is configured

    policies = policies or settings.error_policies()
    ids = endpoint_models(settings, policies)

    def make(name: str) -> BaseChatModel:
        ep = policies.models[name]
        limiter = (
            InMemoryRateLimiter(
                requests_per_second=ep.rate_limit.requests_per_second, max_bucket_size=ep.rate_limit.max_bucket_size
            )
            if ep.rate_limit
            else None
        )
        # `stream: true` always streams. Otherwise `streaming` is left unset, not False: LangChain then streams exactly
        # when a streaming callback listens (LangGraph's `messages` stream mode, astream_events), so the answer's
        # tokens reach a `langgraph dev` client; an explicit False would switch that off.
        stream = {"streaming": True} if ep.stream else {}
        return ChatOpenAI(
            model=ids[name],
            api_key=settings.openai_api_key or "not-needed",
            base_url=settings.llm_base_url,
            temperature=policy.temperature,
            timeout=ep.timeout_s,
            max_retries=0,
            stream_usage=True,
            rate_limiter=limiter,
            **stream,
        )

    return LLM(
        models=[(name, make(name)) for name in ids],
        breakers=build_breakers(settings, policies, store, clock),
        endpoints={name: policies.models[name] for name in ids},
        routes={task: {level: names for level, names in by.items()} for task, by in policies.routes.items()},
        model_ids=ids,
        complexity=policies.complexity,
        sleep=sleep,
    )
