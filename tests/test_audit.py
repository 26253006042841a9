"""The audit log: append-only storage, what each boundary records (tools, decisions, auth), the shop journal
merged in by event id, and `python app.py audit`."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.types import Command
from langgraph_sdk import Auth

import tools.registry as registry
from auth import handlers
from auth.audit import AuditEvent, MemoryAuditLog, SqlAuditLog, open_audit, query_events
from auth.identity import Identity
from auth.keys import KeyStore
from config.settings import Settings
from graphs.context import Context
from storage.sql import connect, database_errors
from tools.shop import Caller, ShopDB, run_tool


def event(**over: Any) -> AuditEvent:
    base: dict[str, Any] = dict(kind="tool_call", actor="demo", action="get_order", outcome="ok", thread_id="t1")
    return AuditEvent(**{**base, **over})


# ---------------------------------------------------------------- the store


@pytest.fixture
def log(sql_target: Callable[[str], str]) -> Iterator[SqlAuditLog]:
    """The audit log on each backend: a SQLite file, the test's Postgres database."""
    store = SqlAuditLog(sql_target("audit.sqlite"))
    yield store
    store.close()


def raw(target: str, sql: str) -> list[tuple]:
    conn = connect(target, lock="test")
    try:
        return [tuple(r) for r in conn.execute(sql).fetchall()]
    finally:
        conn.close()


def test_the_log_is_append_only(log: SqlAuditLog) -> None:
    log.append(event(id="e1"))
    assert not any(hasattr(log, name) for name in ("update", "delete", "remove", "clear"))
    for forgery in ("UPDATE audit_events SET outcome = 'forged'", "DELETE FROM audit_events"):
        with pytest.raises(database_errors(), match="append-only"):
            raw(log.target, forgery)
    log.append(event(id="e1", outcome="replayed"))  # the same event again (a replayed node) is not a second row
    assert [(e.id, e.outcome) for e in log.query()] == [("e1", "ok")]
    if log.path is not None:
        assert log.path.stat().st_mode & 0o077 == 0, "the audit file is private to its owner"


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def any_log(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        return MemoryAuditLog()
    return SqlAuditLog(request.getfixturevalue("pg_url") if request.param == "postgres" else tmp_path / "a.sqlite")


def test_queries_filter_by_thread_user_tenant_and_kind(any_log: Any) -> None:
    log = any_log
    log.append(event(id="1", actor="demo", subject="demo", tenant="default"))
    log.append(event(id="2", kind="approval", actor="rita", role="agent", subject="demo", action="cancel_order"))
    log.append(event(id="3", actor="alice", subject="alice", thread_id="t2", tenant="other"))
    assert [e.id for e in log.query(thread_id="t1")] == ["1", "2"]
    assert [e.id for e in log.query(user_id="demo")] == ["1", "2"]  # what demo did, and what was done for demo
    assert [e.id for e in log.query(user_id="rita")] == ["2"]
    assert [e.id for e in log.query(kind="approval")] == ["2"]
    assert [e.id for e in log.query(tenant="other")] == ["3"]


def test_personal_data_in_details_is_masked(log: SqlAuditLog) -> None:
    log.append(event(id="x", detail={"args": {"field": "email", "value": "dana.new@example.com"}}))
    [stored] = log.query()
    assert stored.detail["args"]["value"] == "d***@example.com"
    assert "dana.new@example.com" not in str(raw(log.target, "SELECT * FROM audit_events"))
    if log.path is not None:
        assert "dana.new@example.com" not in log.path.read_bytes().decode("utf-8", "ignore")


def test_the_settings_pick_the_backend(tmp_path: Path) -> None:
    url = "postgresql://localhost/shared"
    assert open_audit(Settings(data_dir=tmp_path)).target == str(tmp_path / "audit.sqlite")  # type: ignore[attr-defined]
    assert open_audit(Settings(data_dir=tmp_path, database_url=url)).target == url  # type: ignore[attr-defined]
    own = Settings(data_dir=tmp_path, database_url=url, audit_url=str(tmp_path / "own.sqlite"))
    assert open_audit(own).target == str(tmp_path / "own.sqlite")  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="is not supported: use a file path, sqlite:///path or postgresql://"):
        open_audit(Settings(data_dir=tmp_path, audit_url="mysql://u:pw@db/audit"))
    assert not (tmp_path / "audit.sqlite").exists(), "opening connects to nothing"


# ---------------------------------------------------------------- tool calls


@pytest.fixture
def shop(sql_target: Callable[[str], str]) -> Iterator[ShopDB]:
    """The shop with its journal and the audit log on each backend (on Postgres in one database, as deployed)."""
    db = ShopDB(sql_target("shop.sqlite"), audit=SqlAuditLog(sql_target("audit.sqlite")))
    db.seed()
    yield db
    db.close()


