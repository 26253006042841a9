"""Demo shop database and business tools: seeding, ownership, business rules, idempotency, audit."""

from __future__ import annotations

import json
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

import tools.registry as registry
import tools.shop as shop
from tools.shop import TOOLS, Caller, ShopDB, run_tool

TODAY = date(2025, 3, 15)
NOW = datetime(2025, 3, 15, 12, 0, tzinfo=UTC)


def _open(path: Path) -> ShopDB:
    db = ShopDB(path, clock=lambda: NOW)
    db.seed(today=TODAY)
    return db


@pytest.fixture
def db(tmp_path: Path) -> ShopDB:
    handle = _open(tmp_path / "shop.sqlite")
    yield handle
    handle.close()


def as_caller(name: str, user: str = "demo") -> Caller:
    """The node that may make this call: the retriever for reads, execute_action for writes (and their dry runs)."""
    spec = TOOLS.get(name)
    return Caller("retrieve_knowledge" if spec is not None and spec.kind == "read" else "execute_action", user)


def ok(db: ShopDB, name: str, args: dict | None = None, user: str = "demo", **kw: object) -> dict:
    result = run_tool(db, name, args or {}, caller=as_caller(name, user), **kw)
    assert result.ok, result.error
    return result.data


def refused(db: ShopDB, name: str, args: dict | None = None, user: str = "demo", **kw: object) -> str:
    result = run_tool(db, name, args or {}, caller=as_caller(name, user), **kw)
    assert not result.ok and result.data == {}, result
    assert result.error and "\n" not in result.error
    # A business-rule refusal says what the customer can do instead; the message and that advice are read together.
    return result.error + (f" | {result.refusal.instead}" if result.refusal and result.refusal.instead else "")


def status(db: ShopDB, order_id: int) -> str:
    return db.query("SELECT status FROM orders WHERE id = ?", (order_id,))[0]["status"]


# ------------------------------------------------------------------------------------------ seeding
def test_seeding_is_deterministic_idempotent_and_resettable(tmp_path: Path) -> None:
    a, b = ShopDB(tmp_path / "a.sqlite"), ShopDB(tmp_path / "b.sqlite")
    assert not a.is_seeded()
    counts = a.seed(today=TODAY)
    assert b.seed(today=TODAY) == counts
    assert a.is_seeded()
    fresh = a.dump()
    assert fresh == b.dump()
    assert counts["orders"] == 20 and counts["customers"] == 5 and counts["refunds"] == 2

    assert a.seed(today=TODAY) == counts and a.dump() == fresh  # seeding twice changes nothing
    ok(a, "cancel_order", {"order_id": 1010})
    assert a.dump() != fresh
    a.seed(today=TODAY)  # no reset: the change stays
    assert status(a, 1010) == "cancelled"
    a.seed(reset=True, today=TODAY)
    assert a.dump() == fresh
    a.close()
    b.close()


def test_demo_owns_exactly_orders_1001_to_1010(db: ShopDB) -> None:
    ids = sorted(o["order_id"] for o in ok(db, "list_orders")["orders"])
    assert ids == list(range(1001, 1011))
    others = db.query("SELECT id, customer_id FROM orders WHERE id >= 1011 ORDER BY id")
    assert len(others) == 10 and all(r["customer_id"] != "demo" for r in others)
    account = ok(db, "get_account")
    assert (account["name"], account["email"], account["order_count"]) == (
        "Dana Demo",
        "demo@example.com",
        10,
    )


def test_docstring_table_matches_the_database(db: ShopDB) -> None:
    rows = re.findall(r"^\| (10\d\d) \| (\w+)\s*\|\s*([\d.]+) \|", shop.__doc__ or "", flags=re.M)
    assert len(rows) == 10
    for order_id, doc_status, total in rows:
        order = ok(db, "get_order", {"order_id": int(order_id)})
        assert (order["status"], order["total"], order["currency"]) == (doc_status, float(total), "EUR")


