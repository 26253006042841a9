"""Tickets about the shop's own site or app failing: known-issue evidence decides scope and intent, the technical
analyst reads every error signal, and the answer is written to the customer."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from langgraph.runtime import Runtime

from dialogue.task import about_failed_payment
from graphs.context import Context
from nodes import classify_intent
from tests.conftest import StubClassifier
from tests.test_graph import run
from tools.log_triage import KnownIssueMatch, is_shop_exception, match_known_issues, triage


def _classify(services: Any, text: str) -> dict[str, Any]:
    node = classify_intent.make(lambda: services)
    return node({"ticket": text, "entities": {}}, Runtime(context=Context(user_id="demo", tenant_id="default")))


def _stub(services: Any, intent: str, confidence: float, candidates: list[tuple[str, float]] | None = None) -> Any:
    clf = StubClassifier(intent, confidence)
    clf.candidates = list(candidates or [])
    return dataclasses.replace(services, classifier=clf)


class _CountingKnowledge:
    """The services' knowledge base, counting `known_issues` reads."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.reads = inner, 0

    def known_issues(self, **kwargs: Any) -> list[dict[str, Any]]:
        self.reads += 1
        return self.inner.known_issues(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


# ------------------------------------------------------------------ (a) known-issue evidence decides scope and intent


def test_a_known_error_code_takes_an_out_of_scope_ticket_in_scope(services: Any) -> None:
    svc = _stub(services, "out_of_scope", 0.96, [("out_of_scope", 0.96), ("payment_issue", 0.02)])
    update = _classify(svc, "Error: CHK-500 internal server error at checkout, trace id 8f2a")
    # kb-ki-chk-500-checkout-error lists [place_order, payment_issue]; the classifier rates payment_issue higher.
    assert update["intent"] == "payment_issue"
    assert "intent_from_known_issue" in update["flags"]
    assert update["confidence"] >= svc.policy.confidence.auto and update["decision"] == "auto"


def test_the_articles_intent_the_classifier_rates_highest_wins(services: Any) -> None:
    svc = _stub(services, "track_order", 0.6, [("track_order", 0.6), ("place_order", 0.3), ("payment_issue", 0.05)])
    update = _classify(svc, "The checkout says CHK-500 when I confirm")
    assert update["intent"] == "place_order" and "intent_from_known_issue" in update["flags"]


def test_a_shop_exception_counts_like_a_code(services: Any) -> None:
    svc = _stub(services, "out_of_scope", 0.9)
    text = "Traceback (most recent call last):\n  File \"checkout.py\", line 3, in pay\nCheckoutServiceError: no stock"
    update = _classify(svc, text)
    assert update["intent"] in ("place_order", "payment_issue") and "intent_from_known_issue" in update["flags"]


@pytest.mark.parametrize(
    "text",
    [
        "My router page shows HTTP 500 Internal Server Error",  # an HTTP status alone: any site shows one
        "My Flask script raises sqlite3.OperationalError: database is locked",  # a library's exception
        "python says TimeoutError when my script calls the API",  # a built-in (INV-PDF-500 lists TimeoutError)
        "Who won the football match last night?",
    ],
)
def test_no_shop_evidence_leaves_out_of_scope_alone(services: Any, text: str) -> None:
    update = _classify(_stub(services, "out_of_scope", 0.9), text)
    assert update["intent"] == "out_of_scope" and "intent_from_known_issue" not in update.get("flags", [])


def test_a_confident_in_scope_ticket_reads_no_known_issues(services: Any) -> None:
    counting = _CountingKnowledge(services.knowledge)
    svc = dataclasses.replace(_stub(services, "payment_issue", 0.97), knowledge=counting)
    update = _classify(svc, "Checkout shows PAY-402, card declined")
    assert update["intent"] == "payment_issue" and counting.reads == 0
    low = dataclasses.replace(_stub(services, "out_of_scope", 0.9), knowledge=counting)
    _classify(low, "What's the weather tomorrow?")
    assert counting.reads == 0  # nothing that looks like an error: no lookup either
    _classify(low, "Checkout shows PAY-402, card declined")
    assert counting.reads == 1


def test_decisive_evidence_is_the_shops_own() -> None:
    assert is_shop_exception("CheckoutServiceError") and is_shop_exception("ThreeDSecureTimeout")
    assert not is_shop_exception("TimeoutError") and not is_shop_exception("sqlite3.OperationalError")
    articles = [{"id": "kb-x", "title": "x", "kind": "known_issue", "error_codes": ["CHK-500"],
                 "exceptions": ["CheckoutServiceError", "sqlite3.OperationalError"], "http_status": [500]}]
    by_code, by_lib, by_status = (
        match_known_issues(triage(t), articles)
        for t in ("CHK-500 at checkout", "OperationalError: database is locked", "HTTP 500")
    )
    assert by_code[0].decisive and by_code[0].codes == ["CHK-500"]
    assert not by_lib[0].decisive and by_lib[0].exceptions == ["sqlite3.OperationalError"]
    assert not by_status[0].decisive and isinstance(by_status[0], KnownIssueMatch)


def test_known_issues_carry_their_intents(services: Any) -> None:
    known = {a["id"]: a for a in services.knowledge.known_issues(tenant_id="default")}
    assert known["kb-ki-chk-500-checkout-error"]["intents"] == ["place_order", "payment_issue"]
    assert "## What you can do" in known["kb-ki-chk-500-checkout-error"]["body"]


# ------------------------------------------------------------------ routing: the analyst reads every error signal


def test_a_ticket_with_an_error_code_gets_the_analyst_whatever_its_workflow(with_intent: Any, make_graph: Any) -> None:
    snap, _ = run(make_graph(with_intent("place_order", 0.95)), "The checkout page says CHK-500 when I pay")
    route = snap.values["route"]
    assert route[4:6] == ["retrieve_knowledge", "analyze_technical"]  # fanned out, as for payment_issue
    answer = snap.values["answer"]
    assert "[kb-ki-chk-500-checkout-error]" in answer and "place the order again" in answer
    assert "the customer" not in answer.lower() and "severity" not in answer


def test_a_ticket_without_error_signals_keeps_its_workflows_route(with_intent: Any, make_graph: Any) -> None:
    snap, _ = run(make_graph(with_intent("place_order", 0.95)), "How do I place an order for two lamps?")
    assert "analyze_technical" not in snap.values["route"]


# ------------------------------------------------------------------ (d) which order a payment question is about


@pytest.mark.parametrize(
    ("text", "codes", "meant"),
    [
        ("My payment failed.", (), True),
        ("my card keeps getting declined with error 05", (), True),
        ("Checkout keeps failing with PAY-402 card declined", ("PAY-402",), True),
        ("Checkout keeps failing with PAY-402 card declined", ("PAY-3DS-TIMEOUT",), False),  # another failure
        ("Checkout fails with HTTP 500 every time I click pay", (), False),  # the site failing
        ("The app crashes when I try to pay, the payment never goes through", (), False),
        ("Payment failed, the page printed CardGatewayError: upstream closed", (), False),  # an exception
        ("I think I was charged twice", (), False),  # a charge, not a failed payment
        ("Where is my parcel?", (), False),
    ],
)
def test_a_failed_payment_is_meant_only_when_the_customer_speaks_of_one(
    text: str, codes: tuple[str, ...], meant: bool
) -> None:
    assert about_failed_payment(text, codes) is meant
