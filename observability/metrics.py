"""Prometheus metrics for the support graph: node timings and errors, interrupts, tickets, LLM usage.

Everything lives in one module-level `REGISTRY` (not prometheus_client's global default), so tests
read exact values and the LangGraph API server's own `/metrics` (which serves the default registry)
never collides with ours. Served by `observability.http` at `/switchboard/metrics`.

    g.add_node("remember", instrument("remember", remember.make(provider), ticket=True))
    record_ticket(result)          # CLI/API result: status, intent, decision, usage, trace_id
    render()                       # prometheus text exposition

In-process only: with several server processes, scrape each one (or use prometheus_client's
multiprocess mode); see DESIGN.md "Scale-out".
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, cast

from langgraph.errors import GraphBubbleUp, GraphInterrupt
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

log = logging.getLogger("switchboard.nodes")

REGISTRY = CollectorRegistry(auto_describe=True)

# Nodes run from well under a millisecond (pure policy code) to tens of seconds (a slow model call).
NODE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

NODE_SECONDS = Histogram(
    "switchboard_node_seconds",
    "Wall time of one node call (every attempt, including ones that raise or interrupt).",
    ["node"],
    buckets=NODE_BUCKETS,
    registry=REGISTRY,
)
NODE_ERRORS = Counter(
    "switchboard_node_errors_total",
    "Node calls that raised, by exception type (each retry attempt counts; interrupts do not).",
    ["node", "error"],
    registry=REGISTRY,
)
INTERRUPTS = Counter(
    "switchboard_interrupts_total",
    "Human-in-the-loop pauses: node calls that raised GraphInterrupt via interrupt().",
    ["node"],
    registry=REGISTRY,
)
TICKETS = Counter(
    "switchboard_tickets_total",
    "Ticket outcomes, once per (ticket, status): a ticket that paused for approval counts again when it completes.",
    ["intent", "status", "decision"],
    registry=REGISTRY,
)
LLM_TOKENS = Counter(
    "switchboard_llm_tokens_total",
    "Language-model tokens used by tickets.",
    ["kind"],
    registry=REGISTRY,
)
LLM_COST = Counter(
    "switchboard_llm_cost_usd_total",
    "Language-model cost in US dollars (models without a known price count 0).",
    registry=REGISTRY,
)

TOKEN_KINDS = {"prompt": "prompt_tokens", "completion": "completion_tokens"}
_SEEN_LIMIT = 10_000


class _TicketLedger:
    """What was already recorded per trace id, so a ticket recorded twice (graph and CLI) counts once.

    Keeps the last `limit` trace ids (LRU); usage is cumulative per ticket, so only the delta is added.
    """

    def __init__(self, limit: int = _SEEN_LIMIT) -> None:
        self.limit = limit
        self._seen: OrderedDict[str, tuple[set[str], dict[str, float]]] = OrderedDict()
        self._lock = threading.Lock()

    def update(self, trace_id: str | None, status: str, usage: Mapping[str, float]) -> tuple[bool, dict[str, float]]:
        """(is this status new for the ticket, usage not yet counted)."""
        if not trace_id:
            return True, dict(usage)
        with self._lock:
            statuses, counted = self._seen.pop(trace_id, (set(), {}))
            new_status = status not in statuses
            statuses.add(status)
            delta = {k: max(0.0, float(v) - counted.get(k, 0.0)) for k, v in usage.items()}
            counted = {k: max(float(v), counted.get(k, 0.0)) for k, v in usage.items()}
            self._seen[trace_id] = (statuses, counted)
            while len(self._seen) > self.limit:
                self._seen.popitem(last=False)
        return new_status, delta

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


_ledger = _TicketLedger()


def _label(value: Any) -> str:
    return "none" if value is None or value == "" else str(value)


def record_ticket(result: Mapping[str, Any]) -> None:
    """Count one ticket outcome and its LLM usage from the CLI/API result (or the final graph state).

    Reads `status`, `intent`, `decision`, `usage` ({prompt_tokens, completion_tokens, cost_usd}) and
    `trace_id`. Idempotent per ticket: the same (trace_id, status) counts once, and usage (cumulative
    per ticket) adds only what was not counted before, so calling it from both the graph and the CLI,
    or after `ask` and again after `resume`, never double-counts.
    """
    status = _label(result.get("status") or "completed")
    usage = result.get("usage") or {}
    new_status, delta = _ledger.update(result.get("trace_id"), status, usage)
    if new_status:
        TICKETS.labels(_label(result.get("intent")), status, _label(result.get("decision"))).inc()
    for kind, key in TOKEN_KINDS.items():
        if delta.get(key):
            LLM_TOKENS.labels(kind).inc(delta[key])
    if delta.get("cost_usd"):
        LLM_COST.inc(delta["cost_usd"])


def _trace_of(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    state = args[0] if args else kwargs.get("state")
    return state.get("trace_id") if isinstance(state, Mapping) else getattr(state, "trace_id", None)


def instrument[F: Callable[..., Any]](name: str, fn: F, *, ticket: bool = False) -> F:
    """Wrap a node function with timing, error and interrupt counting; the signature is kept.

    `functools.wraps` keeps `inspect.signature` and type hints pointing at `fn`, so LangGraph still
    injects `runtime` / `config` / `store` exactly as it would for `fn`. A `GraphInterrupt` (from
    `interrupt()`) is counted in `switchboard_interrupts_total`, not as an error, and re-raised; other
    control flow (`ParentCommand`) is re-raised uncounted. With `ticket=True` (for the last node,
    `remember`) a successful call also records the ticket from the node's input state, so tickets
    served by the LangGraph API are counted too. Sync and async nodes are both supported.
    """
    seconds = NODE_SECONDS.labels(name)

    def failed(exc: Exception, trace_id: Any, elapsed: float) -> None:
        if isinstance(exc, GraphInterrupt):
            INTERRUPTS.labels(name).inc()
            log.debug("node %s interrupted trace_id=%s after %.4fs", name, trace_id, elapsed)
        elif not isinstance(exc, GraphBubbleUp):
            NODE_ERRORS.labels(name, type(exc).__name__).inc()
            log.debug("node %s raised %s trace_id=%s", name, type(exc).__name__, trace_id)

    def done(args: tuple[Any, ...], kwargs: Mapping[str, Any], elapsed: float) -> None:
        log.debug("node %s ok trace_id=%s in %.4fs", name, _trace_of(args, kwargs), elapsed)
        if ticket:
            state = args[0] if args else kwargs.get("state")
            if isinstance(state, Mapping):
                record_ticket(state)

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def awrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                out = await fn(*args, **kwargs)
            except Exception as exc:
                failed(exc, _trace_of(args, kwargs), time.perf_counter() - start)
                raise
            finally:
                seconds.observe(time.perf_counter() - start)
            done(args, kwargs, time.perf_counter() - start)
            return out

        return cast(F, awrapper)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            out = fn(*args, **kwargs)
        except Exception as exc:
            failed(exc, _trace_of(args, kwargs), time.perf_counter() - start)
            raise
        finally:
            seconds.observe(time.perf_counter() - start)
        done(args, kwargs, time.perf_counter() - start)
        return out

    return cast(F, wrapper)


def render() -> bytes:
    """The registry in Prometheus text exposition format."""
    return generate_latest(REGISTRY)
