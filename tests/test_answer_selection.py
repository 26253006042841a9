"""What the answer says and does for questions that look like requests, and which passages answer them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from classifier.policy import interchangeable
from config.settings import Workflow
from dialogue.geo import regions_in, with_regions
from dialogue.sentences import SentenceScorer, contradicts, sentences_of
from dialogue.task import is_howto, is_question, order_by_item
from tests.test_graph import run, waiting_on
from tests.test_shop_tools import as_caller


@pytest.fixture
def graph(services: Any, make_graph: Any) -> Any:
    return make_graph(services)


def newsletter_subscribed(services: Any, user: str = "demo") -> bool:
    from tools.shop import run_tool

    return run_tool(services.shop, "get_account", {}, caller=as_caller("get_account", user)).data[
        "newsletter_subscribed"
    ]


def test_a_question_about_emails_after_unsubscribing_subscribes_nobody(graph: Any, services: Any) -> None:
    snap, thread = run(graph, "unsubscribe me from the newsletter")
    assert newsletter_subscribed(services) is False
    snap, _ = run(graph, "and will I still get emails about my orders?", thread)
    assert newsletter_subscribed(services) is False, "a question must not re-subscribe the customer"
    answer = snap.values["answer"].lower()
    assert "you're subscribed" not in answer and "service emails" in answer
    assert waiting_on(snap) == (None, None)


def test_an_order_named_by_its_item_is_looked_up(graph: Any) -> None:
    snap, _ = run(graph, "When will my new headphones get here?")
    assert snap.values["entities"].get("order_id") == 1006
    answer = snap.values["answer"]
    assert "1006" in answer and "expected on" in answer.lower()
    assert snap.values["decision"] == "auto"


def test_an_amount_back_on_a_named_order_is_a_refund_request_even_as_a_question(graph: Any) -> None:
    snap, _ = run(graph, "Can I get 20 euros back on order 1004?")
    assert snap.values["intent"] == "get_refund"


def test_order_by_item_needs_exactly_one_match() -> None:
    orders = [
        {"order_id": 1, "items": "Aurora Wireless Headphones"},
        {"order_id": 2, "items": "Volt 65 W USB-C Charger, Hub 7-in-1 USB-C Adapter"},
        {"order_id": 3, "items": "Volt 65 W USB-C Charger"},
    ]
    assert order_by_item("when do my headphones arrive?", orders) == 1
    assert order_by_item("where is my charger?", orders) is None  # two orders hold one
    assert order_by_item("how long does delivery take?", orders) is None


def test_questions_and_requests_are_told_apart() -> None:
    assert is_question("and will I still get emails about my orders?")
    assert not is_question("can you unsubscribe me?")
    assert not is_question("please change my email?")
    assert not is_question("unsubscribe me")
    assert is_howto("Which email address and phone number do you have on file for me?")
    assert is_howto("What email do you have for me right now?")
    assert not is_howto("Which of my orders can you refund?")


def test_interchangeable_intents_are_knowledge_only_with_the_same_tools() -> None:
    kb = Workflow(specialists=("retrieve_knowledge",), read_tools=("get_order",))
    flows = {
        "delivery_options": kb,
        "delivery_period": kb,
        "check_invoice": Workflow(specialists=("retrieve_knowledge",), read_tools=("get_invoice",)),
        "cancel_order": Workflow(
            specialists=("retrieve_knowledge", "plan_action"), action="cancel_order", requires=("order_id",)
        ),
    }
    cands = [("delivery_options", 0.52), ("delivery_period", 0.4), ("check_invoice", 0.05), ("cancel_order", 0.03)]
    assert interchangeable("delivery_options", cands, flows) == ["delivery_options", "delivery_period"]
    # an action flow never pools its doubt with another
    assert interchangeable("cancel_order", [("cancel_order", 0.5), ("delivery_period", 0.45)], flows) == [
        "cancel_order"
    ]
    # a candidate below the floor does not widen the group
    assert interchangeable("delivery_options", [("delivery_options", 0.9), ("delivery_period", 0.05)], flows) == [
        "delivery_options"
    ]


def test_an_ambiguous_delivery_question_is_answered_without_review(graph: Any) -> None:
    snap, _ = run(graph, "How much is express delivery and how fast is it?")
    values = snap.values
    assert values["decision"] == "auto", values.get("candidates")
    assert "[kb-delivery-options]" in values["answer"] and "9.95" in values["answer"]


def test_lower_case_list_items_finish_the_sentence_that_introduces_them() -> None:
    article = (
        "## Correcting an invoice\n\nYou can ask for a correction within **90 days** for:\n\n"
        "- the billing name,\n- the billing address.\n\n"
        "- **The VAT rate looks wrong.** Most goods carry the standard rate.\n"
    )
    sentences = sentences_of(article)
    assert sentences[0] == (
        "Correcting an invoice: You can ask for a correction within 90 days for: the billing name, the billing address."
    )
    assert "The VAT rate looks wrong: Most goods carry the standard rate." in sentences


def test_countries_are_read_as_the_regions_policies_use() -> None:
    assert regions_in("How long does standard delivery to Spain take?") == ["EU"]
    assert regions_in("shipping to Norway or Germany?") == ["neighbouring countries", "EU"]
    assert regions_in("delivery to my house") == []
    assert with_regions("to España please") == "to España please (EU)"


def test_standard_delivery_to_an_eu_country_quotes_the_eu_row(graph: Any) -> None:
    snap, _ = run(graph, "How long does standard delivery to Spain take?")
    answer = snap.values["answer"]
    assert "5–8" in answer and "Rest of the world" not in answer


def test_a_strong_article_for_the_intent_lifts_a_review_band_answer() -> None:
    from config.settings import load_policy
    from nodes.generate_response import assess

    policy = load_policy(Path(__file__).resolve().parents[1] / "config" / "policy.yaml")
    state = {"intent_confidence": 0.81, "decision": "review"}
    strong = {"articles": [{"id": "kb-x", "relevance": 0.53, "for_intent": True}]}
    weak = {"articles": [{"id": "kb-x", "relevance": 0.35, "for_intent": True}]}
    other = {"articles": [{"id": "kb-x", "relevance": 0.7, "for_intent": False}]}
    assert assess(state, strong, policy)["decision"] == "auto"
    assert assess(state, weak, policy)["decision"] == "review"
    assert assess(state, other, policy)["decision"] == "review"
    # escalations stay escalations: the boost is for the review band only
    assert assess({"intent_confidence": 0.4, "decision": "escalate"}, strong, policy)["decision"] == "escalate"


def test_a_sentence_that_denies_what_the_customer_reports_contradicts_her() -> None:
    assert contradicts("Wait 10 minutes; you will never be charged twice for one order.", "I was charged twice.")
    # A question is answered by a "no": it states nothing to contradict.
    assert not contradicts("Methods we do not accept: Cash on delivery.", "Can I pay cash on delivery?")
    assert not contradicts("You will never be charged twice for one order.", "Will I be charged twice?")
    assert not contradicts("Usually one of the two is a hold.", "I was charged twice.")


PAYMENTS = """# Payments

