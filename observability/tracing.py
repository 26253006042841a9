"""One trace id per ticket: where it comes from, and where it goes (log lines, LangSmith, OpenTelemetry).

- A ticket's trace id is made when the ticket starts (`guard_input`): the run's config metadata `trace_id` when
  the caller gave one (the CLI does, so its LangSmith run carries it too), else a fresh UUID. A resumed run keeps
  the ticket's id: it is in the checkpointed state.
- While a node runs, `observability.metrics.instrument` sets `current_trace_id()` (and the node's name), so every
  log record made meanwhile carries `trace_id` and `node` attributes (`install_log_context()` puts them on every
  `logging.LogRecord`; the CLI's log format prints them, the LangGraph API server's structlog adds them as extras).
- LangSmith traces only when its key is set (`configure_langsmith`): without a key tracing is switched off,
  silently, even when LANGSMITH_TRACING says true.
- OpenTelemetry spans (one per node call, the ticket's trace id as the OTel trace id) are exported only when
  `OTEL_EXPORTER_OTLP_ENDPOINT` is set; the SDK is imported on first use, never otherwise.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import threading
import uuid
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, cast

TRACE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{7,127}$")

_trace: contextvars.ContextVar[str | None] = contextvars.ContextVar("switchboard_trace_id", default=None)
_node: contextvars.ContextVar[str | None] = contextvars.ContextVar("switchboard_node", default=None)


def current_trace_id() -> str | None:
    """The trace id of the ticket whose node is running in this context, or None."""
    return _trace.get()


def current_node() -> str | None:
    return _node.get()


@contextmanager
def bound(trace_id: str | None, node: str | None = None) -> Iterator[None]:
    """Set the trace id (and node) for the code inside, e.g. a CLI command working on one ticket."""
    t1, t2 = _trace.set(trace_id), _node.set(node)
    try:
        yield
    finally:
        _node.reset(t2)
        _trace.reset(t1)


def new_trace_id() -> str:
    return str(uuid.uuid4())


def valid_trace_id(value: Any) -> str | None:
    """`value` when it can be a trace id (8-128 safe characters), else None."""
    return value if isinstance(value, str) and TRACE_ID_PATTERN.match(value) else None


def trace_id_for_new_ticket() -> str:
    """The id for a ticket starting now: the run config's `metadata.trace_id` when valid, else a new UUID."""
    from langgraph.config import get_config

    try:
        given = (get_config().get("metadata") or {}).get("trace_id")
    except RuntimeError:  # not inside a run (a node called directly)
        given = None
    return valid_trace_id(given) or new_trace_id()


# ------------------------------------------------------------------ logs

_installed = False
_install_lock = threading.Lock()


def install_log_context() -> None:
    """Give every LogRecord made while a ticket's node runs `trace_id` and `node` attributes (records outside a
    ticket get none, so a server's own log lines stay as they were; `log_formatter()` prints "-" for them).
    Idempotent."""
    global _installed
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            trace = _trace.get()
            if trace:
                record.trace_id = trace
                record.node = _node.get() or "-"
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [trace_id=%(trace_id)s node=%(node)s]: %(message)s"


def log_formatter() -> logging.Formatter:
    """The CLI's log format: every line names its ticket's trace id and node ("-" outside a ticket)."""
    return logging.Formatter(LOG_FORMAT, defaults={"trace_id": "-", "node": "-"})


# ------------------------------------------------------------------ LangSmith

LANGSMITH_KEYS = ("LANGSMITH_API_KEY", "LANGCHAIN_API_KEY")
LANGSMITH_SWITCHES = ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "LANGCHAIN_TRACING")