def test_every_tool_call_is_recorded_with_who_what_and_trace(shop: ShopDB) -> None:
    reader = Caller("retrieve_knowledge", "demo", tenant_id="default", thread_id="t1", trace_id="tr1")
    writer = Caller("execute_action", "demo", role="agent", approver_id="rita", thread_id="t1", trace_id="tr1")
    run_tool(shop, "get_order", {"order_id": 1004}, caller=reader)
    run_tool(shop, "get_order", {"order_id": 1011}, caller=reader)  # alice's: refused as not found
    run_tool(shop, "cancel_order", {"order_id": 1008}, caller=Caller("plan_action", "demo"), dry_run=True)
    run_tool(shop, "cancel_order", {"order_id": 1008}, caller=writer, idempotency_key="k1")
    run_tool(shop, "cancel_order", {"order_id": "x"}, caller=writer)
    rows = [(e.node, e.action, e.outcome, e.actor, e.subject, e.role) for e in shop.audit.query()]
    assert rows == [
        ("retrieve_knowledge", "get_order", "ok", "demo", "demo", "customer"),
        ("retrieve_knowledge", "get_order", "refused", "demo", "demo", "customer"),
        ("plan_action", "cancel_order", "ok", "demo", "demo", "customer"),
        ("execute_action", "cancel_order", "ok", "rita", "demo", "agent"),
        ("execute_action", "cancel_order", "invalid", "rita", "demo", "agent"),
    ]
    events = shop.audit.query()
    assert all((e.tenant, e.kind) == ("default", "tool_call") for e in events)
    assert events[0].trace_id == "tr1" and events[2].detail["mode"] == "dry_run"
    # The write's event carries the id of the shop journal row committed with the change.
    journal = shop.query("SELECT event_id, approver, node, thread_id, trace_id FROM audit_log ORDER BY id")
    assert journal[0] == {"event_id": events[3].id, "approver": "rita", "node": "execute_action",
                          "thread_id": "t1", "trace_id": "tr1"}  # fmt: skip


