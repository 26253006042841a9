"""The decision log: the store on both engines (SQLite + FTS5, Postgres + tsvector), the records the graph writes,
and tokens/cost per node and model."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from config.settings import Settings
from graphs.context import Context
from observability.decisions import (
    AlertRecord,
    DecisionRecord,
    SqlDecisionStore,
    decision_target,
    fts_query,
    open_decision_store,
    ts_query,
)
from observability.metrics import REGISTRY, instrument
from storage.sql import connect, database_errors


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def store(sql_target: Callable[[str], str]) -> Iterator[SqlDecisionStore]:
    """The decision log on each backend: SQLite + FTS5, Postgres + tsvector."""
    store = SqlDecisionStore(sql_target("decisions.sqlite"))
    yield store
    store.close()


def rec(trace: str, node: str, **kw: Any) -> DecisionRecord:
    return DecisionRecord(trace_id=trace, node=node, action=kw.pop("action", "run"),
                          outcome=kw.pop("outcome", "ok"), **kw)


def test_records_come_back_by_trace_in_order_with_their_details(store: SqlDecisionStore) -> None:
    store.record(rec("t1", "classify_intent", intent="get_refund", confidence=0.91, details={"candidates": [1, 2]}))
    store.record(rec("t2", "classify_intent", intent="track_order"))
    store.record(rec("t1", "plan_action", tool="issue_refund", outcome="needs_approval", reasoning="refund EUR 20"))
    got = store.by_trace("t1")
    assert [r.node for r in got] == ["classify_intent", "plan_action"]
    assert got[0].details == {"candidates": [1, 2]} and got[0].confidence == pytest.approx(0.91)
    assert got[1].tool == "issue_refund" and got[1].id > got[0].id
    assert store.by_trace("nope") == []


def test_records_are_written_in_the_background_and_kept_on_close(sql_target: Callable[[str], str]) -> None:
    store = SqlDecisionStore(sql_target("d.sqlite"))
    for i in range(250):
        store.record(rec("bulk", f"n{i}"))
    store.close()
    with pytest.raises(ValueError, match="closed"):
        store.record(rec("bulk", "late"))
    again = SqlDecisionStore(sql_target("d.sqlite"))
    assert [r.node for r in again.by_trace("bulk")] == [f"n{i}" for i in range(250)]
    again.close()


def test_full_text_search_needs_every_word_and_ignores_query_syntax(store: SqlDecisionStore) -> None:
    store.record(rec("a", "request_approval", tool="issue_refund", outcome="approved", reasoning="accept by rita",
                     tenant_id="shop1"))
    store.record(rec("b", "request_approval", tool="cancel_order", outcome="refused", reasoning="ignore by sam",
                     tenant_id="shop2"))
    assert [r.trace_id for r in store.search("rita")] == ["a"]
    assert [r.trace_id for r in store.search("request_approval")] == ["b", "a"]  # newest first
    assert store.search("rita refused") == []  # every word must occur in one record
    assert [r.trace_id for r in store.search("issue_ref")] == ["a"]  # prefix on the last word
    assert store.search("issue_ref request") == []  # ... only the last
    assert [r.trace_id for r in store.search("Approval REQUEST")] == ["b", "a"]  # case and order do not matter
    assert store.search("approval_request") == []  # the parts of one word are a phrase
    assert [r.trace_id for r in store.search("request_approval", tenant_id="shop2")] == ["b"]
    for nasty in ('"', "NEAR(", "rita OR", "*", "approved AND NOT", "col:rita", "'); DROP TABLE decisions; --",
                  "a & !b", "x:*", "<->", "rita's"):
        store.search(nasty)  # never a query syntax error (FTS5 or tsquery)
    assert store.search("   ") == [] and fts_query("!!") == "" and ts_query("!!") == ""
    assert ts_query("issue_ref rita") == "('issue' <-> 'ref') & ('rita':*)"
    assert len(store.by_trace("a")) == 1


def test_the_log_is_append_only(store: SqlDecisionStore) -> None:
    store.record(rec("t", "remember", outcome="completed"))
    store.flush()
    conn = connect(store.target, lock="test")
    try:
        for sql in ("UPDATE decisions SET outcome = 'forged'", "DELETE FROM decisions"):
            with pytest.raises(database_errors(), match="append-only"):
                conn.execute(sql)
    finally:
        conn.close()
    assert store.by_trace("t")[0].outcome == "completed"


def test_alerts_are_stored_with_their_delivery(store: SqlDecisionStore) -> None:
    first = store.add_alert(AlertRecord(rule="error_rate", state="firing", value=0.5, threshold=0.2, message="up"))
    second = store.add_alert(AlertRecord(rule="error_rate", state="resolved", value=0.1, threshold=0.2, message="ok"))
    store.set_delivery(first, "ok")
    assert second > first
    assert [(a.id, a.state, a.delivered) for a in store.alerts()] == [(second, "resolved", ""), (first, "firing", "ok")]


def test_open_picks_the_backend_by_target(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite"
    assert open_decision_store(path) is open_decision_store(str(path))  # one store per target per process
    assert isinstance(open_decision_store(f"sqlite:///{tmp_path / 'e.sqlite'}"), SqlDecisionStore)
    with pytest.raises(ValueError, match="'mysql://u:\\*\\*\\*@db/x' is not supported"):
        open_decision_store("mysql://u:pw@db/x")
    url = "postgresql://db.internal/shared"
    assert decision_target(Settings(data_dir=tmp_path)) == str(tmp_path / "decisions.sqlite")
    assert decision_target(Settings(data_dir=tmp_path, database_url=url)) == url
    assert decision_target(Settings(data_dir=tmp_path, database_url=url, decisions_url=str(path))) == str(path)


def test_app_decisions_reads_the_postgres_log(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import app

    store = SqlDecisionStore(pg_url)
    store.record(rec("pg-trace", "classify_intent", intent="get_refund", reasoning="refund asked"))
    store.record(rec("pg-trace", "plan_action", tool="issue_refund", outcome="needs_approval"))
    store.close()
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", pg_url)
    assert app.main(["decisions", "--trace", "pg-trace", "--json"]) == 0
    assert [(r["node"], r["outcome"]) for r in json.loads(capsys.readouterr().out)] == [
        ("classify_intent", "ok"), ("plan_action", "needs_approval")
    ]
    assert app.main(["decisions", "--search", "issue_ref", "--json"]) == 0
    assert [r["node"] for r in json.loads(capsys.readouterr().out)] == ["plan_action"]
    assert not (tmp_path / "data" / "decisions.sqlite").exists()


def test_a_rejected_empty_input_is_recorded_as_refused_not_escalated(services: Any, make_graph: Any) -> None:
    graph = make_graph(services)
    before = value("switchboard_escalations_total", reason="low_confidence")
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    graph.invoke({"messages": [HumanMessage("   ")]}, config, context=Context(user_id="demo"))
    state = graph.get_state(config).values
    assert state["status"] == "rejected"
    records = services.decisions.by_trace(state["trace_id"])
    assert records[0].node == "guard_input" and records[0].outcome == "rejected"
    assert "empty_input" in records[0].reasoning
    assert records[-1].node == "remember" and records[-1].outcome == "rejected"
    assert "escalate" not in [r.node for r in records]
    assert value("switchboard_escalations_total", reason="low_confidence") == before
    assert value("switchboard_tickets_total", intent="none", status="rejected", decision="none") >= 1


def test_an_escalation_is_counted_with_its_reason(with_intent: Any, make_graph: Any) -> None:
    before = value("switchboard_escalations_total", reason="low_confidence")
    human = value("switchboard_human_interventions_total", kind="escalation")
    svc = with_intent("track_order", 0.2)
    graph = make_graph(svc)
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    graph.invoke({"messages": [HumanMessage("blorp the thing")]}, config, context=Context(user_id="demo"))
    snap = graph.get_state(config)
    assert snap.next == ("escalate",)
    assert value("switchboard_escalations_total", reason="low_confidence") == before + 1
    assert value("switchboard_human_interventions_total", kind="escalation") == human + 1
    last = svc.decisions.by_trace(snap.values["trace_id"])[-1]
    assert (last.node, last.action, last.outcome) == ("escalate", "ask_human", "escalated")


class PricedChat(BaseChatModel):
    """A scripted chat model that reports token usage, like a provider does."""

    model_name: str = "gpt-4o-mini"
    reply: str = "ok"

    @property
    def _llm_type(self) -> str:
        return "priced-fake"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        msg = AIMessage(self.reply, usage_metadata={"input_tokens": 1000, "output_tokens": 200, "total_tokens": 1200})
        return ChatResult(generations=[ChatGeneration(message=msg)])


def test_tokens_and_cost_are_counted_per_node_and_model(store: SqlDecisionStore) -> None:
    from llm import LLM
    from llm.prices import PRICES

    node = f"llm_node_{uuid.uuid4().hex[:6]}"
    chain = LLM(models=[("primary", PricedChat())], model_ids={"primary": "gpt-4o-mini"})
    services = type("Svc", (), {"decisions": store, "policy": None, "alerts": None})()

    def ask_model(state: dict) -> dict:
        reply = chain.generate([HumanMessage("hi")])
        return {"draft": reply.text, "usage": reply.usage}

    wrapped = instrument(node, ask_model, services=lambda: services)
    wrapped({"trace_id": "trace-llm-usage-1"})
    wrapped({"trace_id": "trace-llm-usage-2"})
    pin, pout = PRICES["gpt-4o-mini"]
    assert value("switchboard_llm_tokens_total", node=node, model="gpt-4o-mini", kind="prompt") == 2000
    assert value("switchboard_llm_tokens_total", node=node, model="gpt-4o-mini", kind="completion") == 400
    assert value("switchboard_llm_calls_total", node=node, model="gpt-4o-mini") == 2
    assert value("switchboard_llm_cost_usd_total", node=node, model="gpt-4o-mini") == pytest.approx(
        2 * (1000 * pin + 200 * pout) / 1e6)
    record = store.by_trace("trace-llm-usage-1")[0]
    assert (record.prompt_tokens, record.completion_tokens, record.model) == (1000, 200, "gpt-4o-mini")
    assert record.cost_usd == pytest.approx((1000 * pin + 200 * pout) / 1e6)
    chain.generate([HumanMessage("outside any node")])  # not inside a node: not counted
    assert value("switchboard_llm_calls_total", node=node, model="gpt-4o-mini") == 2


def test_prices_come_from_config_and_are_validated(tmp_path: Path) -> None:
    from observability.config import load_observability

    good = load_observability()
    assert good.prices["gpt-4o-mini"] == (0.15, 0.60)
    bad = tmp_path / "observability.yaml"
    cases = "semantic_health: {cases: [{text: x, intent: y, route: escalate}]}\n"
    bad.write_text("version: 1\nprices: {m: [-1, 2]}\n" + cases)
    with pytest.raises(ValueError, match="prices"):
        load_observability(bad)
    bad.write_text("version: 1\nalerts: {error_rate: 2}\nsemantic_health: {cases: [{text: x, intent: y, route: z}]}\n")
    with pytest.raises(ValueError, match=r"alerts\.error_rate.*semantic_health\.cases\.0\.route"):
        load_observability(bad)
