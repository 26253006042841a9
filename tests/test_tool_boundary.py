"""Issue 9, tools: the boundary around every tool call (tools.boundary, via tools.registry.execute).

A tool that raises or returns malformed data is caught, recorded (metric, audit row for a write, the error in the
result) and the ticket degrades to a human instead of crashing or answering from garbage; a circuit breaker per tool
refuses a failing tool and lets exactly one trial through after its cool-down; a busy database is retried after a
jittered, exponential wait that the test records instead of sleeping. Clocks are injected; nothing sleeps.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tools.boundary as boundary
from config.settings import ErrorPolicies, Settings
from llm import MemoryStore, RedisStore
from observability.metrics import REGISTRY
from tests.clock import FakeClock
from tests.conftest import require_service
from tests.test_graph import run, waiting_on
from tests.test_shop_tools import as_caller
from tools.shop import TOOLS, ShopDB, run_tool


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[ShopDB]:
    with ShopDB(tmp_path / "shop.sqlite") as db:
        db.seed()
        yield db


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def sleeps(clock: FakeClock) -> Iterator[list[float]]:
    """A boundary with small, known policies, a fake clock and recorded (never slept) waits."""
    waits: list[float] = []
    policies = ErrorPolicies.model_validate(
        {
            "defaults": {
                "tool": {
                    "attempts": 3,
                    "initial_s": 0.1,
                    "factor": 2,
                    "max_s": 0.3,
                    "jitter_s": 0.05,
                    "breaker": {"failure_threshold": 2, "cooldown_s": 10},
                }
            },
            "tools": {"issue_refund": {"attempts": 1}},
        }
    )
    boundary._current = boundary.ToolBoundary(policies, MemoryStore(), clock=clock, sleep=waits.append)
    yield waits
    boundary.reset()


def replace_fn(monkeypatch: pytest.MonkeyPatch, name: str, fn: Any) -> None:
    monkeypatch.setitem(TOOLS, name, dataclasses.replace(TOOLS[name], fn=fn))


def failures(tool: str, kind: str) -> float:
    return REGISTRY.get_sample_value("switchboard_tool_failures_total", {"tool": tool, "kind": kind}) or 0.0


def breaker(shop: ShopDB, tool: str) -> Any:
    return boundary.boundary().breaker(tool, boundary.db_key(shop))


# ------------------------------------------------------------------ raised and malformed, caught at the boundary


def test_a_tool_that_raises_is_caught_recorded_and_counted_against_its_breaker(
    shop: ShopDB, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(ctx: Any, args: Any) -> dict[str, Any]:
        raise RuntimeError("disk on fire")

    replace_fn(monkeypatch, "get_order", broken)
    before = failures("get_order", "raised")
    result = run_tool(shop, "get_order", {"order_id": 1004}, caller=as_caller("get_order", "demo"))
    assert not result.ok and result.error == "internal error in get_order: RuntimeError"
    assert failures("get_order", "raised") == before + 1
    assert breaker(shop, "get_order").failures == 1 and sleeps == []  # a bug is not retried


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (["not", "a", "mapping"], "expected a mapping, got list"),
        (None, "expected a mapping, got NoneType"),
        ({"order": "garbage"}, "result.order_id is missing"),
        ({"order_id": "1004", "status": "x", "currency": "EUR", "items": [], "total": 1}, "result.order_id is a str"),
        ({"order_id": True, "status": "x", "currency": "EUR", "items": [], "total": 1}, "result.order_id is a bool"),
        ({"order_id": 1004, "status": "x", "currency": "EUR", "items": [object()], "total": 1}, "items[0] is a obj"),
        ({"order_id": 1004, "status": "x", "currency": "EUR", "items": [], "total": math.nan}, "result.total is nan"),
        ({1: "x"}, "non-text key 1"),
    ],
)
def test_malformed_results_are_refused_with_the_reason(
    shop: ShopDB, sleeps: list[float], monkeypatch: pytest.MonkeyPatch, bad: Any, problem: str
) -> None:
    replace_fn(monkeypatch, "get_order", lambda ctx, args: bad)
    before = failures("get_order", "malformed")
    result = run_tool(shop, "get_order", {"order_id": 1004}, caller=as_caller("get_order", "demo"))
    assert not result.ok and result.error is not None
    assert result.error.startswith("malformed result from get_order: ") and problem in result.error
    assert failures("get_order", "malformed") == before + 1


def test_every_shipped_tool_result_passes_its_own_contract(shop: ShopDB, sleeps: list[float]) -> None:
    calls = [
        ("get_order", {"order_id": 1004}),
        ("list_orders", {}),
        ("get_account", {}),
        ("get_invoice", {"order_id": 1004}),
        ("get_refund_status", {"order_id": 1002}),
        ("issue_refund", {"order_id": 1004, "amount": 1.0, "currency": "EUR", "reason": "test"}),
        ("cancel_order", {"order_id": 1008, "reason": "wrong item"}),
        ("update_shipping_address", {"order_id": 1009, "address": "Hauptstrasse 5, 10115 Berlin, Germany"}),
        ("update_account", {"field": "phone", "value": "+49 30 1234567"}),
        ("set_newsletter_subscription", {"subscribed": False}),
        ("create_ticket", {"subject": "Help", "body": "Please call me back about my order."}),
    ]
    assert {name for name, _ in calls} | {"delete_account"} == set(TOOLS) == set(boundary.RESULT_KEYS)
    for name, args in calls:
        result = run_tool(shop, name, args, caller=as_caller(name, "demo"), idempotency_key=f"k-{name}")
        assert result.ok, (name, result.error)
    erin = run_tool(
        shop,
        "delete_account",
        {"reason": "moving"},
        caller=as_caller("delete_account", "erin"),
        idempotency_key="k-delete",
    )
    assert erin.ok, erin.error


def test_a_write_that_returns_garbage_is_rolled_back_and_audited(
    shop: ShopDB, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = TOOLS["issue_refund"].fn

    def garbage(ctx: Any, args: Any) -> Any:
        real(ctx, args)  # the refund row is written ...
        return "refund done!"  # ... and then the tool answers nonsense

    replace_fn(monkeypatch, "issue_refund", garbage)
    args = {"order_id": 1004, "amount": 1.0, "currency": "EUR", "reason": "test"}
    result = run_tool(shop, "issue_refund", args, caller=as_caller("issue_refund", "demo"), idempotency_key="k1")
    assert not result.ok and result.error == "malformed result from issue_refund: expected a mapping, got str"
    conn = sqlite3.connect(shop.path)
    assert conn.execute("SELECT count(*) FROM refunds WHERE order_id = 1004 AND amount_cents = 100").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM action_ledger").fetchone() == (0,)
    outcome, actor = conn.execute("SELECT outcome, actor FROM audit_log WHERE tool = 'issue_refund'").fetchone()
    assert outcome.startswith("failed: malformed: malformed result from issue_refund") and actor == "demo"
    monkeypatch.setitem(TOOLS, "issue_refund", dataclasses.replace(TOOLS["issue_refund"], fn=real))
    again = run_tool(shop, "issue_refund", args, caller=as_caller("issue_refund", "demo"), idempotency_key="k1")
    assert again.ok and again.data["replayed"] is False  # the key was never used: the retry really refunds


def test_a_dry_run_preview_only_needs_plain_data(shop: ShopDB, sleeps: list[float]) -> None:
    dry = run_tool(
        shop, "cancel_order", {"order_id": 1008, "reason": "x"}, caller=as_caller("cancel_order", "demo"), dry_run=True
    )
    assert dry.ok and "preview" in dry.data


@pytest.mark.parametrize("fault", ["raises", "malformed"])
def test_a_ticket_whose_tool_fails_degrades_to_a_human_not_a_crash(
    with_intent: Any, make_graph: Any, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    def bad(ctx: Any, args: Any) -> Any:
        if fault == "raises":
            raise sqlite3.DatabaseError("database disk image is malformed")
        return {"order": "garbage"}

    replace_fn(monkeypatch, "get_order", bad)
    snap, _ = run(make_graph(with_intent("track_order")), "Where is my order 1006?")
    node, payload = waiting_on(snap)
    assert node == "escalate" and snap.values.get("answer") is None
    reason = payload["action_request"]["args"]["reason"]
    expected = "internal error in get_order: DatabaseError" if fault == "raises" else "malformed result from get_order"
    assert reason.startswith("retrieve_knowledge failed 2 times in a row: " + expected), reason


# ------------------------------------------------------------------ circuit breaker per tool


def test_the_breaker_of_a_failing_tool_opens_and_spares_the_others(
    shop: ShopDB, sleeps: list[float], clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []

    def broken(ctx: Any, args: Any) -> dict[str, Any]:
        calls.append(args.order_id)
        raise RuntimeError("down")

    replace_fn(monkeypatch, "get_order", broken)
    for _ in range(2):
        assert run_tool(shop, "get_order", {"order_id": 1004}, caller=as_caller("get_order", "demo")).error == (
            "internal error in get_order: RuntimeError"
        )
    assert breaker(shop, "get_order").state == "open"
    before = failures("get_order", "circuit_open")
    refused = run_tool(shop, "get_order", {"order_id": 1004}, caller=as_caller("get_order", "demo"))
    assert not refused.ok and "get_order is unavailable" in (refused.error or "")
    assert len(calls) == 2 and failures("get_order", "circuit_open") == before + 1  # refused without a call
    assert run_tool(
        shop, "list_orders", {}, caller=as_caller("list_orders", "demo")
    ).ok  # another tool's circuit is closed
    assert run_tool(shop, "get_order", {"order_id": "x"}, caller=as_caller("get_order", "demo")).error.startswith(
        "invalid arguments"
    )  # type: ignore[union-attr]
    assert len(calls) == 2


def test_refusals_and_bad_arguments_do_not_count_as_tool_failures(shop: ShopDB, sleeps: list[float]) -> None:
    for _ in range(3):
        assert (
            run_tool(shop, "get_order", {"order_id": 1011}, caller=as_caller("get_order", "demo")).ok is False
        )  # not theirs
        assert run_tool(shop, "get_order", {"order_id": "abc"}, caller=as_caller("get_order", "demo")).ok is False
        assert run_tool(
            shop, "cancel_order", {"order_id": 1001, "reason": "x"}, caller=as_caller("cancel_order", "demo")
        ).refusal
    assert breaker(shop, "get_order").state == breaker(shop, "cancel_order").state == "closed"
    assert breaker(shop, "get_order").failures == 0


def test_half_open_lets_exactly_one_of_five_concurrent_calls_through_then_closes(
    shop: ShopDB, sleeps: list[float], clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = TOOLS["get_order"].fn
    gate, entered = threading.Event(), threading.Event()
    calls: list[str] = []
    mode = {"broken": True}

    def tool(ctx: Any, args: Any) -> dict[str, Any]:
        calls.append(threading.current_thread().name)
        if mode["broken"]:
            raise RuntimeError("down")
        entered.set()
        assert gate.wait(10), "the test never released the trial"
        return real(ctx, args)

    replace_fn(monkeypatch, "get_order", tool)
    for _ in range(2):
        run_tool(shop, "get_order", {"order_id": 1004}, caller=as_caller("get_order", "demo"))
    assert breaker(shop, "get_order").state == "open"
    clock.now += 10
    mode["broken"] = False
    results: dict[str, Any] = {}
    # The trial holds its handle's lock inside the tool: the others come through their own handles on the same file
    # (as other processes would), so they reach the breaker while the trial runs.
    handles = [shop] + [ShopDB(shop.path) for _ in range(4)]

    def call(i: int) -> None:
        results[f"c{i}"] = run_tool(handles[i], "get_order", {"order_id": 1004}, caller=as_caller("get_order", "demo"))

    trial = threading.Thread(target=call, args=(0,), name="c0")
    trial.start()
    assert entered.wait(10)  # the first caller holds the one trial inside the tool
    others = [threading.Thread(target=call, args=(i,), name=f"c{i}") for i in range(1, 5)]
    for t in others:
        t.start()
    for t in others:
        t.join(10)
    assert [results[f"c{i}"].ok for i in range(1, 5)] == [False] * 4  # refused while the trial runs
    gate.set()
    trial.join(10)
    assert results["c0"].ok and calls[2:] == ["c0"]  # exactly one call reached the tool in half-open
    assert breaker(shop, "get_order").state == "closed"
    assert run_tool(shop, "get_order", {"order_id": 1004}, caller=as_caller("get_order", "demo")).ok
    for handle in handles[1:]:
        handle.close()


def test_a_failed_trial_reopens_the_circuit_for_a_fresh_cooldown(
    shop: ShopDB, sleeps: list[float], clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def busy(ctx: Any, args: Any) -> dict[str, Any]:
        raise sqlite3.OperationalError("database is locked")

    replace_fn(monkeypatch, "get_order", busy)
    run_tool(
        shop, "get_order", {"order_id": 1004}, caller=as_caller("get_order", "demo")
    )  # 2 of 3 attempts fail and open it
    assert breaker(shop, "get_order").state == "open" and len(sleeps) == 1
    clock.now += 10
    run_tool(shop, "get_order", {"order_id": 1004}, caller=as_caller("get_order", "demo"))
    assert breaker(shop, "get_order").state == "open" and len(sleeps) == 1  # the trial got one try, no retry
    clock.now += 9.9
    assert "unavailable" in (
        run_tool(shop, "get_order", {"order_id": 1004}, caller=as_caller("get_order", "demo")).error or ""
    )


# ------------------------------------------------------------------ retries (recorded waits, no sleeping)


def test_a_busy_database_is_retried_with_exponential_jittered_waits(
    shop: ShopDB, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    boundary._current.policies = ErrorPolicies.model_validate(  # type: ignore[union-attr]
        {
            "defaults": {
                "tool": {
                    "attempts": 4,
                    "initial_s": 0.1,
                    "factor": 2,
                    "max_s": 0.3,
                    "jitter_s": 0.05,
                    "breaker": {"failure_threshold": 10, "cooldown_s": 10},
                }
            }
        }
    )
    real, tries = TOOLS["get_order"].fn, []

    def flaky(ctx: Any, args: Any) -> dict[str, Any]:
        tries.append(1)
        if len(tries) < 4:
            raise sqlite3.OperationalError("database is locked")
        return real(ctx, args)

    replace_fn(monkeypatch, "get_order", flaky)
    result = run_tool(shop, "get_order", {"order_id": 1004}, caller=as_caller("get_order", "demo"))
    assert result.ok and len(tries) == 4 and len(sleeps) == 3
    assert 0.1 <= sleeps[0] <= 0.15 and 0.2 <= sleeps[1] <= 0.25 and sleeps[2] == 0.3  # 0.1 * 2**(n-1) + jitter
    assert sleeps[:2] != [0.1, 0.2]
    assert breaker(shop, "get_order").failures == 0  # the last attempt succeeded


def test_a_write_with_one_attempt_is_not_retried(
    shop: ShopDB, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    def busy(ctx: Any, args: Any) -> dict[str, Any]:
        raise sqlite3.OperationalError("database is locked")

    replace_fn(monkeypatch, "issue_refund", busy)
    args = {"order_id": 1004, "amount": 1.0, "currency": "EUR", "reason": "t"}
    assert run_tool(
        shop, "issue_refund", args, caller=as_caller("issue_refund", "demo"), idempotency_key="k"
    ).error == ("internal error in issue_refund: OperationalError")
    assert sleeps == []  # tools.issue_refund.attempts: 1 in this test's policies


# ------------------------------------------------------------------ config, health, shared state


def test_an_unknown_tool_in_error_policies_fails_at_start_up(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    for name in ("policy.yaml", "workflows.yaml"):
        (config / name).write_text((Settings().config_dir / name).read_text())
    (config / "error-policies.yaml").write_text("tools: {issue_refnud: {attempts: 1}}\n")
    with pytest.raises(ValueError, match=r"unknown tool\(s\) \['issue_refnud'\]"):
        boundary.configure(Settings(config_dir=config))
    config = tmp_path / "config2"
    shutil.copytree(tmp_path / "config", config)  # another path: load_error_policies caches by path
    (config / "error-policies.yaml").write_text("tools: {issue_refund: {breaker: {cooldown_s: 0}}}\n")
    with pytest.raises(ValueError, match=r"tools\.issue_refund\.breaker\.cooldown_s: Input should be greater"):
        boundary.configure(Settings(config_dir=config))
    boundary.reset()


def test_shipped_tool_policies_merge_defaults() -> None:
    shipped = Settings().error_policies()
    assert shipped.tool("issue_refund").breaker.failure_threshold == 3
    assert shipped.tool("issue_refund").retry_on == shipped.tool("get_order").retry_on == ("sqlite_busy",)
    assert shipped.tool("get_order").breaker.failure_threshold == 5


def test_health_shows_tool_breakers_in_the_route_and_the_cli(
    tmp_path: Path, sleeps: list[float], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    import app
    from observability.http import health

    settings = Settings(data_dir=tmp_path / "data")
    with ShopDB(settings.data_dir / "shop.sqlite") as db:
        db.seed()
        assert health(settings)["checks"]["tools"] == {"status": "ok", "breakers": "not_loaded"}
        replace_fn(monkeypatch, "get_order", lambda ctx, args: None)
        run_tool(db, "list_orders", {}, caller=as_caller("list_orders", "demo"))
        for _ in range(2):
            run_tool(db, "get_order", {"order_id": 1004}, caller=as_caller("get_order", "demo"))
    body = health(settings)
    assert body["checks"]["tools"] == {
        "status": "partial",
        "breakers": {"get_order": "open", "list_orders": "closed"},
        "open": ["get_order"],
    }
    assert body["status"] == "ok"  # one tool down is not a dead instance: its tickets escalate
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(settings.data_dir))
    for var in ("OPENAI_API_KEY", "SWITCHBOARD_LLM_BASE_URL", "SWITCHBOARD_REDIS_URL"):
        monkeypatch.delenv(var, raising=False)
    assert app.main(["health", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["checks"]["tools"]["breakers"]["get_order"] == "open"
    assert printed["checks"]["llm"] == {"status": "offline"}


@pytest.fixture
def redis_url() -> str:
    import os

    url = os.environ.get("SWITCHBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        require_service(f"Redis not reachable at {url}")
    return url


def test_tool_breaker_state_is_shared_through_redis_and_read_by_health(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    from observability.http import check_tools

    data = tmp_path / f"data-{uuid.uuid4().hex[:8]}"
    settings = Settings(data_dir=data, redis_url=redis_url)
    clock = FakeClock(time.time())
    policies = settings.error_policies()
    one = boundary.ToolBoundary(policies, RedisStore(redis_url), clock=clock)  # two server processes, in effect
    two = boundary.ToolBoundary(policies, RedisStore(redis_url), clock=clock)
    try:
        with ShopDB(data / "shop.sqlite") as db:
            db.seed()
            replace_fn(monkeypatch, "get_order", lambda ctx, args: None)
            boundary._current = one
            for _ in range(5):
                run_tool(db, "get_order", {"order_id": 1004}, caller=as_caller("get_order", "demo"))
            boundary._current = two
            assert "unavailable" in (
                run_tool(db, "get_order", {"order_id": 1004}, caller=as_caller("get_order", "demo")).error or ""
            )
        boundary.reset()  # a process where no tool ran (app.py health) reads the shared store
        states = check_tools(settings)["breakers"]
        assert states["get_order"] == "open" and states["list_orders"] == "closed" and len(states) == len(TOOLS)
    finally:
        boundary.reset()
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(f"switchboard:breaker:tool:*@{data.resolve()}*"):
            client.delete(key)