def test_a_committed_write_is_in_the_audit_even_when_its_copy_is_lost(
    shop: ShopDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    lost: list[AuditEvent] = []
    monkeypatch.setattr(registry, "record", lambda audit, e: lost.append(e))  # the process "died" after commit
    assert run_tool(shop, "cancel_order", {"order_id": 1009}, caller=Caller("execute_action", "demo")).ok
    assert shop.audit.query() == [] and len(lost) == 1
    merged = query_events(shop.audit, shop=shop.target)
    assert [(e.id, e.action, e.outcome) for e in merged] == [(lost[0].id, "cancel_order", "ok")]
    shop.audit.append(lost[0])  # once the copy arrives, the event is listed once
    assert [e.id for e in query_events(shop.audit, shop=shop.target)] == [lost[0].id]


# ---------------------------------------------------------------- approvals, reviews, escalations


def test_approvals_and_escalations_are_recorded_once(services: Any, make_graph: Any, backend: str) -> None:
    graph = make_graph(services)
    config = {"configurable": {"thread_id": "audit-1"}}
    reviewer = Context(user_id="demo", role="agent", approver_id="rita")
    graph.invoke({"messages": [HumanMessage("Please cancel order 1008, wrong keyboard.")]}, config,
                 context=Context(user_id="demo"))  # fmt: skip
    graph.invoke(Command(resume={"type": "accept"}), config, context=reviewer)
    trace = graph.get_state(config).values["trace_id"]

    human = {"configurable": {"thread_id": "audit-2"}}
    graph.invoke({"messages": [HumanMessage("I want to talk to a real person, not a bot.")]}, human,
                 context=Context(user_id="demo"))  # fmt: skip
    assert graph.get_state(human).next == ("escalate",)
    graph.invoke(Command(resume={"type": "response", "args": "Hi, Rita here."}), human, context=reviewer)

    decisions = [(e.thread_id, e.kind, e.action, e.outcome, e.actor, e.role, e.subject)
                 for e in services.audit.query() if e.kind != "tool_call"]  # fmt: skip
    assert decisions == [
        ("audit-1", "approval", "cancel_order", "accept", "rita", "agent", "demo"),
        ("audit-2", "escalation", "handoff_to_human", "requested", "demo", "customer", "demo"),
        ("audit-2", "escalation", "handoff_to_human", "resolved", "rita", "agent", "demo"),
    ]
    approval = next(e for e in services.audit.query(kind="approval"))
    assert approval.trace_id == trace and approval.node == "request_approval"
    writes = [e for e in services.audit.query(thread_id="audit-1") if e.node == "execute_action"]
    assert [(e.action, e.outcome, e.actor) for e in writes] == [("cancel_order", "ok", "rita")]


# ---------------------------------------------------------------- auth failures


def test_auth_failures_are_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    audit = MemoryAuditLog()
    monkeypatch.setattr(handlers, "AUDIT", audit)
    keys = KeyStore(tmp_path / "auth.sqlite")
    monkeypatch.setattr(handlers, "KEYS", keys)
    key, record = keys.create("demo")
    keys.revoke(record.key_id)
    scope = {"client": ("127.0.0.1", 5), "method": "POST", "path": "/threads/search"}
    for headers in ({}, {b"authorization": f"Bearer {key}".encode()}):
        with pytest.raises(Auth.exceptions.HTTPException):
            handlers.authenticate(headers, scope)
    user = Identity(user_id="demo").as_user()
    ctx = Auth.types.AuthContext(user=user, permissions=[], resource="assistants", action="create")  # type: ignore[arg-type]
    with pytest.raises(Auth.exceptions.HTTPException):
        asyncio.run(handlers.on_assistant_change(ctx=ctx, value={"thread_id": "t9"}))
    rows = [(e.kind, e.actor, e.role, e.action, e.outcome) for e in audit.query()]
    assert rows == [
        ("auth_failure", "anonymous", "anonymous", "POST /threads/search", "401"),
        ("auth_failure", f"key:{record.key_id}", "anonymous", "POST /threads/search", "401"),
        ("policy_refusal", "demo", "customer", "assistants.create", "403"),
    ]
    assert audit.query()[2].thread_id == "t9" and "only admins" in audit.query()[2].detail["detail"]


# ---------------------------------------------------------------- the CLI


def test_app_audit_queries_by_thread_and_user(cli: Any) -> None:
    _, out, _ = cli("ask", "Please cancel order 1008, I ordered the wrong keyboard.", "--json")
    thread = out["thread_id"]
    assert cli("resume", thread, "--approve", "--as", "rita", "--json")[0] == 0
    cli("ask", "Where is my order 1013?", "--user", "alice", "--json")

    code, got, _ = cli("audit", "--thread", thread, "--json")
    assert code == 0 and got["count"] == len(got["events"]) > 0
    kinds = {(e["kind"], e["action"], e["outcome"]) for e in got["events"]}
    assert ("approval", "cancel_order", "accept") in kinds and ("tool_call", "cancel_order", "ok") in kinds
    assert {e["thread_id"] for e in got["events"]} == {thread}
    approval = next(e for e in got["events"] if e["kind"] == "approval")
    assert (approval["actor"], approval["role"], approval["subject"], approval["trace_id"]) == (
        "rita", "admin", "demo", out["trace_id"]
    )

    _, alice, _ = cli("audit", "--user", "alice", "--json")
    assert alice["count"] > 0 and all("alice" in (e["actor"], e["subject"]) for e in alice["events"])
    _, rita, _ = cli("audit", "--user", "rita", "--kind", "approval", "--json")
    assert [e["thread_id"] for e in rita["events"]] == [thread]

    code, text, _ = cli("audit", "--thread", thread)
    assert code == 0 and "approval" in text and "rita for demo" in text and text.rstrip().endswith("event(s)")
    code, _, err = cli("audit", "--thread", "bad id!")
    assert code == 2 and "invalid thread id" in err and len(err.strip().splitlines()) == 1


def test_app_audit_reads_the_postgres_log_and_the_shop_journal(
    cli: Any, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With SWITCHBOARD_DATABASE_URL the CLI reads the cluster's log (and the shop's journal in the same database),
    not a file in its own data directory."""
    shop = ShopDB(pg_url, audit=SqlAuditLog(pg_url))
    shop.seed()
    lost: list[AuditEvent] = []
    monkeypatch.setattr(registry, "record", lambda audit, e: lost.append(e))  # this copy never reached the log
    assert run_tool(shop, "cancel_order", {"order_id": 1009}, caller=Caller("execute_action", "demo",
                                                                              thread_id="pg-1")).ok  # fmt: skip
    shop.audit.append(event(id="pg-approval", kind="approval", actor="rita", role="agent", subject="demo",
                            action="cancel_order", outcome="accept", thread_id="pg-1"))  # fmt: skip
    shop.close()
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", pg_url)
    code, got, _ = cli("audit", "--thread", "pg-1", "--json")
    assert code == 0
    assert sorted((e["id"], e["kind"], e["outcome"]) for e in got["events"]) == sorted(
        [(lost[0].id, "tool_call", "ok"), ("pg-approval", "approval", "accept")]
    )
    assert not (Path(os.environ["SWITCHBOARD_DATA_DIR"]) / "audit.sqlite").exists()
