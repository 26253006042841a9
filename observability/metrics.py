"""Prometheus metrics for the support graph, and `instrument`, the wrapper every node is added with.

Everything lives in one module-level `REGISTRY` (not prometheus_client's global default), so tests read exact
values and the LangGraph API server's own `/metrics` (its default registry) never collides with ours. Served
by `observability.http` at `/switchboard/metrics` (OpenMetrics, with exemplars, when the scraper asks for it).

    g.add_node("remember", instrument("remember", fn, ticket=True, services=provider))
    record_ticket(result)          # CLI/API result: status, intent, decision, trace_id (idempotent per ticket)
    render()                       # prometheus text exposition

What `instrument` does around each node call (sync or async; the signature is kept so LangGraph still injects
`runtime` / `config` / `store`):
- binds the ticket's trace id (a new one when the node starts a ticket) for log lines, usage and spans;
- times it (`switchboard_node_seconds`, exemplar trace_id), counts errors by type (raised, or a specialist's
  recorded failure) and human-in-the-loop pauses (not errors);
- counts tokens and cost per node and model (observability.usage), the intent/answer confidence, knowledge-base
  hits and escalations;
- writes the node's decision record (observability.decision_points) to the services' decision store;
- at the ticket's stop (the `ticket` node, or an interrupt) counts the ticket once and feeds the alert monitor.

In-process only: with several server processes, scrape each one (or use prometheus_client's multiprocess
mode); see DESIGN.md "Scale-out".
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from langgraph.errors import GraphBubbleUp, GraphInterrupt
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from observability import decision_points, tracing, usage

log = logging.getLogger("switchboard.nodes")

REGISTRY = CollectorRegistry(auto_describe=True)

# Nodes run from well under a millisecond (pure policy code) to tens of seconds (a slow model call).
NODE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TICKET_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0)

NODE_SECONDS = Histogram(
    "switchboard_node_seconds",
    "Wall time of one node call (every attempt, including ones that raise or interrupt).",
    ["node"],
    buckets=NODE_BUCKETS,
    registry=REGISTRY,
)
NODE_ERRORS = Counter(
    "switchboard_node_errors_total",
    "Node calls that raised (by exception type; each retry attempt counts) or whose specialist recorded a failure "
    "(error 'specialist_failure'). Interrupts are not errors.",
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
    "Ticket outcomes, once per (ticket, status): a ticket that paused for approval counts again when it completes. "
    "A rejected input has decision 'none' (it is refused, not escalated).",
    ["intent", "status", "decision"],
    registry=REGISTRY,
)
TICKETS_STARTED = Counter(
    "switchboard_tickets_started_total", "Tickets started (customer messages through guard_input).", registry=REGISTRY
)
HUMAN_TICKETS = Counter(
    "switchboard_tickets_with_human_total",
    "Tickets that needed a human at least once (approval, review or escalation); each ticket counts once.",
    registry=REGISTRY,
)
HUMAN_INTERVENTIONS = Counter(
    "switchboard_human_interventions_total",
    "Requests to a human, by kind: approval (request_approval), review (review_gate), escalation (escalate).",
    ["kind"],
    registry=REGISTRY,
)
ESCALATIONS = Counter(
    "switchboard_escalations_total",
    "Tickets handed to a human (escalate), by reason: low_confidence, limit, reviewer_discarded, workflow.",
    ["reason"],
    registry=REGISTRY,
)
TICKET_SECONDS = Histogram(
    "switchboard_ticket_seconds",
    "Agent time of a ticket in this process: from its start to its first stop (answer or interrupt).",
    ["status"],
    buckets=TICKET_BUCKETS,
    registry=REGISTRY,
)
CONFIDENCE = Histogram(
    "switchboard_confidence",
    "Confidence distribution: stage 'intent' (the classifier) and 'answer' (intent x grounding, at the end).",
    ["stage"],
    buckets=CONFIDENCE_BUCKETS,
    registry=REGISTRY,
)
KB_LOOKUPS = Counter(
    "switchboard_knowledge_lookups_total",
    "Knowledge-base retrievals: hit when an article reached the relevance threshold, miss otherwise.",
    ["result"],
    registry=REGISTRY,
)
CACHE_LOOKUPS = Counter(
    "switchboard_cache_lookups_total",
    "LangGraph node-cache lookups (CachePolicy), by node and result (hit | miss).",
    ["node", "result"],
    registry=REGISTRY,
)
LLM_TOKENS = Counter(
    "switchboard_llm_tokens_total",
    "Language-model tokens, by node, model and kind (prompt | completion).",
    ["node", "model", "kind"],
    registry=REGISTRY,
)
LLM_COST = Counter(
    "switchboard_llm_cost_usd_total",
    "Language-model cost in US dollars by node and model (prices in config/observability.yaml; unknown: 0).",
    ["node", "model"],
    registry=REGISTRY,
)
LLM_CALLS = Counter(
    "switchboard_llm_calls_total", "Language-model replies, by node and model.", ["node", "model"], registry=REGISTRY
)

# The last tickets' stops (for the dashboard's time series): {ts, status, latency_ms, cost_usd, error, human}.
TIMELINE: deque[dict[str, Any]] = deque(maxlen=5000)

TOKEN_KINDS = {"prompt": "prompt_tokens", "completion": "completion_tokens"}
INTERRUPT_KIND = {"request_approval": "approval", "review_gate": "review", "escalate": "escalation"}
INTERRUPT_STATUS = {"request_approval": "awaiting_approval", "review_gate": "awaiting_review", "escalate": "escalated"}
_SEEN_LIMIT = 10_000


@dataclass
class _Ticket:
    statuses: set[str] = field(default_factory=set)
    started: float | None = None  # perf_counter at the start in this process; None once its latency is observed
    human: bool = False
    error: bool = False
    escalated: bool = False


class _TicketLedger:
    """What was already recorded per trace id, so a ticket recorded twice (graph and CLI) counts once (LRU)."""

    def __init__(self, limit: int = _SEEN_LIMIT) -> None:
        self.limit = limit
        self._seen: OrderedDict[str, _Ticket] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, trace_id: str) -> _Ticket:
        with self._lock:
            ticket = self._seen.pop(trace_id, None) or _Ticket()
            self._seen[trace_id] = ticket
            while len(self._seen) > self.limit:
                self._seen.popitem(last=False)
            return ticket

    def new_status(self, trace_id: str | None, status: str) -> bool:
        if not trace_id:
            return True
        ticket = self.get(trace_id)
        with self._lock:
            fresh = status not in ticket.statuses
            ticket.statuses.add(status)
        return fresh

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


_ledger = _TicketLedger()


def _label(value: Any) -> str:
    return "none" if value is None or value == "" else str(value)


def _exemplar(trace_id: Any) -> dict[str, str] | None:
    return {"trace_id": str(trace_id)[:100]} if trace_id else None


def record_ticket(result: Mapping[str, Any]) -> None:
    """Count one ticket outcome from the CLI/API result (or the final graph state).

    Reads `status`, `intent`, `decision` and `trace_id`. Idempotent per ticket: the same (trace_id, status)
    counts once, so calling it from both the graph and the CLI, or after `ask` and again after `resume`, never
    double-counts. A rejected input is labelled decision "none": it was refused, never escalated. Tokens and
    cost are counted where they are spent (per node and model), not here.
    """
    status = _label(result.get("status") or "completed")
    decision = "none" if status == "rejected" else _label(result.get("decision"))
    if _ledger.new_status(result.get("trace_id"), status):
        TICKETS.labels(_label(result.get("intent")), status, decision).inc()


def record_llm_usage(node: str, model: str, spent: Mapping[str, float]) -> None:
    """Count one model reply's tokens and cost for a node and model (called by observability.usage)."""
    LLM_CALLS.labels(node, model).inc()
    for kind, key in TOKEN_KINDS.items():
        if spent.get(key):
            LLM_TOKENS.labels(node, model, kind).inc(spent[key])
    if spent.get("cost_usd"):
        LLM_COST.labels(node, model).inc(spent["cost_usd"])