- **Duplicate payment attempt**: you pressed pay twice. Wait 10 minutes; you will never be charged twice for one order.
- **Card declined**: call the number on the back of your card.

## Charged but no order confirmation?

Do not pay again. If after an hour you see a charge but no order, contact us.

## Charged twice?

Usually one of the two is a hold that your bank releases within 5 business days. If both are final charges, we
refund the duplicate immediately once you tell us.
"""


def test_the_section_headed_by_the_customers_question_answers_it(embedder: Any) -> None:
    got = SentenceScorer(embedder).best(PAYMENTS, "My card was charged twice for order 1004", 2)
    assert got == [
        "Charged twice?: Usually one of the two is a hold that your bank releases within 5 business days.",
        "If both are final charges, we refund the duplicate immediately once you tell us.",
    ]


def test_a_double_charge_is_answered_with_the_hold_and_the_refund_not_a_denial(graph: Any) -> None:
    snap, _ = run(graph, "My card was charged twice for order 1004")
    answer = snap.values["answer"]
    assert "refund the duplicate" in answer and "hold" in answer, answer
    assert "never be charged twice" not in answer and "back of your card" not in answer, answer


def test_the_one_before_that_is_the_order_placed_before_the_one_under_discussion() -> None:
    from datetime import date

    from dialogue.task import resolve_order

    orders = [{"order_id": n, "created_at": f"2026-11-{n - 1000:02d}", "status": "shipped"} for n in (1001, 1002, 1003)]
    today = date(2026, 12, 1)

    def pick(text: str, current: int) -> Any:
        return resolve_order(text, {}, task={"order_id": current}, orders=orders, today=today)

    assert pick("and the one before that?", 1003).order_id == 1002
    assert pick("what about the previous order?", 1002).order_id == 1001
    assert pick("and the next one?", 1001).order_id == 1002
    assert pick("and the one after that?", 1003).order_id is None  # none newer: the orders are offered instead
    assert pick("and the one before that?", 1001).candidates == (1003, 1002, 1001)
    assert pick("is that one shipped?", 1002).order_id == 1002  # "that" alone stays on the current order


def test_a_follow_up_about_the_order_before_answers_for_that_order(graph: Any) -> None:
    snap, thread = run(graph, "What's the status of my most recent order?")
    assert "1010" in snap.values["answer"]
    snap, _ = run(graph, "and the one before that?", thread)
    assert "1009" in snap.values["answer"] and "1010" not in snap.values["answer"], snap.values["answer"]


def test_a_missing_paypal_refund_is_answered_with_the_paypal_timing(graph: Any) -> None:
    snap, _ = run(graph, "You refunded order 1002 but I can't find the money in my PayPal account.")
    answer = snap.values["answer"]
    assert "24 hours for PayPal" in answer, answer
    assert "*" not in answer, "markdown emphasis is not shown to the customer as asterisks"


def test_passages_about_the_orders_own_payment_method_are_preferred() -> None:
    from dialogue.facts import about_method

    assert about_method("up to 5 business days for cards, 24 hours for PayPal.", "paypal")
    assert not about_method("up to 5 business days for cards, 24 hours for PayPal.", "card")
    assert not about_method("Open the order under Account > Orders.", "paypal")
