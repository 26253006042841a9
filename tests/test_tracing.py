"""One trace id per ticket: made at the ticket's start, kept on resume, in every decision record and log line;
LangSmith only with a key; OpenTelemetry spans to an OTLP endpoint (a loopback collector the test starts)."""

from __future__ import annotations

import http.server
import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any, NotRequired

import pytest
from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command
from typing_extensions import TypedDict

from graphs.context import Context
from observability import tracing
from observability.metrics import instrument


def ask(graph: Any, text: str, thread: str, **metadata: Any) -> Any:
    config = {"configurable": {"thread_id": thread}, "metadata": metadata}
    graph.invoke({"messages": [HumanMessage(text)]}, config, context=Context(user_id="demo"))
    return graph.get_state({"configurable": {"thread_id": thread}})


def test_each_ticket_gets_its_own_trace_id_and_a_resume_keeps_it(with_intent: Any, make_graph: Any) -> None:
    svc = with_intent("cancel_order")
    graph = make_graph(svc)
    thread = str(uuid.uuid4())
    first = ask(graph, "Please cancel order 1008, I ordered the wrong keyboard.", thread)
    trace = first.values["trace_id"]
    assert first.next == ("request_approval",)
    graph.invoke(Command(resume={"type": "accept"}), {"configurable": {"thread_id": thread}},
                 context=Context(user_id="demo", role="agent"))
    done = graph.get_state({"configurable": {"thread_id": thread}})
    assert done.values["status"] == "completed" and done.values["trace_id"] == trace

    records = svc.decisions.by_trace(trace)
    nodes = [r.node for r in records]
    assert nodes[0] == "guard_input" and nodes[-1] == "remember"
    assert nodes.count("request_approval") == 2  # the pause, then the human's answer
    assert [r.outcome for r in records if r.node == "request_approval"] == ["awaiting_approval", "approved"]
    assert all(r.thread_id == thread and r.user_id == "demo" and r.tenant_id == "default" for r in records)
    assert next(r for r in records if r.node == "execute_action").outcome == "ok"

    second = ask(graph, "Where is my order 1006?", thread)
    assert second.values["trace_id"] != trace
    assert svc.decisions.by_trace(second.values["trace_id"])[0].node == "guard_input"
    assert len(svc.decisions.by_trace(trace)) == len(records)  # the old ticket's trail is unchanged


def test_a_trace_id_from_the_run_metadata_is_used(services: Any, make_graph: Any) -> None:
    graph = make_graph(services)
    given = f"upstream-{uuid.uuid4().hex}"
    snap = ask(graph, "Where is my order 1006?", str(uuid.uuid4()), trace_id=given)
    assert snap.values["trace_id"] == given
    assert [r.node for r in services.decisions.by_trace(given)][:3] == ["guard_input", "compress_context",
                                                                        "classify_intent"]
    bad = ask(graph, "Where is my order 1006?", str(uuid.uuid4()), trace_id="x y")  # not a trace id: a new one
    assert bad.values["trace_id"] != "x y" and len(bad.values["trace_id"]) == 36


class S(TypedDict):
    x: int
    trace_id: NotRequired[str]


def test_log_lines_inside_a_node_carry_the_ticket_trace_id(caplog: pytest.LogCaptureFixture) -> None:
    tracing.install_log_context()
    logger = logging.getLogger("switchboard.test_tracing")

    def start(state: S) -> dict:
        logger.warning("starting")
        return {"trace_id": tracing.current_trace_id(), "x": 1}

    def work(state: S) -> dict:
        logger.warning("working")
        return {"x": 2}

    g = StateGraph(S)
    g.add_node("start", instrument("start", start, starts_ticket=True))
    g.add_node("work", instrument("work", work))
    g.add_edge(START, "start")
    g.add_edge("start", "work")
    g.add_edge("work", END)
    with caplog.at_level(logging.WARNING, logger="switchboard.test_tracing"):
        out = g.compile().invoke({"x": 0})
        logger.warning("outside")
    by_message = {r.getMessage(): r for r in caplog.records}
    assert by_message["starting"].trace_id == out["trace_id"] == by_message["working"].trace_id
    assert (by_message["starting"].node, by_message["working"].node) == ("start", "work")
    assert not hasattr(by_message["outside"], "trace_id")  # the server's own lines stay as they were
    formatter = tracing.log_formatter()
    assert f"trace_id={out['trace_id']} node=work" in formatter.format(by_message["working"])
    assert "trace_id=- node=-" in formatter.format(by_message["outside"])


@pytest.mark.parametrize(
    ("env", "on", "switch"),
    [
        ({}, False, "false"),
        ({"LANGSMITH_TRACING": "true"}, False, "false"),  # no key: off, whatever the switch says
        ({"LANGSMITH_API_KEY": "k"}, True, "true"),
        ({"LANGCHAIN_API_KEY": "k", "LANGCHAIN_TRACING_V2": "false"}, False, "false"),  # explicitly off stays off
    ],
)
def test_langsmith_traces_only_with_a_key(env: dict[str, str], on: bool, switch: str) -> None:
    env = dict(env)
    assert tracing.configure_langsmith(env) is on
    assert env["LANGSMITH_TRACING"] == switch


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, bytes]], threading.Event]]:
    """A loopback OTLP/HTTP collector: records (path, body) of every POST."""
    received: list[tuple[str, bytes]] = []
    got = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()
            got.set()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", received, got
    finally:
        server.shutdown()
        server.server_close()


def test_no_endpoint_no_opentelemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    tracing.reset_otel()
    try:
        assert tracing.otel_tracer() is None
        with tracing.node_span("n", "t" * 36) as span:
            assert span is None
    finally:
        tracing.reset_otel()


def test_spans_are_exported_to_the_otlp_endpoint_with_the_ticket_trace_id(
    collector: tuple[str, list[tuple[str, bytes]], threading.Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, received, got = collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    tracing.reset_otel()
    try:
        trace = str(uuid.uuid4())
        node = instrument("otel_probe", lambda state: {"x": 1})
        node({"x": 0, "trace_id": trace})
        tracing.otel_flush()
        assert got.wait(10), "no span reached the collector"
    finally:
        tracing.reset_otel()
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    path, body = received[0]
    assert path == "/v1/traces"
    request = ExportTraceServiceRequest.FromString(body)
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    probe = next(s for s in spans if s.name == "node otel_probe")
    assert probe.trace_id == uuid.UUID(trace).bytes
    attrs = {a.key: a.value.string_value for a in probe.attributes}
    assert attrs["switchboard.trace_id"] == trace and attrs["switchboard.node"] == "otel_probe"


def test_the_technical_analysts_decision_record_names_the_error_codes_it_triaged() -> None:
    from observability.decision_points import analyze_technical

    update = {"analysis": {"error_codes": ["CHK-500"], "known_issues": [{"id": "kb-ki-chk-500-checkout-error"}]}}
    fields = analyze_technical({}, update, [])
    assert fields["outcome"] == "known_issue"
    assert fields["details"] == {"known_issues": ["kb-ki-chk-500-checkout-error"], "codes": ["CHK-500"]}
    assert analyze_technical({}, {"analysis": {}}, [])["details"] == {"known_issues": [], "codes": []}
