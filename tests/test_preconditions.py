"""Write tools declare their preconditions once: the dry run and the real call refuse alike."""

from __future__ import annotations

import pytest

from tools.shop import TOOLS, Caller, ShopDB, run_tool

PLAN = Caller("plan_action", "demo")  # dry runs, as plan_action makes them
EXEC = Caller("execute_action", "demo")  # the real call


@pytest.fixture
def db(tmp_path) -> ShopDB:
    shop = ShopDB(tmp_path / "shop.sqlite")
    shop.seed()
    return shop


def _ledger_and_audit(db: ShopDB) -> tuple[int, int]:
    return (
        db.query("SELECT COUNT(*) AS n FROM action_ledger")[0]["n"],
        db.query("SELECT COUNT(*) AS n FROM audit_log")[0]["n"],
    )


CASES = [
    ("cancel_order", {"order_id": 1006}, "already_shipped"),
    ("cancel_order", {"order_id": 1004}, "already_delivered"),
    ("cancel_order", {"order_id": 1003}, "already_cancelled"),
    ("issue_refund", {"order_id": 1002, "amount": 500.0, "currency": "USD"}, "fully_refunded"),
    ("issue_refund", {"order_id": 1004, "amount": 20.0, "currency": "USD"}, "currency_mismatch"),
    ("issue_refund", {"order_id": 1004, "amount": 500.0}, "exceeds_refundable"),
    ("issue_refund", {"order_id": 1001}, "outside_return_window"),
    ("issue_refund", {"order_id": 1006}, "in_transit"),
    ("issue_refund", {"order_id": 1008}, "not_shipped"),
    ("issue_refund", {"order_id": 1007}, "never_paid"),
    ("update_shipping_address", {"order_id": 1004, "address": "12 Baker Street, London NW1 6XE"}, "status_delivered"),
    ("update_shipping_address", {"order_id": 1006, "address": "12 Baker Street, London NW1 6XE"}, "already_shipped"),
    ("update_account", {"field": "email", "value": "alice.martin@example.com"}, "email_in_use"),
    ("delete_account", {}, "open_orders"),
]


@pytest.mark.parametrize(("tool", "args", "code"), CASES)
def test_dry_run_refuses_exactly_like_the_real_call(db: ShopDB, tool: str, args: dict, code: str) -> None:
    before = _ledger_and_audit(db)
    dry = run_tool(db, tool, args, caller=PLAN, dry_run=True)
    assert not dry.ok and dry.refusal is not None and dry.refusal.code == code
    assert _ledger_and_audit(db) == before, "a dry run writes nothing, not even an audit row"
    real = run_tool(db, tool, args, caller=EXEC, idempotency_key=f"k-{tool}-{code}")
    assert (real.ok, real.error, real.refusal) == (False, dry.error, dry.refusal)


def test_refusals_that_have_an_alternative_say_what_to_do_and_cite_the_policy(db: ShopDB) -> None:
    r = run_tool(db, "cancel_order", {"order_id": 1006}, caller=PLAN, dry_run=True)
    assert "refuse the delivery" in r.refusal.instead and "30 days" in r.refusal.instead
    assert r.refusal.article == "kb-cancel-order"


def test_every_write_tool_that_needs_approval_declares_preconditions() -> None:
    for spec in TOOLS.values():
        if spec.permission == "needs_approval":
            assert spec.check is not None, spec.name


def test_previews_describe_the_effect_and_change_nothing(db: ShopDB) -> None:
    cancel = run_tool(db, "cancel_order", {"order_id": 1008}, caller=PLAN, dry_run=True)
    assert cancel.ok and cancel.data["preview"]["money"] == "EUR 129.80 is refunded in full to your card"
    assert cancel.data["preview"]["items"] == ["1 x Keystone Mechanical Keyboard", "1 x Glide Ergonomic Mouse"]
    refund = run_tool(db, "issue_refund", {"order_id": 1004, "amount": 6}, caller=PLAN, dry_run=True)
    assert refund.data["preview"] == {
        "order_id": 1004, "amount": 6.0, "currency": "EUR", "method": "card", "refundable_before": 393.9,
        "full": False,
    }
    address = run_tool(
        db, "update_shipping_address", {"order_id": 1009, "address": "12 Baker Street, London NW1 6XE"},
        caller=PLAN, dry_run=True,
    )
    assert address.data["preview"]["old_address"].startswith("Keizersgracht 123")
    assert address.data["preview"]["new_address"] == "12 Baker Street, London NW1 6XE"
    assert db.query("SELECT status FROM orders WHERE id = 1008")[0]["status"] == "processing"
    assert db.query("SELECT COUNT(*) AS n FROM refunds WHERE order_id = 1004")[0]["n"] == 0


def test_another_customers_order_is_refused_like_a_missing_one_in_a_dry_run(db: ShopDB) -> None:
    theirs = run_tool(db, "cancel_order", {"order_id": 1013}, caller=PLAN, dry_run=True)
    missing = run_tool(db, "cancel_order", {"order_id": 9999}, caller=PLAN, dry_run=True)
    assert theirs.error == "order 1013 was not found for this customer"
    assert missing.error == "order 9999 was not found for this customer"