def test_demo_orders_cover_every_workflow(db: ShopDB) -> None:
    orders = {
        o["order_id"]: ok(db, "get_order", {"order_id": o["order_id"]})
        for o in ok(db, "list_orders")["orders"]
    }
    statuses = sorted(o["status"] for o in orders.values())
    assert statuses == sorted(
        [
            "pending",
            "processing",
            "processing",
            "shipped",
            "shipped",
            "delivered",
            "delivered",
            "cancelled",
            "refunded",
            "payment_failed",
        ]
    )
    shipped = [o for o in orders.values() if o["status"] == "shipped"]
    assert all(o["carrier"] and o["tracking_number"] for o in shipped)
    delivered_days = sorted(o["days_since_delivery"] for o in orders.values() if o["status"] == "delivered")
    assert delivered_days[0] <= 30 < delivered_days[-1]
    refunded = next(o for o in orders.values() if o["status"] == "refunded")
    assert (
        ok(db, "get_refund_status", {"order_id": refunded["order_id"]})["refunded_total"] == refunded["total"]
    )
    failed = next(o for o in orders.values() if o["status"] == "payment_failed")
    assert failed["payment"]["error_code"] == "PAY-402"


# ------------------------------------------------------------------------------------------ ownership
@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("get_order", {"order_id": 1011}),
        ("get_invoice", {"order_id": 1011}),
        ("get_refund_status", {"order_id": 1011}),
        ("cancel_order", {"order_id": 1011}),
        ("issue_refund", {"order_id": 1011}),
        ("update_shipping_address", {"order_id": 1011, "address": "Damrak 1, 1012 LG Amsterdam"}),
        ("create_ticket", {"subject": "About 1011", "body": "Help", "order_id": 1011}),
    ],
)
def test_another_customers_order_looks_missing(db: ShopDB, name: str, args: dict) -> None:
    before = db.dump()
    assert refused(db, name, args) == "order 1011 was not found for this customer"
    missing = refused(db, name, {**args, "order_id": 9999})
    assert missing == "order 9999 was not found for this customer"
    assert status(db, 1011) == "delivered"
    assert db.query("SELECT COUNT(*) AS n FROM refunds")[0]["n"] == 2
    assert db.dump().split("audit_log")[0] == before.split("audit_log")[0]  # only audit rows may differ


def test_owner_can_read_own_order(db: ShopDB) -> None:
    assert ok(db, "get_order", {"order_id": 1011}, user="alice")["status"] == "delivered"
    assert (
        refused(db, "get_order", {"order_id": 1004}, user="alice")
        == "order 1004 was not found for this customer"
    )


@pytest.mark.parametrize("raw", [1004, "1004", "#1004", " # 1004 "])
def test_order_id_accepts_int_and_hash_strings(db: ShopDB, raw: object) -> None:
    assert ok(db, "get_order", {"order_id": raw})["order_id"] == 1004


@pytest.mark.parametrize("raw", ["abc", "10o4", True, -5, 0, "", None, 10.5])
def test_bad_order_ids_are_validation_errors(db: ShopDB, raw: object) -> None:
    error = refused(db, "get_order", {"order_id": raw})
    assert error.startswith("invalid arguments for get_order: order_id:")


# ------------------------------------------------------------------------------------------ cancel
def test_cancel_pending_voids_authorisation_without_refund(db: ShopDB) -> None:
    data = ok(db, "cancel_order", {"order_id": 1010, "reason": "changed my mind"})
    assert (data["status"], data["previous_status"], data["refund"]) == ("cancelled", "pending", None)
    assert status(db, 1010) == "cancelled"
    assert db.query("SELECT status FROM payments WHERE order_id = 1010")[0]["status"] == "voided"
    assert "never paid" in refused(db, "issue_refund", {"order_id": 1010})


