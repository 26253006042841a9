"""Observability: node instrumentation on a real StateGraph, ticket metrics, the metrics/health app."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NotRequired

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt
from starlette.testclient import TestClient
from typing_extensions import TypedDict

from observability.metrics import REGISTRY, instrument, record_ticket, render


@dataclass(frozen=True)
class Ctx:
    user_id: str


class S(TypedDict):
    x: int
    seen: NotRequired[str]
    answer: NotRequired[str]
    trace_id: NotRequired[str]
    status: NotRequired[str]
    intent: NotRequired[str]
    decision: NotRequired[str]
    usage: NotRequired[dict[str, float]]


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def uniq(prefix: str) -> str:
    """Fresh label values per test, so shared module-level counters never leak between tests."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def graph_of(*nodes: tuple[str, Any], checkpointer: Any = None) -> Any:
    g = StateGraph(S, context_schema=Ctx)
    prev = START
    for name, fn in nodes:
        g.add_node(name, fn)
        g.add_edge(prev, name)
        prev = name
    g.add_edge(prev, END)
    return g.compile(checkpointer=checkpointer)


# ------------------------------------------------------------------ instrument()


def test_instrument_keeps_runtime_injection_and_times_each_call() -> None:
    name = uniq("greet")

    def greet(state: S, runtime: Runtime[Ctx]) -> dict:
        """Reads identity from the run context."""
        return {"seen": runtime.context.user_id, "x": state["x"] + 1}

    wrapped = instrument(name, greet)
    assert wrapped.__name__ == "greet" and wrapped.__doc__ == greet.__doc__
    graph = graph_of((name, wrapped))
    out = graph.invoke({"x": 1}, context=Ctx(user_id="alice"))
    assert out == {"x": 2, "seen": "alice"}
    graph.invoke({"x": 5}, context=Ctx(user_id="bob"))
    assert value("switchboard_node_seconds_count", node=name) == 2
    assert value("switchboard_node_seconds_sum", node=name) > 0
    assert value("switchboard_node_errors_total", node=name, error="ValueError") == 0


def test_instrument_counts_errors_by_type_and_reraises() -> None:
    name = uniq("boom")

    def boom(state: S) -> dict:
        raise ValueError("bad order id")

    graph = graph_of((name, instrument(name, boom)))
    for _ in range(2):
        with pytest.raises(ValueError, match="bad order id"):
            graph.invoke({"x": 0}, context=Ctx(user_id="u"))
    assert value("switchboard_node_errors_total", node=name, error="ValueError") == 2
    assert value("switchboard_node_seconds_count", node=name) == 2
    assert value("switchboard_interrupts_total", node=name) == 0


