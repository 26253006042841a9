"""Issue 7's failure classes, through the whole graph with the real shop classifier (offline)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_graph import resume, run, waiting_on
from tests.test_llm import with_llm


@pytest.fixture
def graph(services: Any, make_graph: Any) -> Any:
    return make_graph(services)


def test_phone_change_with_a_dashed_local_number_is_understood(graph: Any, services: Any) -> None:
    snap, _ = run(graph, "I want to change my phone number to 0612-987654")
    node, payload = waiting_on(snap)
    assert node == "request_approval"
    assert payload["action_request"]["args"] == {"field": "phone", "value": "+31612987654"}
    assert "from +31612345678 to +31612987654" in payload["description"]


def test_address_change_of_a_delivered_order_is_refused_before_anyone_is_asked(graph: Any) -> None:
    snap, _ = run(graph, "I want to change the delivery address of order 1004 to 12 Baker Street, London NW1 6XE")
    assert waiting_on(snap) == (None, None) and "request_approval" not in snap.values["route"]
    assert snap.values["action"]["args"]["address"] == "12 Baker Street, London NW1 6XE"
    answer = snap.values["answer"]
    assert "order 1004 is delivered" in answer.lower() and "[kb-change-shipping-address]" in answer


def test_refund_of_a_fully_refunded_order_is_refused_with_the_facts(graph: Any) -> None:
    snap, _ = run(graph, "refund me 500 dollars for order 1002 now")
    assert waiting_on(snap) == (None, None) and "request_approval" not in snap.values["route"]
    assert snap.values["action"]["args"]["currency"] == "USD"
    assert "already been fully refunded (EUR 39.45)" in snap.values["answer"]


def test_a_cancelled_order_gets_no_tracking_text(graph: Any) -> None:
    snap, _ = run(graph, "what is the status of order 1003?")
    answer = snap.values["answer"].lower()
    assert "was cancelled on" in answer
    assert not any(w in answer for w in ("out for delivery", "tracking", "label created", "expected on"))


def test_a_card_decline_is_not_answered_with_the_order_list(graph: Any) -> None:
    snap, _ = run(graph, "my card keeps getting declined with error 05")
    answer = snap.values["answer"]
    assert "1007" in answer and "declined" in answer.lower()
    assert not any(str(o) in answer for o in (1001, 1002, 1003, 1004, 1005, 1006, 1008, 1009, 1010))


def test_a_checkout_error_is_not_answered_with_another_orders_failed_payment(graph: Any) -> None:
    # Order 1007's payment failed three days ago (PAY-402); a 500 at checkout now is not about it.
    snap, _ = run(graph, "Checkout fails with HTTP 500 every time I click pay")
    answer = snap.values["answer"]
    assert "1007" not in answer and "PAY-402" not in answer and "order_id" not in snap.values.get("entities", {})
    assert "[kb-ki-chk-500-checkout-error]" in answer and "place the order again" in answer
    assert "From what you sent" not in answer and "the customer" not in answer.lower()


def test_another_error_code_than_the_failed_orders_own_is_not_that_order(graph: Any) -> None:
    snap, _ = run(graph, "My card payment failed with PAY-3DS-TIMEOUT, what now?")
    answer = snap.values["answer"]
    assert "1007" not in answer and "[kb-ki-pay-3ds-timeout]" in answer and "banking app" in answer
    assert "the customer" not in answer.lower()  # the known issue's section for the customer, not the agents' fix


def test_a_follow_up_that_gives_the_order_continues_the_task(graph: Any) -> None:
    first, thread = run(graph, "where is my order?")
    assert first.values["answer"].startswith("Which order do you mean")
    assert first.values["answer"].count("?") == 1 and "1006 (shipped, placed 4 days ago)" in first.values["answer"]
    second, _ = run(graph, "it's 1006", thread=thread)
    assert second.values["intent"] == "track_order" and "task_continued" in second.values["flags"]
    assert "DHL, tracking number JJD000390010061006" in second.values["answer"]


def test_asking_whether_a_shipped_order_can_be_cancelled_gets_the_policy_not_an_approval(graph: Any) -> None:
    _, thread = run(graph, "Where is my order 1006?")
    snap, _ = run(graph, "ok and can I still cancel it?", thread=thread)
    assert waiting_on(snap) == (None, None) and "request_approval" not in snap.values["route"]
    answer = snap.values["answer"]
    assert "order 1006 has already shipped" in answer.lower() and "refuse the delivery" in answer


def test_asking_whether_an_open_order_can_be_cancelled_offers_and_yes_asks_for_approval(graph: Any) -> None:
    snap, thread = run(graph, "Can I still cancel order 1008?")
    assert waiting_on(snap) == (None, None)
    assert snap.values["answer"].startswith("Yes: order 1008 is processing") and "Shall I" in snap.values["answer"]
    snap, _ = run(graph, "yes please", thread=thread)
    node, payload = waiting_on(snap)
    assert node == "request_approval" and payload["action_request"]["args"]["order_id"] == 1008


def test_an_edited_refund_is_confirmed_with_the_edited_amount(graph: Any, services: Any) -> None:
    snap, thread = run(graph, "I'd like a refund of 6 euros for order 1004, the webcam has a scratch")
    node, payload = waiting_on(snap)
    assert node == "request_approval" and "**Refund EUR 6.00 to the customer's card**" in payload["description"]
    done = resume(graph, thread, {"type": "edit", "args": {"args": {"amount": 2}}})
    assert "refunded EUR 2.00 for order 1004" in done.values["answer"] and "6.00" not in done.values["answer"]
    refunds = services.shop.query("SELECT amount_cents FROM refunds WHERE order_id = 1004")
    assert [r["amount_cents"] for r in refunds] == [200]


def test_an_edit_that_breaks_a_precondition_is_refused(graph: Any, services: Any) -> None:
    _, thread = run(graph, "I'd like a refund of 6 euros for order 1004")
    done = resume(graph, thread, {"type": "edit", "args": {"args": {"amount": 5000}}})
    node, payload = waiting_on(done)  # refused, and asked again with the reason: the approval still waits
    assert node == "request_approval" and "exceeds" in payload["error"]
    assert done.values["status"] == "awaiting_approval" and "execute_action" not in done.values["route"]
    assert services.shop.query("SELECT COUNT(*) AS n FROM refunds WHERE order_id = 1004")[0]["n"] == 0


def test_never_mind_drops_the_task_and_withdraws_the_pending_approval(graph: Any, services: Any) -> None:
    _, thread = run(graph, "cancel order 1009")
    snap, _ = run(graph, "no wait, stop, don't cancel it", thread=thread)
    assert waiting_on(snap) == (None, None)
    assert "withdrawn your request to cancel order 1009" in snap.values["answer"]
    assert services.shop.query("SELECT status FROM orders WHERE id = 1009")[0]["status"] == "processing"


def test_a_new_message_keeps_the_pending_approval_and_says_so(graph: Any, services: Any) -> None:
    _, thread = run(graph, "Please cancel order 1008")
    snap, _ = run(graph, "where is order 1006?", thread=thread)
    node, payload = waiting_on(snap)
    assert node == "request_approval" and payload["action_request"]["args"]["order_id"] == 1008
    assert snap.values["status"] == "awaiting_approval"
    assert "cancel order 1008 is still waiting for approval" in snap.values["answer"]
    done = resume(graph, thread, {"type": "accept"})
    assert "Done: order 1008 is cancelled" in done.values["answer"]
    assert services.shop.query("SELECT status FROM orders WHERE id = 1008")[0]["status"] == "cancelled"


def test_the_customers_own_email_is_shown_unmasked(graph: Any) -> None:
    snap, _ = run(graph, "I want to change my email to dana.new@example.com")
    node, payload = waiting_on(snap)
    assert node == "request_approval" and "from demo@example.com to dana.new@example.com" in payload["description"]


def test_which_order_offers_only_refundable_candidates(graph: Any) -> None:
    snap, _ = run(graph, "I want a refund.")
    answer = snap.values["answer"]
    assert "1004 (delivered" in answer and "1003 (cancelled" in answer and "1001" not in answer


def test_a_model_answer_with_an_unsupported_claim_is_replaced_by_the_offline_answer(
    with_intent: Any, make_graph: Any, scripted: Any
) -> None:
    model = scripted("Order 1006 arrives on 2026-12-25 and costs EUR 99.00.")
    services = with_llm(with_intent("track_order", 0.95), ("primary", model))
    snap, _ = run(make_graph(services), "Where is my order 1006?")
    assert "unsupported_claim" in snap.values["flags"]
    assert "2026-12-25" not in snap.values["answer"] and "JJD000390010061006" in snap.values["answer"]
    [sent] = model.prompts
    assert "JJD000390010061006" in sent  # the model was given the facts it should have used


def test_a_refund_for_one_named_item_is_that_items_price(graph: Any) -> None:
    snap, _ = run(graph, "I want a refund for my monitor from order 1004")
    node, payload = waiting_on(snap)
    assert node == "request_approval" and payload["action_request"]["args"]["amount"] == 329.0
    assert "**Refund EUR 329.00" in payload["description"]


def test_ok_thanks_while_an_approval_waits_keeps_it_and_says_so(graph: Any) -> None:
    _, thread = run(graph, "Please cancel order 1008")
    snap, _ = run(graph, "ok thanks", thread=thread)
    node, payload = waiting_on(snap)
    assert node == "request_approval" and payload["action_request"]["args"]["order_id"] == 1008
    assert "cancel order 1008 is waiting for a colleague's approval" in snap.values["answer"]
    assert "**Customer wrote:** Please cancel order 1008" in payload["description"]


def test_a_full_refund_stays_full_even_when_an_item_is_named(graph: Any) -> None:
    snap, _ = run(graph, "I want a full refund for order 1004, the monitor is not what I expected.")
    node, payload = waiting_on(snap)
    assert node == "request_approval" and "amount" not in payload["action_request"]["args"]
    assert "**Refund EUR 393.90" in payload["description"]


def test_a_known_decline_says_how_to_retry_once(graph: Any) -> None:
    # The order's facts advise a retry; the PAY-402 known issue says it for this very decline: one of them, not both.
    snap, _ = run(graph, "Checkout keeps failing with error PAY-402 card declined, what can I do?")
    answer = snap.values["answer"]
    assert "[kb-ki-pay-402-card-declined]" in answer and "1007" in answer
    assert answer.lower().count("within 48 hours") == 1, answer
    assert answer.lower().count("nothing was charged") + answer.lower().count("nothing is charged") == 1, answer


def test_a_failed_payment_is_not_explained_with_another_error_code(graph: Any) -> None:
    # Order 1007 failed with PAY-402 (a decline); the general payment article's PAY-503 outage is not this order.
    snap, _ = run(graph, "Why did the payment for order 1007 fail?")
    answer = snap.values["answer"]
    assert "PAY-402" in answer and "declined" in answer
    assert "PAY-503" not in answer and "did not answer in time" not in answer, answer


def test_a_status_question_that_says_the_app_crashes_gets_the_status_and_the_apps_fix(graph: Any) -> None:
    snap, _ = run(graph, "Your app shuts down every time I open the delivery status of order 1006.")
    answer = snap.values["answer"]
    assert "JJD000390010061006" in answer  # where the parcel is: the order's facts
    assert "[kb-app-website-problems]" in answer and "Update the app" in answer, answer  # and what to do about the app
    plain, _ = run(graph, "Where is my order 1006?")
    assert "[kb-" not in plain.values["answer"]  # a plain status question still gets the facts alone


def test_a_known_issue_on_the_tracking_page_is_not_answered_with_the_app_article(graph: Any) -> None:
    snap, _ = run(graph, "The tracking page for order 1006 is blank and only shows TRK-404.")
    answer = snap.values["answer"]
    assert "[kb-ki-trk-404-tracking-not-active]" in answer and "[kb-app-website-problems]" not in answer, answer


def _paid_on(services: Any, order_id: int) -> str:
    """The day of the order's latest payment (the demo shop's dates are relative to when it was seeded)."""
    with services.shop.reading() as conn:
        row = conn.execute("SELECT created_at FROM payments WHERE order_id = ? ORDER BY id DESC", (order_id,))
        return str(row.fetchone()[0])[:10]


def test_a_double_charge_question_is_answered_with_the_orders_payment_record(graph: Any, services: Any) -> None:
    # Before: order 1006's carrier, tracking number and delivery date, then the hold passage.
    snap, _ = run(graph, "My card was charged twice for order 1006")
    answer = snap.values["answer"]
    day = _paid_on(services, 1006)
    assert f"Order 1006 (Aurora Wireless Headphones, EUR 129.00): we have one charge for it, EUR 129.00 to your " \
           f"card on {day}." in answer
    assert "hold" in answer and "refund the duplicate" in answer
    assert "JJD" not in answer and "tracking" not in answer.lower() and "expected on" not in answer


def test_a_real_double_charge_says_so(graph: Any, services: Any) -> None:
    with services.shop.transaction() as conn:
        conn.execute("INSERT INTO payments (order_id, method, amount_cents, status, created_at) "
                     "SELECT order_id, method, amount_cents, status, created_at FROM payments WHERE order_id = 1008")
    snap, _ = run(graph, "I think I was charged twice for order 1008.")
    answer = snap.values["answer"]
    assert "we have 2 charges for it, EUR 259.60 in total against the order's EUR 129.80" in answer
    assert "refund the duplicate" in answer


def test_a_payment_question_about_a_held_payment_says_it_is_a_hold(graph: Any, services: Any) -> None:
    snap, _ = run(graph, "There's a problem with the payment for order 1010")
    day = _paid_on(services, 1010)
    assert f"the EUR 79.40 on your card from {day} is still a hold (authorised), not a charge" in snap.values["answer"]


def test_a_blank_tracking_page_without_an_order_number_gets_help_and_one_question(graph: Any) -> None:
    # Before: only "Which order do you mean: ...?", nothing about the page that does not work.
    snap, _ = run(graph, "The tracking page is just blank when I open it")
    answer = snap.values["answer"]
    help_, question = answer.split("\n\n")
    assert help_.startswith("A page shows an error or does not load: Reload the page")
    assert help_.endswith("[kb-app-website-problems]") and snap.values["citations"] == ["kb-app-website-problems"]
    assert question.startswith("Which order do you mean") and answer.count("?") == 1
    assert snap.values["task"]["asked"] == ["order_id"]  # the next message can still be just the number


def test_an_app_that_freezes_gets_the_apps_section_not_the_checkout_one(graph: Any) -> None:
    snap, _ = run(graph, "The app freezes when I open my orders, where is my parcel?")
    answer = snap.values["answer"]
    assert answer.startswith("The app closes, freezes or shows a blank screen: Update the app")
    assert "When checkout fails" not in answer and "Which order do you mean" in answer


@pytest.mark.parametrize("text", ["the page is just blank", "my screen stays white", "the app shows empty",
                                  "the site won't load"])
def test_malfunction_phrasings(text: str) -> None:
    from dialogue.compose import MALFUNCTION

    assert MALFUNCTION.search(text)


def test_a_tracking_question_without_a_malfunction_is_only_asked_which_order(graph: Any) -> None:
    snap, _ = run(graph, "where is my parcel?")
    assert snap.values["answer"].startswith("Which order do you mean") or \
        snap.values["answer"].startswith("Do you mean")


def test_the_shops_app_crashing_is_not_out_of_scope(graph: Any) -> None:
    # Before: "That request is outside what I can help with here" (the classifier's out-of-scope examples include
    # programming crashes).
    snap, _ = run(graph, "My app crashes when I open checkout")
    assert snap.values["intent"] != "out_of_scope" and "intent_from_malfunction" in snap.values["flags"]
    node, payload = waiting_on(snap)
    assert node == "review_gate" and snap.values["status"] == "awaiting_review"  # a colleague reads it first
    draft = payload["action_request"]["args"]["draft"]
    assert "The app closes, freezes or shows a blank screen: Update the app" in draft


def test_the_shops_app_crashing_on_the_way_to_tracking_gets_help_and_the_order_question(graph: Any) -> None:
    snap, _ = run(graph, "the app crashes when I try to see where my parcel is")
    assert snap.values["intent"] == "track_order" and snap.values["status"] == "completed"
    answer = snap.values["answer"]
    assert answer.startswith("The app closes, freezes or shows a blank screen:") and "Which order do you mean" in answer


@pytest.mark.parametrize("text", ["segmentation fault (core dumped) in my C program, why?",
                                  "my app crashes on startup, how do I debug it?"])
def test_a_crash_in_someone_elses_software_stays_out_of_scope(graph: Any, text: str) -> None:
    snap, _ = run(graph, text)
    assert snap.values["intent"] == "out_of_scope" and "intent_from_malfunction" not in snap.values["flags"]