def test_cancel_processing_refunds_in_full(db: ShopDB) -> None:
    data = ok(db, "cancel_order", {"order_id": 1008})
    assert data["refund"]["amount"] == 129.80 and data["refund"]["status"] == "pending"
    refunds = ok(db, "get_refund_status", {"order_id": 1008})
    assert refunds["refunded_total"] == 129.80 and refunds["refundable"] == 0
    assert "already cancelled" in refused(db, "cancel_order", {"order_id": 1008})


def test_cancel_payment_failed_order_is_allowed(db: ShopDB) -> None:
    assert ok(db, "cancel_order", {"order_id": 1007})["refund"] is None
    assert status(db, 1007) == "cancelled"


@pytest.mark.parametrize(
    ("order_id", "phrase"),
    [
        (1005, "already shipped"),
        (1006, "return it within 30 days"),
        (1004, "was delivered"),
        (1003, "already cancelled"),
        (1002, "already refunded"),
    ],
)
def test_cancel_refused_after_shipping_or_when_closed(db: ShopDB, order_id: int, phrase: str) -> None:
    before = status(db, order_id)
    assert phrase in refused(db, "cancel_order", {"order_id": order_id})
    assert status(db, order_id) == before


# ------------------------------------------------------------------------------------------ refund
def test_partial_then_full_refund_of_delivered_order(db: ShopDB) -> None:
    first = ok(db, "issue_refund", {"order_id": 1004, "amount": 64.90, "reason": "webcam faulty"})
    assert (first["amount"], first["refundable"], first["order_status"]) == (64.90, 329.00, "delivered")
    assert "exceeds" in refused(db, "issue_refund", {"order_id": 1004, "amount": 329.01})
    rest = ok(db, "issue_refund", {"order_id": 1004})  # None = the full remaining amount
    assert (rest["amount"], rest["refundable"], rest["order_status"]) == (329.00, 0, "refunded")
    assert "fully refunded" in refused(db, "issue_refund", {"order_id": 1004, "amount": 1})


def test_refund_of_cancelled_after_payment_order(db: ShopDB) -> None:
    data = ok(db, "issue_refund", {"order_id": 1003})
    assert data["amount"] == 53.95 and data["order_status"] == "cancelled"


@pytest.mark.parametrize(
    ("order_id", "phrase"),
    [
        (1001, "outside the 30-day returns window"),
        (1002, "already been fully refunded"),
        (1005, "still on its way"),
        (1007, "never paid"),
        (1008, "cancel it free of charge instead"),
        (1010, "cancel it free of charge instead"),
    ],
)
def test_refund_refusals(db: ShopDB, order_id: int, phrase: str) -> None:
    assert phrase in refused(db, "issue_refund", {"order_id": order_id})
    assert db.query("SELECT COUNT(*) AS n FROM refunds")[0]["n"] == 2


@pytest.mark.parametrize("amount", [0, -10, 10.005, "lots"])
def test_refund_amount_validation(db: ShopDB, amount: object) -> None:
    assert refused(db, "issue_refund", {"order_id": 1004, "amount": amount}).startswith(
        "invalid arguments for issue_refund: amount:"
    )


# ------------------------------------------------------------------------------------------ address, account
def test_update_shipping_address_rules(db: ShopDB) -> None:
    data = ok(
        db, "update_shipping_address", {"order_id": 1008, "address": "  Damrak 1,\n1012 LG  Amsterdam, NL "}
    )
    assert data["new_address"] == "Damrak 1, 1012 LG Amsterdam, NL"
    assert ok(db, "get_order", {"order_id": 1008})["shipping_address"] == "Damrak 1, 1012 LG Amsterdam, NL"
    assert "already shipped" in refused(
        db, "update_shipping_address", {"order_id": 1005, "address": "Damrak 1, 1012 LG Amsterdam"}
    )
    assert "before the order ships" in refused(
        db, "update_shipping_address", {"order_id": 1004, "address": "Damrak 1, 1012 LG Amsterdam"}
    )
    for bad in ["Damrak 1", "Somewhere in Amsterdam"]:
        assert "address: address must be a full address" in refused(
            db, "update_shipping_address", {"order_id": 1009, "address": bad}
        )