def record_cache(node: str, hits: int, misses: int) -> None:
    if hits:
        CACHE_LOOKUPS.labels(node, "hit").inc(hits)
    if misses:
        CACHE_LOOKUPS.labels(node, "miss").inc(misses)


def escalation_reason(state: Mapping[str, Any]) -> str:
    if (state.get("review") or {}).get("type") == "ignore":
        return "reviewer_discarded"
    if state.get("error"):
        return "limit"
    if state.get("decision") == "escalate":
        return "low_confidence"
    return "workflow"


# ------------------------------------------------------------------ collectors read at scrape time


class _LiveCollector:
    """Gauges computed when scraped: circuit-breaker states of the chains this process built, and the
    human-intervention ratio. Never builds services."""

    def describe(self) -> Iterable[Any]:
        return []

    def collect(self) -> Iterable[Any]:
        breakers = GaugeMetricFamily(
            "switchboard_llm_breaker_state",
            "Circuit breaker of each model endpoint: 1 for its current state (closed | half_open | open).",
            labels=["endpoint", "state"],
        )
        for endpoint, state in live_breakers().items():
            for s in ("closed", "half_open", "open"):
                breakers.add_metric([endpoint, s], 1.0 if s == state else 0.0)
        yield breakers
        started = TICKETS_STARTED._value.get()
        ratio = GaugeMetricFamily(
            "switchboard_human_intervention_ratio",
            "Share of tickets started in this process that needed a human (tickets_with_human / tickets_started).",
        )
        ratio.add_metric([], HUMAN_TICKETS._value.get() / started if started else 0.0)
        yield ratio


