"""Issue 9, chaos: `python app.py bench chaos --quick` in the suite (the benchmark's own code), plus its counting.

Part 1 kills -9 the process serving tickets at random and chosen points and compares every final state with a clean
run; part 2 serves tickets while the real ChatOpenAI client meets 30 % faults from the fault server on loopback;
part 3 breaks tools. The figures are the benchmark's; the test asserts the ones that are not timings."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bench.chaos import Ticket, audit_shop, final_state, run
from bench.chaos_models import ObservedStore, half_open_episodes
from bench.fault_server import FaultServer
from config.settings import Settings
from llm.breaker import CircuitBreaker
from tools.shop import Caller, ShopDB, run_tool


@pytest.mark.slow
def test_chaos_quick_loses_nothing_doubles_nothing_and_every_ticket_ends(
    seeded_settings: Settings, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(seeded_settings.data_dir))
    monkeypatch.setenv("SWITCHBOARD_MODEL_CACHE", str(model_cache))
    for var in ("OPENAI_API_KEY", "SWITCHBOARD_LLM_BASE_URL", "SWITCHBOARD_REDIS_URL"):
        monkeypatch.delenv(var, raising=False)
    report = run(quick=True, seed=1)
    kill, models, tools = (report["parts"][k] for k in ("kill", "model_faults", "tool_faults"))
    # part 1: kill -9
    assert report["kill_trials"] >= 3, kill
    assert report["tickets_lost"] == report["duplicate_effects"] == kill["missing_effects"] == 0, kill
    assert report["final_states_equal_clean_run"] is True, kill
    assert kill["ended_ok_ratio"] == 1.0 and kill["writes_committed"] >= 4, kill
    # part 2: model faults through the real client
    assert models["crashes"] == [] and models["ended_ok_ratio"] == 1.0, models
    assert report["fault_rate"] >= 0.25, models  # 30 % drawn, plus the scripted outage (a larger share on few tickets)
    assert report["breaker_opened"] >= 1 and models["breaker_recovered"] >= 1, models
    assert report["breaker_trials_in_half_open"] == 1 and models["half_open_episodes"] >= 1, models
    assert models["answered_by"]["secondary"] >= 1 and report["p95_ms"] is not None, models
    # part 3: tool faults
    assert tools["crashes"] == [] and tools["ended_ok_ratio"] == 1.0, tools
    assert tools["writes_left_behind"] == {
        "cancel_1008": 0, "refund_1004": 0, "ledger_rows_of_failed_writes": 0, "audited_failures": 2
    }, tools
    assert all(tools["tool_failures"][k] >= 1 for k in ("raised", "malformed", "circuit_open")), tools
    assert tools["breaker_opened"] == tools["breaker_recovered"] == 1, tools
    assert report["ended_ok_ratio"] == 1.0 and report["tickets"] == sum(p["tickets"] for p in report["parts"].values())


# ------------------------------------------------------------------ the counting itself


def test_the_shop_audit_counts_a_duplicate_and_a_missing_effect(tmp_path: Path) -> None:
    path = tmp_path / "shop.sqlite"
    with ShopDB(path) as shop:
        shop.seed()
        args = {"order_id": 1004, "amount": 1.0, "currency": "EUR", "reason": "test"}
        assert run_tool(shop, "issue_refund", args, caller=Caller("execute_action", "demo"), idempotency_key="k1").ok
    done: dict[str, Any] = {"action_ok": True}
    one = [Ticket(0, "demo", "refund", "refund", 1004, final=done)]
    assert audit_shop(path, one) == {"duplicate_effects": 0, "missing_effects": 0, "replayed": 0, "committed": 1}
    two = [*one, Ticket(1, "demo", "refund", "refund", 1004, final=done)]
    assert audit_shop(path, two)["missing_effects"] == 1
    with sqlite3.connect(path) as conn:  # the same refund written twice
        conn.execute(
            "INSERT INTO refunds (order_id, payment_id, amount_cents, reason, status, created_at) "
            "SELECT order_id, payment_id, amount_cents, reason, status, created_at FROM refunds "
            "WHERE order_id = 1004 AND amount_cents = 100"
        )
    assert audit_shop(path, one)["duplicate_effects"] == 1


def test_a_replayed_result_is_the_same_final_state_but_another_answer_is_not() -> None:
    first = {"status": "completed", "answer": "Refunded EUR 1.00.", "action_result": {"ok": True, "data": {"a": 1}}}
    replayed = {**first, "action_result": {"ok": True, "data": {"a": 1, "replayed": True}}}
    assert final_state(first) == final_state(replayed)
    assert final_state(first) != final_state({**first, "answer": "Refunded EUR 2.00."})


def test_trials_per_half_open_episode_are_counted_from_the_server_side() -> None:
    events = [(1.0, "m@h", "trial_start"), (2.0, "m@h", "trial_failed"), (5.0, "m@h", "trial_start"),
              (6.0, "m@h", "trial_ok")]
    arrivals = [(0.5, "m", "500"), (1.1, "m", "500"), (5.1, "m", "ok"), (5.2, "m", "ok"), (5.3, "other", "ok")]
    assert half_open_episodes(events, arrivals) == [("m", 1), ("m", 2)]  # a second request in the window counts


def test_the_observed_store_records_opening_trials_and_refusals() -> None:
    now = [0.0]
    store = ObservedStore()
    b = CircuitBreaker(2, 10, lambda: now[0], name="m@h", store=store)
    for _ in range(2):
        permit = b.acquire()
        assert permit is not None
        b.release(permit, ok=False)
    now[0] = 10
    trial = b.acquire()
    assert trial is not None and b.acquire() is None
    b.release(trial, ok=True)
    assert [e for _, _, e in store.events] == ["opened", "trial_start", "refused_in_half_open", "trial_ok"]


def test_exact_fault_rates_hold_exactly_per_hundred_requests() -> None:
    import json
    import urllib.request

    with FaultServer(rates={"500": 0.2, "malformed": 0.1}, seed=3, exact=True) as srv:
        for _ in range(100):
            body = json.dumps({"model": "m", "messages": []}).encode()
            req = urllib.request.Request(f"{srv.url}/chat/completions", body, {"Content-Type": "application/json"})
            try:
                urllib.request.urlopen(req, timeout=5).read()
            except urllib.error.HTTPError:
                pass
        assert srv.faults["500"] == 20 and srv.faults["malformed"] == 10 and srv.faults["ok"] == 70
    with pytest.raises(ValueError, match="whole percentages"):
        FaultServer(rates={"500": 0.125}, exact=True)