def test_update_account_validates_and_normalises(db: ShopDB) -> None:
    assert (
        ok(db, "update_account", {"field": "email", "value": "Dana.New@Example.org"})["new_value"]
        == "dana.new@example.org"
    )
    assert (
        ok(db, "update_account", {"field": "phone", "value": "+31 (6) 9876-5432"})["new_value"]
        == "+31698765432"
    )
    assert (
        ok(db, "update_account", {"field": "name", "value": "Dana  van Demo"})["new_value"] == "Dana van Demo"
    )
    account = ok(db, "get_account")
    assert (account["email"], account["phone"]) == ("dana.new@example.org", "+31698765432")
    assert "not a valid email" in refused(db, "update_account", {"field": "email", "value": "dana@"})
    assert "not a valid phone" in refused(db, "update_account", {"field": "phone", "value": "call me"})
    assert "field:" in refused(db, "update_account", {"field": "password", "value": "hunter22"})
    assert "already used" in refused(
        db, "update_account", {"field": "email", "value": "alice.martin@example.com"}
    )


def test_delete_account_rules(db: ShopDB) -> None:
    error = refused(db, "delete_account", {"reason": "bye"})
    assert "pending, processing or shipped: 1005, 1006, 1008, 1009, 1010" in error
    assert ok(db, "get_account")["status"] == "active"

    ok(db, "issue_refund", {"order_id": 1020, "amount": 10}, user="erin")
    assert "refunds are still pending for orders: 1020" in refused(db, "delete_account", user="erin")
    data = ok(db, "delete_account", {"reason": "moving abroad"}, user="chen")
    assert data["status"] == "deletion_requested" and data["erase_on"] == "2025-03-29"
    assert ok(db, "get_account", user="chen")["newsletter_subscribed"] is False
    assert "already been requested" in refused(db, "delete_account", user="chen")


def test_newsletter_and_ticket(db: ShopDB) -> None:
    assert ok(db, "set_newsletter_subscription", {"subscribed": False}) == {
        "subscribed": False,
        "changed": True,
    }
    assert ok(db, "get_account")["newsletter_subscribed"] is False
    assert ok(db, "set_newsletter_subscription", {"subscribed": False})["changed"] is False
    ticket = ok(
        db,
        "create_ticket",
        {"subject": "Speaker late", "body": "Still waiting", "priority": "high", "order_id": "#1005"},
    )
    assert ticket["reference"] == f"SB-{ticket['ticket_id']:06d}" and ticket["order_id"] == 1005
    assert ok(db, "get_account")["open_tickets"] == 2
    assert "priority:" in refused(
        db, "create_ticket", {"subject": "Hello", "body": "x", "priority": "urgent"}
    )


# ------------------------------------------------------------------------------------------ idempotency
def test_idempotent_replay_changes_the_database_once(db: ShopDB) -> None:
    args = {"order_id": 1004, "amount": 20, "reason": "goodwill"}
    first = ok(db, "issue_refund", args, idempotency_key="refund-1004-a")
    after_first = db.dump().split("audit_log")[0]
    second = ok(db, "issue_refund", {**args, "order_id": "#1004"}, idempotency_key="refund-1004-a")
    assert first["replayed"] is False and second["replayed"] is True
    assert {k: v for k, v in second.items() if k != "replayed"} == {
        k: v for k, v in first.items() if k != "replayed"
    }
    assert db.dump().split("audit_log")[0] == after_first
    assert db.query("SELECT COUNT(*) AS n FROM refunds WHERE order_id = 1004")[0]["n"] == 1
    ledger = db.query("SELECT * FROM action_ledger")
    assert len(ledger) == 1 and json.loads(ledger[0]["result_json"])["refund_id"] == first["refund_id"]

    assert "different action" in refused(
        db, "issue_refund", {**args, "amount": 30}, idempotency_key="refund-1004-a"
    )
    assert "different action" in refused(
        db, "cancel_order", {"order_id": 1013}, user="alice", idempotency_key="refund-1004-a"
    )
    assert status(db, 1013) == "pending"
    ok(db, "issue_refund", args, idempotency_key="refund-1004-b")  # a new key is a new action
    assert db.query("SELECT COUNT(*) AS n FROM refunds WHERE order_id = 1004")[0]["n"] == 2


