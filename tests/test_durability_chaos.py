"""Issue 9, chaos: kill -9 the process serving tickets at random and chosen points, restart, resume; nothing is lost
or done twice. The short run here is the benchmark's own code (`bench.chaos.run`) on fewer tickets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.chaos import Ticket, audit_shop, run
from config.settings import Settings
from tools.shop import Caller, ShopDB, run_tool


@pytest.mark.slow
def test_kill_9_at_random_points_loses_no_ticket_and_duplicates_no_effect(
    seeded_settings: Settings, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(seeded_settings.data_dir))
    monkeypatch.setenv("SWITCHBOARD_MODEL_CACHE", str(model_cache))
    for var in ("OPENAI_API_KEY", "SWITCHBOARD_LLM_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    report = run(quick=True, seed=1, tickets=6, kills=4)
    assert report["kill_trials"] >= 3, report
    assert report["tickets_lost"] == 0 and report["duplicate_effects"] == 0 and report["missing_effects"] == 0, report
    assert report["ended_ok_ratio"] == 1.0 and report["writes_committed"] == 4, report


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
    import sqlite3

    with sqlite3.connect(path) as conn:  # the same refund written twice
        conn.execute(
            "INSERT INTO refunds (order_id, payment_id, amount_cents, reason, status, created_at) "
            "SELECT order_id, payment_id, amount_cents, reason, status, created_at FROM refunds "
            "WHERE order_id = 1004 AND amount_cents = 100"
        )
    assert audit_shop(path, one)["duplicate_effects"] == 1
