"""The rules cluster/aegra_threads.py and cluster/aegra_auth.py apply on Aegra, without Aegra: which caller a thread
admits, when staff are served under the owner's principal, what a thread update is (by its route, never its body),
and that a run is only admitted where it takes what was admitted. (tests/test_cluster.py runs them on real Aegra
instances.)"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import Auth

from auth import handlers
from auth.audit import MemoryAuditLog
from auth.handlers import owned_by, visible_to
from auth.identity import Identity
from cluster import aegra_auth, aegra_routes
from cluster.aegra_routes import Route
from cluster.aegra_threads import ThreadRow, acting_principal, admits
from config.settings import Settings

DEMO = Identity(user_id="demo")
ALICE = Identity(user_id="alice")
DEMO_OTHER = Identity(user_id="demo", tenant_id="other")  # demo's user id in another tenant
RITA = Identity(user_id="rita", role="agent")
OTTO = Identity(user_id="otto", tenant_id="other", role="agent")
ROOT = Identity(user_id="root", tenant_id="other", role="admin")

DEMOS = ThreadRow("t1", "demo", {"owner": "demo", "tenant": "default", "graph_id": "supervisor"})
RUN_MADE = ThreadRow("t2", "demo", {"owner": "demo", "graph_id": "supervisor"})  # a run created it: no tenant


def test_a_thread_admits_whom_the_handlers_filter_admits() -> None:
    assert admits(visible_to(DEMO), DEMOS, DEMO) and admits(owned_by(DEMO), DEMOS, DEMO)
    assert admits(visible_to(RITA), DEMOS, RITA) and admits(visible_to(ROOT), DEMOS, ROOT)
    assert not admits(visible_to(ALICE), DEMOS, ALICE)
    assert not admits(visible_to(DEMO_OTHER), DEMOS, DEMO_OTHER)  # same principal on Aegra, another tenant
    assert not admits(visible_to(OTTO), DEMOS, OTTO)
    assert not admits(owned_by(RITA), DEMOS, RITA)  # a reviewer's new message on the customer's thread


def test_a_thread_without_a_tenant_is_its_creators_only() -> None:
    assert admits(visible_to(DEMO), RUN_MADE, DEMO)
    assert not admits(visible_to(DEMO_OTHER), ThreadRow("t3", "demo", {"owner": "demo", "tenant": "default"}),
                      DEMO_OTHER)  # fmt: skip
    assert not admits(visible_to(RITA), RUN_MADE, RITA)  # nothing says it is the reviewer's tenant's


def test_a_filter_that_is_not_a_plain_equality_admits_nothing() -> None:
    assert not admits({"tenant": {"$eq": "default"}}, DEMOS, RITA)
    assert not admits({"team": "x"}, DEMOS, RITA)


def test_only_admitted_staff_are_served_under_the_owners_principal() -> None:
    assert acting_principal(visible_to(RITA), DEMOS, RITA) == "demo"
    assert acting_principal(visible_to(ROOT), DEMOS, ROOT) == "demo"
    assert acting_principal(visible_to(OTTO), DEMOS, OTTO) is None
    assert acting_principal(visible_to(RITA), RUN_MADE, RITA) is None
    assert acting_principal(visible_to(DEMO), DEMOS, DEMO) is None  # one's own thread: one's own principal
    assert acting_principal(visible_to(ALICE), DEMOS, ALICE) is None  # customers never
    assert acting_principal(None, DEMOS, ALICE) is None
    moved = ThreadRow("t4", "demo", {"owner": "alice", "tenant": "default"})  # owner metadata not the principal's
    assert acting_principal(visible_to(RITA), moved, RITA) is None


# ---------------------------------------------------------------- cluster/aegra_auth.py's handlers, on a route


@pytest.fixture
def audit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MemoryAuditLog:
    log = MemoryAuditLog()
    monkeypatch.setattr(handlers, "AUDIT", log)
    monkeypatch.setattr(handlers, "SETTINGS", Settings(data_dir=tmp_path))  # the vault key, made on first use
    return log


def on_route(route: Route | None, action: str, who: Identity, value: dict[str, Any], *, admitting: bool = False
             ) -> Any:  # fmt: skip
    """The adapter's handler for `threads.<action>` as Aegra calls it on `route` (none: outside any request)."""
    handler = aegra_auth.auth._handlers[("threads", action)][-1]
    ctx = Auth.types.AuthContext(user=who.as_user(), permissions=[], resource="threads", action=action)  # type: ignore[arg-type]

    async def served() -> Any:  # its own task: the route is this request's only
        if route is not None:
            aegra_routes.serve(route)
        if not admitting:
            return await handler(ctx=ctx, value=value)
        with aegra_routes.admitting():
            return await handler(ctx=ctx, value=value)

    return asyncio.run(served())


def refused(route: Route | None, action: str, who: Identity, value: dict[str, Any], **kw: Any) -> int:
    with pytest.raises(Auth.exceptions.HTTPException) as info:
        on_route(route, action, who, value, **kw)
    return info.value.status_code


STATE_WRITE: Route = ("POST", "/threads/{thread_id}/state")


def test_a_state_write_stays_one_whatever_its_body_names(audit: MemoryAuditLog) -> None:
    write = {"thread_id": "t1", "values": {"status": "completed"}, "as_node": "request_approval"}
    for disguise in ({}, {"run_id": "r1"}, {"action": "interrupt"}, {"metadata": {}}):
        assert refused(STATE_WRITE, "update", DEMO, {**write, **disguise}) == 403, disguise
        assert refused(None, "update", DEMO, {**write, **disguise}) == 403, disguise  # no route known: no cancel
    assert [e.outcome for e in audit.query(kind="policy_refusal")] == ["403"] * 8


def test_a_cancel_is_one_on_the_cancel_routes_only(audit: MemoryAuditLog) -> None:
    for route in aegra_routes.RUN_CANCELS:
        assert on_route(route, "update", DEMO, {"status": "all"}) == owned_by(DEMO), route  # one's own runs
        assert on_route(route, "update", RITA, {"status": "all"}) == visible_to(RITA), route
    assert aegra_routes.served() is None  # each request's route stays in its own task


def test_a_run_is_admitted_only_where_it_takes_what_was_admitted(audit: MemoryAuditLog) -> None:
    from tests.test_pii_checkpoints import TICKET, leaks

    value: dict[str, Any] = {"input": {"messages": [{"role": "user", "content": TICKET}]}, "assistant_id": "supervisor",
                             "context": {"user_id": "alice", "refund_auto_approve_eur": 10_000},
                             "config": {}, "metadata": {"owner": "alice"}}  # fmt: skip
    route: Route = ("POST", "/runs/wait")
    assert refused(route, "create_run", DEMO, dict(value)) == 403  # e.g. Aegra's v2 commands dispatch
    (refusal,) = audit.query(kind="policy_refusal")
    assert refusal.detail["detail"] == aegra_auth.PAST_THE_INTAKE and refusal.action == "threads.create_run"

    returned = on_route(route, "create_run", DEMO, value, admitting=True)
    assert leaks(str(value["input"])) == [] and "[CARD]" in str(value["input"])  # what the run now takes
    assert value["context"]["user_id"] == "demo" and "refund_auto_approve_eur" not in value["context"]
    assert value["metadata"] == owned_by(DEMO) and returned == {"config": value["config"], "context": value["context"]}
    oversized = {**value, "input": {"messages": [{"role": "user", "content": "x" * 5000}]}}
    assert refused(route, "create_run", DEMO, oversized, admitting=True) == 422