def configure_langsmith(env: MutableMapping[str, str] | None = None) -> bool:
    """LangSmith tracing on only with a key: returns whether it is on. Without a key every tracing switch is set
    to "false" (so LangChain neither traces nor warns about a missing key); with one, tracing is on unless a
    switch says "false" explicitly. Called once at start-up (CLI, served graph)."""
    e = os.environ if env is None else env
    has_key = any(e.get(k) for k in LANGSMITH_KEYS)
    if not has_key:
        for switch in LANGSMITH_SWITCHES:
            e[switch] = "false"
        return False
    explicit_off = any(e.get(s, "").lower() == "false" for s in LANGSMITH_SWITCHES)
    if explicit_off:
        for switch in LANGSMITH_SWITCHES:
            e[switch] = "false"
        return False
    e["LANGSMITH_TRACING"] = "true"
    return True


# ------------------------------------------------------------------ OpenTelemetry (optional, lazy)

_otel_lock = threading.Lock()
_otel: Any = None  # the tracer once set up; False when not configured
OTEL_ENDPOINT_VAR = "OTEL_EXPORTER_OTLP_ENDPOINT"


def otel_tracer(env: MutableMapping[str, str] | None = None) -> Any | None:
    """The OpenTelemetry tracer when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, else None (nothing imported).

    OTLP over HTTP/protobuf unless `OTEL_EXPORTER_OTLP_PROTOCOL=grpc`; spans are batched and sent in the
    background. Decided once per process (`reset_otel()` for tests)."""
    global _otel
    if _otel is not None:
        return _otel or None
    with _otel_lock:
        if _otel is not None:
            return _otel or None
        e = os.environ if env is None else env
        if not e.get(OTEL_ENDPOINT_VAR):
            _otel = False
            return None
        _otel = _build_tracer(e)
        return _otel


def _build_tracer(env: MutableMapping[str, str]) -> Any:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    exporter: SpanExporter
    if env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        exporter = GrpcExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        exporter = HttpExporter()

    service = env.get("OTEL_SERVICE_NAME") or "switchboard"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    # Our own provider, not the global one: the server (or the app embedding us) may have its own.
    tracer = provider.get_tracer("switchboard")
    # Kept for flush/shutdown; the SDK's Tracer declares no such attribute, hence the cast.
    cast(Any, tracer)._switchboard_provider = provider
    return tracer


def otel_flush(timeout_ms: int = 5000) -> None:
    """Send every finished span now (CLI exit, tests)."""
    if _otel:
        _otel._switchboard_provider.force_flush(timeout_ms)


def reset_otel() -> None:
    """Forget the tracer (tests): the next `otel_tracer()` decides again from the environment."""
    global _otel
    with _otel_lock:
        if _otel:
            _otel._switchboard_provider.shutdown()
        _otel = None


def otel_trace_id(trace_id: str) -> int:
    """Our trace id as a 128-bit OTel trace id: a UUID's own bits, any other string's hash."""
    try:
        return uuid.UUID(trace_id).int
    except ValueError:
        return uuid.uuid5(uuid.NAMESPACE_URL, trace_id).int


@contextmanager
def node_span(node: str, trace_id: str | None) -> Iterator[Any]:
    """An OTel span for one node call, in the ticket's OTel trace; a no-op without an endpoint."""
    tracer = otel_tracer()
    if tracer is None or not trace_id:
        yield None
        return
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    parent = SpanContext(
        trace_id=otel_trace_id(trace_id),
        span_id=uuid.uuid4().int >> 64,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    ctx = trace.set_span_in_context(NonRecordingSpan(parent))
    with tracer.start_as_current_span(f"node {node}", context=ctx) as span:
        span.set_attribute("switchboard.trace_id", trace_id)
        span.set_attribute("switchboard.node", node)
        yield span


def flush_telemetry(timeout_s: float = 5.0) -> None:
    """Before a short-lived process exits (the CLI): send batched spans, write queued decision records, finish
    alert webhook posts."""
    import sys

    otel_flush(int(timeout_s * 1000))
    decisions = sys.modules.get("observability.decisions")
    if decisions is not None:
        decisions._flush_all()
    alerts = sys.modules.get("observability.alerts")
    if alerts is not None:
        alerts.join_all(timeout_s)
