"""Answers eval: the suite is valid and true to the seeded shop, the scorer scores what it claims, and (slow)
the whole suite meets its floor."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from evals.answers import (
    SUITE,
    Matcher,
    Observed,
    OrderFacts,
    Turn,
    claims_in,
    conversation_facts,
    count_sentences,
    load_suite,
    merge_claims,
    order_ids_in,
    run,
    score_turn,
    summarize,
    unsupported,
)

REPO = Path(__file__).resolve().parents[1]
# Issue 7 asks for >= 0.95 first-response accuracy and no wrong approval requests.
FLOOR = 0.95  # issue 7's target; measured 0.969 (docs/RESULTS.md lists what still fails)
ANCHOR = date(2026, 12, 1)


# ------------------------------------------------------------------------------------------ the suite
@pytest.fixture(scope="module")
def suite() -> Any:
    return load_suite()


@pytest.fixture(scope="module")
def seed_db() -> Any:
    from tools.shop import ShopDB

    db = ShopDB(":memory:")
    db.seed(today=ANCHOR)
    yield db
    db.close()


def test_suite_size(suite: Any) -> None:
    assert len(suite.conversations) >= 80
    assert sum(len(c.turns) > 1 for c in suite.conversations) >= 30


def test_every_turn_states_its_expectation() -> None:
    raw = yaml.safe_load(SUITE.read_text(encoding="utf-8"))
    for conv in raw["conversations"]:
        for i, turn in enumerate(conv["turns"]):
            where = f"{conv['id']} turn {i + 1}"
            assert ("say" in turn) != ("resume" in turn), where
            for key in ("status", "action", "must", "must_not"):
                assert key in turn, f"{where}: no {key!r}"
            if turn["action"] is not None:
                assert isinstance(turn.get("args"), dict), f"{where}: an action needs args"


def test_suite_covers_every_workflow(suite: Any) -> None:
    workflows = yaml.safe_load((REPO / "config" / "workflows.yaml").read_text(encoding="utf-8"))["intents"]
    named: set[str] = set()
    for conv in suite.conversations:
        for turn in conv.turns:
            named |= {turn.intent} if isinstance(turn.intent, str) else set(turn.intent or [])
    assert set(workflows) <= named, sorted(set(workflows) - named)
    assert named - {None} <= set(workflows), sorted(named - set(workflows))


def test_order_facts_match_the_seed(suite: Any, seed_db: Any) -> None:
    orders = {r["id"]: r for r in seed_db.query("SELECT * FROM orders")}
    assert set(suite.orders) == set(orders)
    for oid, facts in suite.orders.items():
        row = orders[oid]
        pay = seed_db.query("SELECT method FROM payments WHERE order_id = ?", (oid,))[0]
        items = seed_db.query(
            "SELECT p.name, i.quantity, i.unit_price_cents FROM order_items i JOIN products p ON p.id = i.product_id "
            "WHERE i.order_id = ? ORDER BY i.id",
            (oid,),
        )
        refunded = seed_db.query("SELECT COALESCE(SUM(amount_cents), 0) AS c FROM refunds WHERE order_id = ?", (oid,))
        assert (facts.customer, facts.status, facts.payment) == (row["customer_id"], row["status"], pay["method"]), oid
        assert round(facts.total * 100) == row["total_cents"], oid
        assert (facts.carrier, facts.tracking) == (row["carrier"], row["tracking_number"]), oid
        assert _days(row["created_at"]) == -facts.placed, oid
        assert (_days(row["delivered_at"]) if row["delivered_at"] else None) == (
            -facts.delivered if facts.delivered is not None else None
        ), oid
        assert (_days(row["estimated_delivery"]) if row["estimated_delivery"] else None) == facts.eta, oid
        assert round((facts.refunded or 0) * 100) == refunded[0]["c"], oid
        assert _items(facts) == [(r["name"], r["quantity"], r["unit_price_cents"]) for r in items], oid


def _days(ts: str) -> int:
    return (date.fromisoformat(ts[:10]) - ANCHOR).days


def _items(facts: OrderFacts) -> list[tuple[str, int, int]]:
    out = []
    for name, price in facts.items.items():
        m = re.fullmatch(r"(.*) x (\d+)", name)
        out.append((m.group(1), int(m.group(2)), round(price * 100)) if m else (name, 1, round(price * 100)))
    return out


def test_order_ids_and_users_exist_in_the_seed(suite: Any, seed_db: Any) -> None:
    seeded = {r["id"] for r in seed_db.query("SELECT id FROM orders")}
    customers = {r["id"] for r in seed_db.query("SELECT id FROM customers")}
    assert not set(suite.missing_orders) & seeded
    known = seeded | set(suite.missing_orders)
    for conv in suite.conversations:
        assert conv.user in customers, conv.id
        for turn in conv.turns:
            assert (turn.user or conv.user) in customers, conv.id
            texts = [turn.say or "", *turn.facts, *(i for i in turn.must if "{cand:" not in i)]
            used = set().union(*(order_ids_in(t) for t in texts)) | set(conv.orders)
            used |= {int(m) for i in turn.must for m in re.findall(r"\{cand:(\d+)\}", i)}
            if turn.args and "order_id" in turn.args:
                used.add(int(turn.args["order_id"]))
            assert used <= known, f"{conv.id}: unknown orders {sorted(used - known)}"


def test_another_customers_order_never_gets_an_approval_request(suite: Any) -> None:
    for conv in suite.conversations:
        for turn in conv.turns:
            user = turn.user or conv.user
            named = order_ids_in(turn.say or "")
            foreign = {o for o in named if o in suite.orders and suite.orders[o].customer != user}
            if foreign:
                assert turn.action is None, f"{conv.id}: {user} asks about {foreign}"


def test_every_pattern_compiles(suite: Any) -> None:
    match = Matcher(ANCHOR, suite.orders)
    for item in suite.always_must_not:
        match.compile(item)
    for conv in suite.conversations:
        for turn in conv.turns:
            for expect in turn.expectations():
                for item in (*expect.must, *expect.must_not):
                    match.compile(item)


def test_conversation_facts_cover_named_orders(suite: Any) -> None:
    conv = next(c for c in suite.conversations if c.id == "track-shipped-1006")
    facts = conversation_facts(conv, suite)
    assert 1006 in facts["order"] and "JJD000390010061006" in facts["tracking"] and 129.0 in facts["amount"]
    # The customer's own other orders may be stated (candidates in a question); another customer's never.
    assert 1001 in facts["order"] and 123.9 in facts["amount"]
    assert not {1011, 1012, 1013, 1014, 1015} & facts["order"] and 73.95 not in facts["amount"]


def test_an_order_of_another_customer_is_an_unsupported_claim(suite: Any) -> None:
    conv = next(c for c in suite.conversations if c.id == "track-shipped-1006")
    facts = conversation_facts(conv, suite)
    assert unsupported("Order 1006 has shipped. Order 1012 is on its way too.", facts) == ["order 1012"]


# ------------------------------------------------------------------------------------------ the scorer
def turn(**kw: Any) -> Turn:
    base: dict[str, Any] = {"say": "x", "status": "completed", "action": None, "must": [], "must_not": []}
    return Turn.model_validate(base | kw)


def result(answer: str | None = None, *, status: str = "completed", pending: Any = None, **kw: Any) -> Observed:
    return Observed.from_result({"status": status, "answer": answer, "pending": pending, "flags": [], **kw})


def approval(tool: str, **args: Any) -> dict[str, Any]:
    return {"action_request": {"action": tool, "args": args}, "config": {}, "description": f"{tool} {args}"}


MATCH = Matcher(ANCHOR, {})


def test_unexpected_approval_request_is_a_wrong_proposal() -> None:
    seen = result(status="awaiting_approval", pending=approval("cancel_order", order_id=1006))
    score = score_turn(turn(), seen, MATCH)
    assert not score.passed and score.wrong_proposal
    assert "proposed cancel_order" in score.reason


def test_approval_for_other_args_or_tool_is_a_wrong_proposal() -> None:
    expect = turn(status="awaiting_approval", action="cancel_order", args={"order_id": 1008})
    other_order = result(status="awaiting_approval", pending=approval("cancel_order", order_id=1009))
    other_tool = result(status="awaiting_approval", pending=approval("issue_refund", order_id=1008))
    assert score_turn(expect, other_order, MATCH).wrong_proposal
    assert score_turn(expect, other_tool, MATCH).wrong_proposal


def test_expected_approval_passes_and_missing_one_is_not_a_wrong_proposal() -> None:
    expect = turn(status="awaiting_approval", action="issue_refund", args={"order_id": 1004, "amount": 6})
    good = result(status="awaiting_approval", pending=approval("issue_refund", order_id=1004, amount=6.0, reason="r"))
    assert score_turn(expect, good, MATCH).passed
    none = score_turn(expect, result("I can't do that."), MATCH)
    assert not none.passed and not none.wrong_proposal


def test_args_strings_compare_loosely_and_by_regex() -> None:
    expect = turn(
        status="awaiting_approval",
        action="update_shipping_address",
        args={"order_id": 1008, "address": "re:Stationsplein 45,? 3511 ED,? Utrecht(, NL)?"},
    )
    ok = approval("update_shipping_address", order_id=1008, address="Stationsplein 45, 3511 ED Utrecht")
    bad = approval("update_shipping_address", order_id=1008, address="to Stationsplein 45, 3511 ED Utrecht instead")
    assert score_turn(expect, result(status="awaiting_approval", pending=ok), MATCH).passed
    score = score_turn(expect, result(status="awaiting_approval", pending=bad), MATCH)
    assert not score.passed and score.wrong_proposal and "address=" in score.reason


def test_must_and_must_not() -> None:
    expect = turn(must=["1006", "DHL", "re:JJD\\d+"], must_not=["out for delivery"])
    assert score_turn(expect, result("Order 1006 is with DHL, tracking JJD000390010061006."), MATCH).passed
    missing = score_turn(expect, result("Order 1006 is on its way."), MATCH)
    assert not missing.passed and "missing 'DHL'" in missing.reason
    forbidden = score_turn(expect, result("Order 1006 (dhl, JJD1) is out for delivery."), MATCH)
    assert not forbidden.passed and "contains 'out for delivery'" in forbidden.reason


def test_always_must_not_checks_the_answer_only() -> None:
    seen = result("Your email is [EMAIL].")
    assert not score_turn(turn(), seen, MATCH, always_must_not=["[EMAIL]"]).passed
    pending = {"action_request": {"action": "x", "args": {}}, "description": "Customer wrote: [EMAIL] please"}
    quiet = result(status="escalated", pending=pending)
    assert score_turn(turn(status="escalated"), quiet, MATCH, always_must_not=["[EMAIL]"]).passed


def test_status_and_intent() -> None:
    seen = result("ok", intent="track_order")
    assert score_turn(turn(intent=["track_order", "delivery_period"]), seen, MATCH).passed
    assert not score_turn(turn(intent="cancel_order"), seen, MATCH).passed
    assert not score_turn(turn(intent=None), seen, MATCH).passed  # explicitly: no intent
    assert score_turn(turn(), seen, MATCH).passed  # not given: not checked
    assert not score_turn(turn(status="rejected"), seen, MATCH).passed


def test_placeholders_dates_amounts_candidates() -> None:
    orders = {1010: OrderFacts(customer="demo", status="pending", total=79.4, payment="card", placed=1,
                               items={"Volt 65 W USB-C Charger": 44.9})}
    match = Matcher(ANCHOR, orders)
    for text in ("expected 2026-12-03", "arrives on 3 December", "by December 3rd", "on 03/12"):
        assert match.found("{d+2}", text), text
    assert not match.found("{d+2}", "expected 2026-12-13")
    for text in ("EUR 2.00", "€2", "2,00 EUR", "a refund of EUR 2,00"):
        assert match.found("{eur:2.00}", text), text
    for text in ("EUR 12.00", "EUR 2.5", "€ 2.50"):
        assert not match.found("{eur:2.00}", text), text
    assert match.found("{eur:1500}", "up to €1,500")
    assert match.found("{cand:1010}", "Do you mean order 1010 (pending, placed yesterday) or 1009?")
    assert match.found("{cand:1010}", "the charger order (1010)?")
    assert not match.found("{cand:1010}", "I need the order number (for example 1010). Could you send it?")


def test_an_alternative_outcome_passes() -> None:
    expect = turn(
        status="awaiting_approval",
        action="cancel_order",
        args={"order_id": 1008},
        must=["1008"],
        **{"or": [{"status": "completed", "action": None, "must": ["1006", "withdrawn"]}]},
    )
    assert score_turn(expect, result("Order 1006 is shipped; your request for 1008 is withdrawn."), MATCH).passed
    kept = result(status="awaiting_approval", pending=approval("cancel_order", order_id=1008))
    assert score_turn(expect, kept, MATCH).passed
    dropped = score_turn(expect, result("Order 1006 is shipped."), MATCH)
    assert not dropped.passed and not dropped.wrong_proposal


def test_unsupported_claims() -> None:
    allowed = merge_claims({"order": {1006}, "amount": {129.0}, "tracking": {"JJD000390010061006"}})
    fine = score_turn(turn(), result("Order 1006 (EUR 129.00), tracking JJD000390010061006."), MATCH, allowed=allowed)
    assert fine.unsupported == []
    made_up = score_turn(turn(), result("Order 1099 costs €19.99, tracking 1Z999AA10000000001."), MATCH,
                         allowed=allowed)
    assert made_up.unsupported == ["order 1099", "amount 19.99", "tracking 1Z999AA10000000001"]
    flagged = result("Fine.", flags=["unsupported_claim"])
    assert score_turn(turn(), flagged, MATCH, allowed=allowed).unsupported == ["flag unsupported_claim"]


def test_claims_skip_postcodes_and_read_amount_formats() -> None:
    found = claims_in("Keizersgracht 123, 1015 CJ Amsterdam; order 1008 costs EUR 1,500.00 or 12,50 EUR.")
    assert found["order"] == {1008}
    assert found["amount"] == {1500.0, 12.5}


def test_count_sentences() -> None:
    assert count_sentences("Do you mean order 1010 (EUR 79.40) or 1009? [kb-track-order]") == 1
    assert count_sentences("Sure. Which order do you mean? I see three.") == 3


def test_summary_figures() -> None:
    rows = [
        {"conversation": "a", "category": "c", "turn": 1, "input": "x", "expected_intent": "i", "passed": True,
         "problems": [], "reason": "", "wrong_proposal": False, "unsupported": []},
        {"conversation": "a", "category": "c", "turn": 2, "input": "y", "expected_intent": "i", "passed": False,
         "problems": [{"kind": "action", "key": "k", "message": "m"}], "reason": "m", "wrong_proposal": True,
         "unsupported": ["order 1099"]},
        {"conversation": "b", "category": "d", "turn": 1, "input": "z", "expected_intent": None, "passed": True,
         "problems": [], "reason": "", "wrong_proposal": False, "unsupported": []},
    ]
    report = summarize(rows, load_suite(), 2, 1.0)
    assert report["first_response_accuracy"] == 0.5
    assert report["turn_accuracy"] == round(2 / 3, 4)
    assert (report["wrong_action_proposals"], report["unsupported_claims"]) == (1, 1)
    assert report["failures"] == [{"conversation": "a", "turn": 2, "input": "y", "reason": "m"}]


# ------------------------------------------------------------------------------------------ the floor
@pytest.mark.slow
def test_answers_floor(seeded_settings: Any, embedder: Any, tmp_path: Path) -> None:
    report = run(seeded_settings, tmp_path, embedder=embedder)
    assert (tmp_path / "answers.json").exists() and (tmp_path / "answers.png").exists()
    assert report["conversations"] >= 80
    assert report["first_response_accuracy"] >= FLOOR, report["top_failure_reasons"]
    assert report["wrong_action_proposals"] == 0, [f for f in report["failures"] if "proposed" in f["reason"]]


def test_the_approvers_copy_of_the_customers_words_is_not_the_systems_statement() -> None:
    result = {
        "status": "awaiting_approval",
        "pending": {
            "action_request": {"action": "update_shipping_address", "args": {"order_id": 1008}},
            "description": "**Change the address**\n\n- new: Stationsplein 45\n\n**Customer wrote:** thanks!",
        },
    }
    seen = Observed.from_result(result, "Please send it to Stationsplein 45, thanks!")
    assert "thanks!" not in seen.description and "Stationsplein 45" in seen.description