def test_refusals_are_not_stored_in_the_ledger(db: ShopDB) -> None:
    refused(db, "issue_refund", {"order_id": 1001}, idempotency_key="k")
    assert db.query("SELECT COUNT(*) AS n FROM action_ledger")[0]["n"] == 0


def test_concurrent_calls_with_one_key_apply_once(db: ShopDB) -> None:
    def call(_: int) -> bool:
        return run_tool(
            db, "issue_refund", {"order_id": 1004, "amount": 5}, caller=as_caller("issue_refund"),
            idempotency_key="same",
        ).data["replayed"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        replayed = list(pool.map(call, range(16)))
    assert replayed.count(False) == 1 and replayed.count(True) == 15
    assert db.query("SELECT COUNT(*) AS n FROM refunds WHERE order_id = 1004")[0]["n"] == 1


# ------------------------------------------------------------------------------------------ audit
def test_writes_are_audited_and_reads_are_not(db: ShopDB) -> None:
    ok(db, "get_order", {"order_id": 1004})
    assert db.query("SELECT COUNT(*) AS n FROM audit_log")[0]["n"] == 0
    ok(db, "cancel_order", {"order_id": 1009})
    refused(db, "cancel_order", {"order_id": 1005})
    refused(db, "cancel_order", {"order_id": "x"})
    rows = db.query("SELECT actor, tool, outcome FROM audit_log ORDER BY id")
    assert [(r["actor"], r["tool"]) for r in rows] == [("demo", "cancel_order")] * 3
    assert rows[0]["outcome"] == "ok"
    assert rows[1]["outcome"].startswith("refused: order 1005 has already shipped")
    assert rows[2]["outcome"].startswith("invalid: ")


def test_audit_log_is_append_only(db: ShopDB) -> None:
    ok(db, "set_newsletter_subscription", {"subscribed": True})
    conn = sqlite3.connect(db.path)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE audit_log SET outcome = 'forged'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM audit_log")
    finally:
        conn.close()
    assert [r["outcome"] for r in db.query("SELECT outcome FROM audit_log")] == ["ok"]


def test_change_and_audit_share_one_transaction(db: ShopDB, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_audit(*args: object) -> None:
        raise sqlite3.OperationalError("disk full")

    monkeypatch.setattr(registry, "_audit", broken_audit)
    result = run_tool(db, "cancel_order", {"order_id": 1008}, caller=as_caller("cancel_order"), idempotency_key="k")
    assert not result.ok and result.error == "internal error in cancel_order: OperationalError"
    assert status(db, 1008) == "processing"
    assert db.query("SELECT COUNT(*) AS n FROM action_ledger")[0]["n"] == 0


# ------------------------------------------------------------------------------------------ boundary
@pytest.mark.parametrize(
    ("name", "args", "user", "phrase"),
    [
        ("drop_tables", {}, "demo", "unknown tool 'drop_tables'"),
        ("get_order", {"order_id": 1004, "user_id": "alice"}, "demo", "user_id is not a tool argument"),
        ("get_order", {"order_id": 1004, "verbose": True}, "demo", "verbose: Extra inputs are not permitted"),
        ("get_order", {}, "demo", "order_id: Field required"),
        ("get_order", ["1004"], "demo", "expected an object"),
        ("get_order", {"order_id": 1004}, "", "no customer identity"),
        ("get_order", {"order_id": 1004}, "mallory", "unknown customer 'mallory'"),
        ("set_newsletter_subscription", {"subscribed": "perhaps"}, "demo", "subscribed:"),
    ],
)
def test_bad_calls_come_back_as_errors(db: ShopDB, name: str, args: object, user: str, phrase: str) -> None:
    result = run_tool(db, name, args, caller=as_caller(name, user))  # type: ignore[arg-type]
    assert not result.ok and result.error and phrase in result.error and "\n" not in result.error


def test_allowed_tools_limits_a_workflow(db: ShopDB) -> None:
    error = refused(db, "cancel_order", {"order_id": 1010}, allowed_tools={"get_order"})
    assert error == "tool 'cancel_order' is not permitted in this workflow"
    assert status(db, 1010) == "pending"


def test_unseeded_database_is_reported(tmp_path: Path) -> None:
    with ShopDB(tmp_path / "empty.sqlite") as empty:
        assert "not seeded" in refused(empty, "list_orders")


def test_registry_permissions() -> None:
    by_perm = {
        p: sorted(n for n, s in TOOLS.items() if s.permission == p)
        for p in ("read", "write", "needs_approval")
    }
    assert by_perm == {
        "read": ["get_account", "get_invoice", "get_order", "get_refund_status", "list_orders"],
        "write": ["create_ticket", "set_newsletter_subscription"],
        "needs_approval": [
            "cancel_order",
            "delete_account",
            "issue_refund",
            "update_account",
            "update_shipping_address",
        ],
    }
    assert all(s.description and "user_id" not in s.args_model.model_fields for s in TOOLS.values())


def test_invoice(db: ShopDB) -> None:
    invoice = ok(db, "get_invoice", {"order_id": 1004})
    assert invoice["invoice_number"] == "INV-2025-1004" and invoice["total"] == 393.90
    assert round(invoice["net_amount"] + invoice["vat_included"], 2) == 393.90
    assert "no payment has been taken" in refused(db, "get_invoice", {"order_id": 1010})


def test_two_handles_on_one_file_apply_a_key_once(db: ShopDB) -> None:
    other = ShopDB(db.path, clock=lambda: NOW)  # e.g. the CLI and the dev server on one database file
    try:
        handles = [db, other]

        def call(i: int) -> tuple[bool, bool]:
            result = run_tool(
                handles[i % 2],
                "cancel_order",
                {"order_id": 1008},
                caller=as_caller("cancel_order"),
                idempotency_key="cancel-1008",
            )
            return result.ok, result.data.get("replayed", False)

        with ThreadPoolExecutor(max_workers=4) as pool:
            outcomes = list(pool.map(call, range(12)))
        assert all(ok_ for ok_, _ in outcomes)
        assert sum(not replayed for _, replayed in outcomes) == 1
        assert db.query("SELECT COUNT(*) AS n FROM refunds WHERE order_id = 1008")[0]["n"] == 1
    finally:
        other.close()


def test_database_from_another_seed_version_is_rebuilt(db: ShopDB) -> None:
    fresh = db.dump()
    ok(db, "cancel_order", {"order_id": 1010})
    with db.transaction() as conn:
        conn.execute("UPDATE shop_meta SET value = 'old' WHERE key = 'seed_version'")
    assert not db.is_seeded()
    assert "not seeded" in refused(db, "get_order", {"order_id": 1004})
    db.seed(today=TODAY)
    assert db.is_seeded() and db.dump() == fresh


def test_seed_anchor_defaults_to_the_clock(tmp_path: Path) -> None:
    handle = ShopDB(tmp_path / "clock.sqlite", clock=lambda: NOW)
    handle.seed()
    assert handle.query("SELECT value FROM shop_meta WHERE key = 'anchor_date'")[0]["value"] == "2025-03-15"
    assert ok(handle, "get_order", {"order_id": 1001})["days_since_delivery"] == 45
    handle.close()
