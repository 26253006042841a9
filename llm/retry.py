"""Retries on one model endpoint, with tenacity: what failed (`error_kind`), whether it is worth another
try (the endpoint's `retry_on`), and how long to wait (a 429's Retry-After, else exponential + jitter).

The OpenAI client's own retries are switched off (`max_retries=0`) so that every wait goes through the
injected `sleep` (tests never sleep) and every request passes the endpoint's circuit breaker.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from config.settings import ModelRetry
from llm.breaker import CircuitOpen


class TruncatedReply(Exception):
    """A streamed reply that ended without a finish reason (the stream was cut short)."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def error_kind(exc: BaseException) -> str:
    """timeout | connection | rate_limit | server_error | malformed | truncated | circuit_open | client_error | other.

    Matched on class names through the cause chain, so openai's, httpx's and httpx2's exceptions (and plain
    Python ones from fakes) all classify without importing any of them.
    """
    chain = list(_chain(exc))
    names = set().union(*(_names(e) for e in chain))
    if isinstance(exc, CircuitOpen):
        return "circuit_open"
    if "TruncatedReply" in names or "RemoteProtocolError" in names:
        return "truncated"
    if names & {"APITimeoutError", "TimeoutException", "TimeoutError", "ReadTimeout"}:
        return "timeout"
    status = next((getattr(e, "status_code", None) for e in chain if getattr(e, "status_code", None)), None)
    if status == 429 or "RateLimitError" in names:
        return "rate_limit"
    if isinstance(status, int) and status >= 500:
        return "server_error"
    if names & {"APIConnectionError", "ConnectionError", "TransportError"}:
        return "connection"
    if isinstance(status, int):
        return "client_error"
    if any(isinstance(e, json.JSONDecodeError) for e in chain) or names & {"APIResponseValidationError"}:
        return "malformed"
    if any(isinstance(e, ValueError) and "No generations found" in str(e) for e in chain):
        return "malformed"  # a stream request answered with something that is not a stream
    return "other"


def retry_after_s(exc: BaseException, now: Callable[[], float] = time.time) -> float | None:
    """Seconds a 429/503 asks to wait (`retry-after-ms`, `retry-after` seconds or HTTP date), or None."""
    for e in _chain(exc):
        headers = getattr(getattr(e, "response", None), "headers", None)
        if headers is None:
            continue
        if (ms := headers.get("retry-after-ms")) is not None:
            try:
                return max(0.0, float(ms) / 1000)
            except ValueError:
                pass
        if (value := headers.get("retry-after")) is not None:
            try:
                return max(0.0, float(value))
            except ValueError:
                parsed = email.utils.parsedate_to_datetime(value) if value else None
                if parsed is not None:
                    return max(0.0, parsed.timestamp() - now())
    return None


class wait_retry_after_or_backoff:  # noqa: N801 - named like tenacity's wait strategies
    """Wait what the server's Retry-After asks (the retry predicate already refused one over the bound),
    else tenacity's `wait_exponential_jitter`: min(max_s, initial_s * factor**(n-1) + uniform(0, jitter_s))."""

    def __init__(self, policy: ModelRetry) -> None:
        self.backoff = wait_exponential_jitter(
            multiplier=policy.initial_s, max=policy.max_s, exp_base=policy.factor, jitter=policy.jitter_s
        )

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        after = retry_after_s(exc) if exc is not None else None
        return after if after is not None else self.backoff(state)


def should_retry(policy: ModelRetry, give_up: Callable[[], bool] = lambda: False) -> Callable[[BaseException], bool]:
    """Retry a failure of a kind in `retry_on`, unless `give_up()` (a failed half-open trial, or a failure that opened
    the circuit: the next attempt would only be refused)."""

    def check(exc: BaseException) -> bool:
        if give_up() or error_kind(exc) not in policy.retry_on:
            return False
        after = retry_after_s(exc)
        return after is None or after <= policy.max_retry_after_s  # a long Retry-After: next tier instead

    return check


def retrying(
    policy: ModelRetry, sleep: Callable[[float], Any], give_up: Callable[[], bool] = lambda: False
) -> Retrying:
    return Retrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait_retry_after_or_backoff(policy),
        retry=retry_if_exception(should_retry(policy, give_up)),
        sleep=sleep,
        reraise=True,
    )