def test_interrupt_is_counted_as_interrupt_not_error_and_resume_completes() -> None:
    name = uniq("approve")

    def approve(state: S, runtime: Runtime[Ctx]) -> dict:
        answer = interrupt({"action_request": {"action": "refund", "args": {"x": state["x"]}}})
        return {"answer": f"{answer}:{runtime.context.user_id}"}

    graph = graph_of((name, instrument(name, approve)), checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": uniq("t")}}
    first = graph.invoke({"x": 3}, cfg, context=Ctx(user_id="carol"))
    assert first["__interrupt__"][0].value["action_request"]["args"] == {"x": 3}
    assert value("switchboard_interrupts_total", node=name) == 1
    assert REGISTRY.get_sample_value("switchboard_node_errors_total", {"node": name, "error": "GraphInterrupt"}) is None

    done = graph.invoke(Command(resume="accept"), cfg, context=Ctx(user_id="carol"))
    assert done["answer"] == "accept:carol"
    assert value("switchboard_interrupts_total", node=name) == 1  # the resumed run did not pause again
    assert value("switchboard_node_seconds_count", node=name) == 2  # paused call + resumed call


def test_instrument_wraps_async_nodes() -> None:
    name = uniq("async_node")

    async def anode(state: S, runtime: Runtime[Ctx]) -> dict:
        if state["x"] < 0:
            raise KeyError("missing")
        return {"seen": runtime.context.user_id}

    graph = graph_of((name, instrument(name, anode)))
    assert asyncio.run(graph.ainvoke({"x": 1}, context=Ctx(user_id="dave")))["seen"] == "dave"
    with pytest.raises(KeyError):
        asyncio.run(graph.ainvoke({"x": -1}, context=Ctx(user_id="dave")))
    assert value("switchboard_node_seconds_count", node=name) == 2
    assert value("switchboard_node_errors_total", node=name, error="KeyError") == 1


# ------------------------------------------------------------------ record_ticket()


def test_record_ticket_counts_each_status_once_per_ticket() -> None:
    intent = uniq("track_order")
    tickets = {"intent": intent, "status": "awaiting_approval", "decision": "auto"}
    trace = uniq("trace")
    paused = {**tickets, "trace_id": trace}
    record_ticket(paused)
    record_ticket(paused)  # the same result again (graph and CLI both record): no double count
    assert value("switchboard_tickets_total", **tickets) == 1
    record_ticket({**paused, "status": "completed"})  # resumed: same ticket, new status
    assert value("switchboard_tickets_total", **{**tickets, "status": "completed"}) == 1
    assert value("switchboard_tickets_total", **tickets) == 1


def test_a_rejected_input_is_not_counted_as_an_escalation() -> None:
    intent = uniq("none")
    record_ticket({"status": "rejected", "intent": intent, "decision": "escalate", "trace_id": uniq("t")})
    assert value("switchboard_tickets_total", intent=intent, status="rejected", decision="none") == 1
    assert value("switchboard_tickets_total", intent=intent, status="rejected", decision="escalate") == 0


def test_record_ticket_without_trace_or_intent_uses_none_label() -> None:
    decision = uniq("escalate")
    record_ticket({"status": "escalated", "intent": None, "decision": decision, "usage": {}})
    record_ticket({"status": "escalated", "intent": None, "decision": decision})
    assert value("switchboard_tickets_total", intent="none", status="escalated", decision=decision) == 2


def test_instrument_ticket_node_records_final_state_once_with_cli() -> None:
    name, intent = uniq("remember"), uniq("refund")

    def remember(state: S) -> dict:
        return {}

    graph = graph_of((name, instrument(name, remember, ticket=True)))
    state = {
        "x": 0,
        "trace_id": uniq("tr"),
        "status": "completed",
        "intent": intent,
        "decision": "review",
        "usage": {"prompt_tokens": 7},
    }
    out = graph.invoke(state, context=Ctx(user_id="u"))
    record_ticket(out)  # what graphs.tickets.result_of would report for the same ticket
    assert value("switchboard_tickets_total", intent=intent, status="completed", decision="review") == 1


def test_render_is_prometheus_text() -> None:
    record_ticket({"status": "completed", "intent": "render_probe", "decision": "auto"})
    text = render().decode()
    assert "# TYPE switchboard_node_seconds histogram" in text
    assert "# TYPE switchboard_tickets_total counter" in text
    assert 'switchboard_tickets_total{decision="auto",intent="render_probe",status="completed"}' in text


def test_openmetrics_carries_the_trace_id_as_exemplar() -> None:
    name, trace = uniq("exemplar"), uniq("trace-exemplar")
    graph = graph_of((name, instrument(name, lambda state: {"x": 1})))
    graph.invoke({"x": 0, "trace_id": trace}, context=Ctx(user_id="u"))
    plain = render().decode()
    assert trace not in plain  # classic text format has no exemplars
    text = render(openmetrics=True).decode()
    buckets = [ln for ln in text.splitlines() if ln.startswith("switchboard_node_seconds_bucket") and name in ln]
    assert any(f'# {{trace_id="{trace}"}}' in line for line in buckets), buckets


# ------------------------------------------------------------------ HTTP app


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("OPENAI_API_KEY", "SWITCHBOARD_LLM_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))
    with sqlite3.connect(tmp_path / "shop.sqlite") as conn:
        conn.execute("create table orders (id integer)")
    return tmp_path


@pytest.fixture
def client() -> TestClient:
    from observability.http import app

    return TestClient(app)


def loaded(monkeypatch: pytest.MonkeyPatch, data_dir: Path, **attrs: Any) -> None:
    """Pretend get_services() already built services for this data dir (duck-typed)."""
    from graphs import services as services_module

    monkeypatch.setitem(services_module._instances, data_dir.resolve(), SimpleNamespace(**attrs))


def knowledge_with(kb: int) -> SimpleNamespace:
    return SimpleNamespace(count=lambda: {"kb": kb, "cases": 0, "prefs": 0})


def test_metrics_endpoint_serves_prometheus_text(client: TestClient) -> None:
    name = uniq("served")
    instrument(name, lambda state: {})({})
    resp = client.get("/switchboard/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    assert f'switchboard_node_seconds_count{{node="{name}"}} 1.0' in resp.text
    om = client.get("/switchboard/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.rstrip().endswith("# EOF")


def test_health_ok_offline_without_loaded_services(client: TestClient, data_dir: Path) -> None:
    resp = client.get("/switchboard/health")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok"
    assert body["checks"]["data_dir"]["status"] == "ok"
    assert body["checks"]["shop_db"]["status"] == "ok"
    assert body["checks"]["knowledge"] == {"status": "not_loaded"}
    assert body["checks"]["llm"] == {"status": "offline"}


def test_health_reads_loaded_services_and_degrades(
    client: TestClient, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded(monkeypatch, data_dir, knowledge=knowledge_with(33), llm=None)
    assert client.get("/switchboard/health").json()["checks"]["knowledge"] == {"status": "ok", "kb": 33}

    loaded(monkeypatch, data_dir, knowledge=knowledge_with(0), llm=None)
    resp = client.get("/switchboard/health")
    assert resp.status_code == 503
    assert resp.json()["status"] == "degraded"
    assert resp.json()["checks"]["knowledge"]["status"] == "fail"


def test_health_reports_breakers_and_degrades_when_all_open(
    client: TestClient, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llm import LLM, CircuitBreaker

    monkeypatch.setenv("OPENAI_API_KEY", "test-key-not-used")
    breakers = {"primary": CircuitBreaker(clock=lambda: 0.0), "secondary": CircuitBreaker(clock=lambda: 0.0)}
    chain = LLM(models=[(n, FakeListChatModel(responses=["x"])) for n in breakers], breakers=breakers)
    loaded(monkeypatch, data_dir, knowledge=knowledge_with(5), llm=chain)
    for _ in range(3):
        breakers["primary"].record(False)
    body = client.get("/switchboard/health").json()
    assert body["status"] == "ok"  # the secondary model still answers
    assert body["checks"]["llm"]["breakers"] == {"primary": "open", "secondary": "closed"}
    for _ in range(3):
        breakers["secondary"].record(False)
    resp = client.get("/switchboard/health")
    assert resp.status_code == 503
    assert resp.json()["checks"]["llm"]["status"] == "open"


def test_health_fails_on_corrupt_shop_db(client: TestClient, data_dir: Path) -> None:
    (data_dir / "shop.sqlite").write_bytes(b"this is not a database" * 100)
    resp = client.get("/switchboard/health")
    assert resp.status_code == 503
    assert resp.json()["checks"]["shop_db"]["status"] == "fail"


def test_routes_do_not_collide_with_langgraph_api_builtins() -> None:
    from observability.http import app

    paths = {route.path for route in app.routes}
    named = {"/health", "/health/live", "/health/semantic", "/dashboard", "/dashboard/data.json",
             "/dashboard/dashboard.js"}
    assert paths == {"/switchboard/metrics", *named, *(f"/switchboard{p}" for p in named)}
    builtin = {"/", "/ok", "/info", "/metrics", "/docs", "/openapi.json"}  # langgraph_api.api meta routes
    assert not paths & builtin


def test_liveness_answers_without_any_check(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path / "missing" / "deeper"))
    for path in ("/health/live", "/switchboard/health/live"):
        resp = client.get(path)
        assert resp.status_code == 200 and resp.json()["status"] == "alive"


# ------------------------------------------------------------------ progress bars


def test_progress_bars_only_for_a_terminal_and_never_with_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from observability.progress import bar, enabled

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert enabled() is True and enabled(json_out=True) is False
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert enabled() is False
    with bar(3, "work", enabled=False) as advance:
        for _ in range(3):
            advance()
    with bar(2, "work", enabled=True) as advance:  # on stderr, whatever stdout is
        advance(2, description="done")
    assert capsys.readouterr().out == ""


def test_health_checks_the_configured_postgres_shop_not_the_file(tmp_path: Path, pg_url: str) -> None:
    from config.settings import Settings
    from observability.http import health
    from tools.shop import ShopDB

    (tmp_path / "shop.sqlite").write_bytes(b"this is not a database" * 100)  # ignored: the shop is in Postgres
    settings = Settings(data_dir=tmp_path, database_url=pg_url)
    assert health(settings, instances={})["checks"]["shop_db"]["status"] == "not_seeded"
    with ShopDB(pg_url) as shop:
        shop.seed()
    check = health(settings, instances={})["checks"]["shop_db"]
    assert check == {"status": "ok", "path": pg_url}
    down = Settings(data_dir=tmp_path, database_url="postgresql://nobody:secret@127.0.0.1:1/none")
    body = health(down, instances={})
    assert body["status"] == "degraded" and body["checks"]["shop_db"]["status"] == "fail"
    assert "secret" not in str(body) and body["checks"]["shop_db"]["path"] == "postgresql://nobody:***@127.0.0.1:1/none"
