"""The language-model path, with scripted chat models (tests/scripted.py; no network).

Each test asserts on what the model was sent, and the `scripted` fixture fails a test whose models got an
unexpected call or left a scripted reply unused.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from dialogue.compose import customer_section
from graphs.context import Context
from llm import LLM, CircuitBreaker
from nodes.generate_response import SYSTEM_PROMPT


def with_llm(services: Any, *models: tuple[str, Any]) -> Any:
    return dataclasses.replace(services, llm=LLM(models=list(models)))


def ask(graph: Any, text: str) -> dict:
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    graph.invoke({"messages": [HumanMessage(text)]}, config, context=Context())
    return graph.get_state(config).values


def test_the_model_is_sent_the_retrieved_articles_and_its_cited_answer_is_kept(
    with_intent: Any, make_graph: Any, scripted: Any
) -> None:
    reply = AIMessage(
        "Standard delivery takes 2-4 business days [kb-delivery-times-by-region].",
        usage_metadata={"input_tokens": 812, "output_tokens": 19, "total_tokens": 831},
    )
    model = scripted(reply, name="primary")
    values = ask(make_graph(with_llm(with_intent("delivery_period"), ("gpt-4o-mini", model))),
                 "How long does delivery take?")
    [(system, human)] = model.received  # one call: a system prompt and the grounded context
    assert isinstance(system, SystemMessage) and system.content == SYSTEM_PROMPT
    assert isinstance(human, HumanMessage) and human.content.endswith("CUSTOMER: How long does delivery take?")
    retrieved = values["knowledge"][:5]
    assert retrieved and "kb-delivery-times-by-region" in [k["id"] for k in retrieved]
    for item in retrieved:  # every passage retrieve_knowledge found is in the prompt, under its id
        # (a known issue by its section written to the customer: its agents' guidance is not for the answer)
        text = (customer_section(item["text"]) if item["kind"] == "known_issue" else "") or item["text"]
        assert f"ARTICLE [{item['id']}] {item['title']}: {text[:200]}" in human.content
    assert values["answer"] == reply.content  # cited, supported: the model's answer goes out as written
    assert values["usage"]["llm_calls"] == 1
    assert values["usage"]["prompt_tokens"] == 812 and values["usage"]["completion_tokens"] == 19
    assert values["usage"]["cost_usd"] > 0


def test_the_model_is_sent_a_known_issues_section_for_the_customer_not_its_agent_guidance(
    with_intent: Any, make_graph: Any, scripted: Any
) -> None:
    model = scripted("Open your banking app, then use Retry payment [kb-ki-pay-3ds-timeout].")
    ask(make_graph(with_llm(with_intent("payment_issue"), ("m", model))), "Checkout shows PAY-3DS-TIMEOUT, help")
    [(_, human)] = model.received
    issue = next(line for line in human.content.split("\n\n") if line.startswith("ARTICLE [kb-ki-pay-3ds-timeout]"))
    assert "Your bank did not receive your confirmation in time" in issue
    assert "Ask the customer" not in issue and "on-call" not in issue
    assert "severity" not in human.content  # the triage's own summary is not material for an answer


def test_the_model_is_sent_the_customers_order_facts(
    with_intent: Any, make_graph: Any, scripted: Any, services: Any
) -> None:
    order = services.shop.query("SELECT status, tracking_number FROM orders WHERE id = 1004")[0]
    model = scripted(f"Order 1004 is {order['status']}; tracking number {order['tracking_number']}.")
    values = ask(make_graph(with_llm(with_intent("track_order"), ("m", model))), "Where is my order 1004?")
    [(_, human)] = model.received
    lookup = next(line for line in human.content.split("\n\n") if line.startswith("LOOKUP get_order: "))
    assert "'order_id': 1004" in lookup and f"'status': '{order['status']}'" in lookup
    assert f"'tracking_number': '{order['tracking_number']}'" in lookup
    assert "Known facts:\n- order ids: 1004" in human.content  # the pinned order id
    assert values["answer"].startswith(f"Order 1004 is {order['status']}; tracking number")


def test_uncited_model_answer_gets_its_sources_appended(with_intent: Any, make_graph: Any, scripted: Any) -> None:
    model = scripted("It usually takes a few days.")
    values = ask(make_graph(with_llm(with_intent("delivery_period"), ("m", model))), "How long does delivery take?")
    assert values["answer"].startswith("It usually takes a few days.\n\nSources: [")
    assert values["citations"] and values["answer"].endswith(", ".join(f"[{c}]" for c in values["citations"]))
    assert all(f"ARTICLE [{c}]" in model.prompts[0] for c in values["citations"])  # it cites what the model saw


def test_failing_primary_falls_back_to_secondary(with_intent: Any, make_graph: Any, scripted: Any) -> None:
    primary = scripted(ConnectionError("provider down"), name="primary")
    secondary = scripted("From the secondary model [kb-x].", name="secondary")
    services = with_llm(with_intent("delivery_period"), ("primary", primary), ("secondary", secondary))
    values = ask(make_graph(services), "How long does delivery take?")
    assert values["answer"].startswith("From the secondary model")
    assert primary.prompts == secondary.prompts  # the secondary got the very prompt the primary failed on


def test_all_models_down_uses_the_offline_tier(with_intent: Any, make_graph: Any, scripted: Any) -> None:
    model = scripted(ConnectionError("provider down"), name="primary")
    services = with_llm(with_intent("delivery_period"), ("primary", model))
    values = ask(make_graph(services), "How long does delivery take?")
    assert "llm_fallback_offline" in values["flags"]
    assert values["answer"] and values["citations"]
    assert values["usage"].get("llm_calls", 0) == 0


def test_circuit_breaker_opens_then_half_opens() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, cooldown_s=10, clock=lambda: now[0])
    breaker.record(False)
    assert breaker.allow()
    breaker.record(False)
    assert not breaker.allow() and breaker.state == "open"
    now[0] = 10.5
    assert breaker.allow() and breaker.state == "half_open"
    breaker.record(True)
    assert breaker.state == "closed"


def test_open_breaker_skips_the_model_without_calling_it(with_intent: Any, make_graph: Any, scripted: Any) -> None:
    model = scripted()  # any call fails the test
    services = with_llm(with_intent("delivery_period"), ("primary", model))
    breaker = services.llm.breakers["primary"]
    breaker.failures, breaker.opened_at = 3, breaker.clock()
    values = ask(make_graph(services), "How long does delivery take?")
    assert "llm_fallback_offline" in values["flags"] and model.received == []


def test_low_confidence_cascade_lets_the_model_pick_among_candidates(
    with_intent: Any, make_graph: Any, scripted: Any
) -> None:
    services = with_intent("track_order", 0.3)
    services.classifier.candidates = [("track_order", 0.3), ("delivery_period", 0.25)]
    # The cascade's choice, then the answer to the refined (review-tier) ticket.
    model = scripted('{"intent": "delivery_period", "confidence": 0.9}', "It takes 2-4 business days.")
    values = ask(make_graph(with_llm(services, ("m", model))), "when does stuff usually get here")
    assert values["intent"] == "delivery_period" and "llm_refined_intent" in values["flags"]
    # Capped at the classifier's 0.25 + 0.3: a model cannot buy autonomy; the answer's grounding can only lower it.
    assert values["intent_confidence"] == 0.55 and values["confidence"] <= 0.55
    assert values["decision"] == "review"
    assert "Allowed intents: track_order, delivery_period, out_of_scope" in model.prompts[0]
    assert "when does stuff usually get here" in model.prompts[0]
    assert values["usage"]["llm_calls"] == 2


def test_cascade_answer_outside_the_candidates_is_ignored(with_intent: Any, make_graph: Any, scripted: Any) -> None:
    model = scripted('{"intent": "launch_rocket", "confidence": 1.0}')  # the escalated ticket gets no model answer
    services = with_llm(with_intent("track_order", 0.3), ("m", model))
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    graph = make_graph(services)
    graph.invoke({"messages": [HumanMessage("hmm")]}, config, context=Context())
    values = graph.get_state(config).values
    assert values["intent"] == "track_order" and values["decision"] == "escalate"


def test_model_writes_the_rolling_summary(with_intent: Any, make_graph: Any, scripted: Any) -> None:
    services = with_intent("delivery_period")
    window = services.policy.session.window_turns
    answers = [AIMessage(f"Answer {i} [kb-x].") for i in range(window + 1)]
    summary = AIMessage("Customer asked about delivery times for order 1004 several times.")
    # The first `window` turns only answer; the next turn folds the oldest turn into a summary first.
    model = scripted(*answers[:window], summary, answers[window])
    graph = make_graph(with_llm(services, ("m", model)))
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    for i in range(window + 1):
        graph.invoke({"messages": [HumanMessage(f"Question {i} about order 1004 delivery")]}, config, context=Context())
    values = graph.get_state(config).values
    assert values["summary"].startswith("Customer asked about delivery times")
    # The summariser was sent the oldest turn (question and answer), not the newest.
    [summarise] = [call for call in model.received if str(call[0].content).startswith("Summarise this")]
    assert [m.content for m in summarise[1:]] == ["Question 0 about order 1004 delivery", "Answer 0 [kb-x]."]


def test_a_reply_in_content_blocks_gives_its_text_not_the_block_list(scripted) -> None:  # noqa: ANN001
    blocks = [{"type": "text", "text": "Your order 1004 shipped."}, {"type": "text", "text": "It arrives Friday."}]
    model = scripted(AIMessage(content=blocks))
    reply = LLM(models=[("primary", model)]).generate([HumanMessage("Where is order 1004?")])
    assert reply is not None and len(model.received) == 1
    assert reply.text == "Your order 1004 shipped.\nIt arrives Friday."