def live_breakers() -> dict[str, str]:
    """Breaker state per endpoint of every model chain already built in this process (none offline)."""
    import sys

    services_module = sys.modules.get("graphs.services")
    if services_module is None:
        return {}
    out: dict[str, str] = {}
    for svc in list(getattr(services_module, "_instances", {}).values()):
        llm = getattr(svc, "llm", None)
        if llm is not None:
            try:
                out.update(llm.breaker_states())
            except Exception:  # noqa: BLE001 - a shared store that is down must not break the scrape
                log.debug("breaker states unavailable", exc_info=True)
    return out


REGISTRY.register(_LiveCollector())


# ------------------------------------------------------------------ instrument()


class _Call:
    """One node call's context: what instrument needs before, during and after it."""

    __slots__ = ("name", "state", "runtime", "trace_id", "started")

    def __init__(self, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        self.name = name
        state = args[0] if args else kwargs.get("state")
        self.state: Mapping[str, Any] = state if isinstance(state, Mapping) else {}
        self.runtime = kwargs.get("runtime") or (args[1] if len(args) > 1 else None)
        self.trace_id: str | None = None
        self.started = 0.0


def _identity(runtime: Any) -> tuple[str, str]:
    from graphs.context import context_of

    try:
        ctx = context_of(runtime)
    except Exception:  # noqa: BLE001 - a bad identity is the node's to refuse, not the log's
        return "", ""
    return ctx.user_id, ctx.tenant_id


class Instrumentation:
    """The before/after logic of `instrument`, shared by the sync and async wrappers."""

    def __init__(
        self, name: str, *, ticket: bool, starts_ticket: bool, services: Callable[[], Any] | None
    ) -> None:
        self.name = name
        self.ticket = ticket
        self.starts_ticket = starts_ticket
        self.services = services
        self.seconds = NODE_SECONDS.labels(name)

    def begin(self, call: _Call) -> None:
        if self.starts_ticket:
            call.trace_id = tracing.trace_id_for_new_ticket()
            TICKETS_STARTED.inc()
            _ledger.get(call.trace_id).started = time.perf_counter()
        else:
            call.trace_id = call.state.get("trace_id") or tracing.current_trace_id()
        call.started = time.perf_counter()

    def _svc(self) -> Any:
        if self.services is None:
            return None
        try:
            return self.services()
        except Exception:  # noqa: BLE001 - the node itself reports a services failure
            return None

    def _record(self, call: _Call, fields: dict[str, Any], elapsed: float, calls: list[dict[str, Any]],
                notes: Mapping[str, Any]) -> None:
        svc = self._svc()
        store = getattr(svc, "decisions", None)
        if store is None or not call.trace_id:
            return
        from auth.audit import masked
        from graphs.state import sum_usage
        from nodes.common import thread_id
        from observability.decisions import DecisionRecord

        user, tenant = _identity(call.runtime)
        # The decision log is searchable plain text: personal data in it is masked (guards.pii.mask_for_log).
        details = masked({**fields.pop("details", {}), **notes})
        if isinstance(fields.get("reasoning"), str):
            fields["reasoning"] = masked({"r": fields["reasoning"]})["r"]
        models = sorted({c["model"] for c in calls})
        spent = sum_usage(*({k: v for k, v in c.items() if k != "model"} for c in calls))
        rec = DecisionRecord(
            trace_id=call.trace_id,
            node=self.name,
            thread_id=thread_id(),
            tenant_id=tenant,
            user_id=user,
            latency_ms=round(elapsed * 1000, 3),
            prompt_tokens=int(spent.get("prompt_tokens", 0)),
            completion_tokens=int(spent.get("completion_tokens", 0)),
            cost_usd=float(spent.get("cost_usd", 0.0)),
            model=",".join(models) or None,
            details=details,
            **{k: v for k, v in fields.items() if k in DECISION_FIELDS},
        )
        try:
            store.record(rec)
        except Exception:  # noqa: BLE001 - a full disk must not fail the ticket; it is logged loudly
            log.error("decision record for %s not written", self.name, exc_info=True)

    def succeeded(self, call: _Call, out: Any, elapsed: float, calls: list[dict[str, Any]],
                  notes: Mapping[str, Any]) -> None:
        exemplar = _exemplar(call.trace_id)
        self.seconds.observe(elapsed, exemplar)
        log.debug("node %s ok in %.4fs", self.name, elapsed)
        update, _ = decision_points.split(out)
        failure = (update.get("failures") or {}).get(self.name) if isinstance(update.get("failures"), Mapping) else None
        if isinstance(failure, Mapping) and failure.get("count"):
            NODE_ERRORS.labels(self.name, "specialist_failure").inc()
            self._mark(call, error=True)
        if self.name == "classify_intent" and update.get("intent_confidence") is not None:
            CONFIDENCE.labels("intent").observe(float(update["intent_confidence"]), exemplar)
        elif self.name == "retrieve_knowledge":
            self._knowledge_hit(update)
        elif self.name == "execute_action" and (update.get("action_result") or {}).get("ok"):
            svc = self._svc()
            if svc is not None:
                from observability.cache import note_write

                note_write(svc)  # cached retrievals from before this write are stale
        fields = decision_points.fields_for(self.name, call.state, out)
        self._record(call, fields, elapsed, calls, notes)
        if self.ticket:
            final = {**call.state, **update}
            record_ticket(final)
            if final.get("confidence") is not None:
                CONFIDENCE.labels("answer").observe(float(final["confidence"]), exemplar)
            self._stop(call, final, str(final.get("status") or "completed"))

    def _knowledge_hit(self, update: Mapping[str, Any]) -> None:
        svc = self._svc()
        threshold = getattr(getattr(getattr(svc, "policy", None), "retrieval", None), "min_relevance", 0.25)
        articles = [k for k in update.get("knowledge") or [] if isinstance(k, Mapping) and k.get("kind") != "case"]
        hit = any(float(k.get("relevance", 0)) >= threshold for k in articles)
        KB_LOOKUPS.labels("hit" if hit else "miss").inc()

    def interrupted(self, call: _Call, exc: GraphInterrupt, elapsed: float) -> None:
        self.seconds.observe(elapsed, _exemplar(call.trace_id))
        INTERRUPTS.labels(self.name).inc()
        kind = INTERRUPT_KIND.get(self.name, "other")
        HUMAN_INTERVENTIONS.labels(kind).inc()
        if self.name == "escalate":
            ESCALATIONS.labels(escalation_reason(call.state)).inc()
        log.debug("node %s interrupted after %.4fs", self.name, elapsed)
        payload = None
        for item in (exc.args[0] if exc.args else None) or []:
            payload = getattr(item, "value", None)
            break
        self._record(call, decision_points.interrupted_fields(self.name, call.state, payload), elapsed, [], {})
        if call.trace_id:
            ticket = _ledger.get(call.trace_id)
            first_human = not ticket.human
            ticket.human = True
            ticket.escalated = ticket.escalated or self.name == "escalate"
            if first_human:
                HUMAN_TICKETS.inc()
        status = INTERRUPT_STATUS.get(self.name, "interrupted")
        record_ticket({**call.state, "status": status, "trace_id": call.trace_id})
        self._stop(call, call.state, status)

    def failed(self, call: _Call, exc: Exception, elapsed: float) -> None:
        self.seconds.observe(elapsed, _exemplar(call.trace_id))
        if isinstance(exc, GraphBubbleUp):
            return
        NODE_ERRORS.labels(self.name, type(exc).__name__).inc()
        self._mark(call, error=True)
        log.debug("node %s raised %s", self.name, type(exc).__name__)
        fields = {"action": "run", "outcome": f"error: {type(exc).__name__}", "reasoning": str(exc)[:500],
                  "intent": call.state.get("intent")}
        self._record(call, fields, elapsed, [], {})

    def _mark(self, call: _Call, *, error: bool) -> None:
        if call.trace_id:
            _ledger.get(call.trace_id).error = error or _ledger.get(call.trace_id).error

    def _stop(self, call: _Call, state: Mapping[str, Any], status: str) -> None:
        """The ticket stopped (answered, or waiting for a human): its latency, once, and the alert monitor."""
        if not call.trace_id:
            return
        ticket = _ledger.get(call.trace_id)
        if ticket.started is None:
            return
        seconds = time.perf_counter() - ticket.started
        ticket.started = None
        TICKET_SECONDS.labels(status).observe(seconds, _exemplar(call.trace_id))
        cost = float((state.get("usage") or {}).get("cost_usd", 0.0))
        TIMELINE.append({"ts": time.time(), "status": status, "latency_ms": round(seconds * 1000, 2),
                         "cost_usd": cost, "error": ticket.error, "human": ticket.human})
        monitor = getattr(self._svc(), "alerts", None)
        if monitor is not None:
            try:
                monitor.observe_ticket(
                    latency_ms=seconds * 1000,
                    error=ticket.error,
                    escalated=ticket.escalated or status == "escalated",
                    cost_usd=cost,
                )
            except Exception:  # noqa: BLE001 - alerting must never fail a ticket
                log.error("alert evaluation failed", exc_info=True)


DECISION_FIELDS = {"action", "tool", "intent", "confidence", "reasoning", "outcome"}

_suppress: contextvars.ContextVar[bool] = contextvars.ContextVar("switchboard_metrics_suppressed", default=False)


_recorder: contextvars.ContextVar[list[tuple[Any, ...]] | None] = contextvars.ContextVar(
    "switchboard_node_recorder", default=None
)


@contextmanager
def recording() -> Iterator[list[tuple[Any, ...]]]:
    """Inside, every instrumented node call is appended as (wrapped function, args, kwargs, run config), in call
    order, so a benchmark can call the same functions again as plain Python (bench.ticket's overhead ratio)."""
    calls: list[tuple[Any, ...]] = []
    token = _recorder.set(calls)
    try:
        yield calls
    finally:
        _recorder.reset(token)


def _record_call(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    calls = _recorder.get()
    if calls is None:
        return
    import copy

    from langgraph.config import get_config

    try:
        config = get_config()
    except RuntimeError:
        config = None
    calls.append((fn, copy.deepcopy(args[:1]) + args[1:], dict(kwargs), config))


@contextmanager
def suppressed() -> Iterator[None]:
    """Inside, instrumented nodes run bare: no metrics, decision records or alerts (health probes)."""
    token = _suppress.set(True)
    try:
        yield
    finally:
        _suppress.reset(token)


def instrument[F: Callable[..., Any]](
    name: str,
    fn: F,
    *,
    ticket: bool = False,
    starts_ticket: bool = False,
    services: Callable[[], Any] | None = None,
) -> F:
    """Wrap a node function with tracing, metrics and its decision record (see the module docstring).

    `functools.wraps` keeps `inspect.signature` and type hints pointing at `fn`, so LangGraph still injects
    `runtime` / `config` / `store` exactly as it would for `fn`. `starts_ticket` (guard_input) makes the ticket's
    trace id; `ticket` (remember) marks the ticket's last node; `services` (a provider) gives the decision store,
    the policy and the alert monitor. A `GraphInterrupt` is counted as a pause, not an error, and re-raised;
    other control flow (`ParentCommand`) is re-raised uncounted.
    """
    inst = Instrumentation(name, ticket=ticket, starts_ticket=starts_ticket, services=services)

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def awrapper(*args: Any, **kwargs: Any) -> Any:
            if _suppress.get():
                return await fn(*args, **kwargs)
            with _observed(inst, _Call(name, args, kwargs)) as result:
                result.append(await fn(*args, **kwargs))
            return result[0]

        return cast(F, awrapper)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _suppress.get():
            return fn(*args, **kwargs)
        if _recorder.get() is not None:
            _record_call(wrapper, args, kwargs)
        with _observed(inst, _Call(name, args, kwargs)) as result:
            result.append(fn(*args, **kwargs))
        return result[0]

    return cast(F, wrapper)


@contextmanager
def _observed(inst: Instrumentation, call: _Call) -> Iterator[list[Any]]:
    """One node call (sync or async): trace id, span, usage and notes around it, then its outcome counted and
    recorded. The caller appends the node's return value to the yielded list."""
    inst.begin(call)
    result: list[Any] = []
    with tracing.bound(call.trace_id, inst.name), tracing.node_span(inst.name, call.trace_id), \
            usage.collect() as calls, decision_points.collecting_notes() as notes:
        try:
            yield result
        except GraphInterrupt as exc:
            inst.interrupted(call, exc, time.perf_counter() - call.started)
            raise
        except Exception as exc:
            inst.failed(call, exc, time.perf_counter() - call.started)
            raise
        inst.succeeded(call, result[0], time.perf_counter() - call.started, calls, notes)


def render(openmetrics: bool = False) -> bytes:
    """The registry in Prometheus text format, or OpenMetrics (with exemplars) when asked."""
    if openmetrics:
        from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

        return generate_openmetrics(REGISTRY)
    return generate_latest(REGISTRY)
