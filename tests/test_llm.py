"""The language-model path, with scripted fake chat models (no network)."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage

from graphs.context import Context
from llm import LLM, CircuitBreaker


class ScriptedModel(FakeMessagesListChatModel):
    """Answers from a fixed list; fails the test on an unexpected extra call."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:  # tool calls work when streamed too
        return self

    calls: int = 0

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        if self.calls >= len(self.responses):
            raise AssertionError("unexpected extra model call")
        self.calls += 1
        return super()._generate(*args, **kwargs)


class BrokenModel(FakeMessagesListChatModel):
    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("provider down")


def with_llm(services: Any, *models: tuple[str, Any]) -> Any:
    return dataclasses.replace(services, llm=LLM(models=list(models)))


def ask(graph: Any, text: str) -> dict:
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    graph.invoke({"messages": [HumanMessage(text)]}, config, context=Context())
    return graph.get_state(config).values


def test_model_answer_is_grounded_and_cites_articles(with_intent: Any, make_graph: Any) -> None:
    reply = AIMessage(
        "Standard delivery takes 2-4 business days [kb-delivery-times].",
        usage_metadata={"input_tokens": 812, "output_tokens": 19, "total_tokens": 831},
    )
    model = ScriptedModel(responses=[reply])
    services = with_llm(with_intent("delivery_period"), ("gpt-4o-mini", model))
    values = ask(make_graph(services), "How long does delivery take?")
    assert values["answer"].startswith("Standard delivery takes 2-4 business days")
    assert "[" in values["answer"] and "]" in values["answer"]
    assert values["usage"]["llm_calls"] == 1
    assert values["usage"]["prompt_tokens"] == 812 and values["usage"]["completion_tokens"] == 19
    assert values["usage"]["cost_usd"] > 0
    assert model.calls == 1


def test_uncited_model_answer_gets_its_sources_appended(with_intent: Any, make_graph: Any) -> None:
    model = ScriptedModel(responses=[AIMessage("It usually takes a few days.")])
    values = ask(make_graph(with_llm(with_intent("delivery_period"), ("m", model))), "How long does delivery take?")
    assert "Sources: [" in values["answer"]


def test_failing_primary_falls_back_to_secondary(with_intent: Any, make_graph: Any) -> None:
    secondary = ScriptedModel(responses=[AIMessage("From the secondary model [kb-x].")])
    services = with_llm(
        with_intent("delivery_period"), ("primary", BrokenModel(responses=[])), ("secondary", secondary)
    )
    values = ask(make_graph(services), "How long does delivery take?")
    assert values["answer"].startswith("From the secondary model")


def test_all_models_down_uses_the_offline_tier(with_intent: Any, make_graph: Any) -> None:
    services = with_llm(with_intent("delivery_period"), ("primary", BrokenModel(responses=[])))
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


def test_open_breaker_skips_the_model_without_calling_it(with_intent: Any, make_graph: Any) -> None:
    model = ScriptedModel(responses=[])  # any call would fail the test
    services = with_llm(with_intent("delivery_period"), ("primary", model))
    breaker = services.llm.breakers["primary"]
    breaker.failures, breaker.opened_at = 3, breaker.clock()
    values = ask(make_graph(services), "How long does delivery take?")
    assert "llm_fallback_offline" in values["flags"] and model.calls == 0


def test_low_confidence_cascade_lets_the_model_pick_among_candidates(with_intent: Any, make_graph: Any) -> None:
    services = with_intent("track_order", 0.3)
    services.classifier.candidates = [("track_order", 0.3), ("delivery_period", 0.25)]
    model = ScriptedModel(responses=[AIMessage('{"intent": "delivery_period", "confidence": 0.9}')])
    values = ask(make_graph(with_llm(services, ("m", model))), "when does stuff usually get here")
    assert values["intent"] == "delivery_period" and "llm_refined_intent" in values["flags"]
    # Capped at the classifier's 0.25 + 0.3: a model cannot buy autonomy; the answer's grounding can only lower it.
    assert values["intent_confidence"] == 0.55 and values["confidence"] <= 0.55
    assert values["decision"] == "review"
    assert values["usage"]["llm_calls"] >= 1


def test_cascade_answer_outside_the_candidates_is_ignored(with_intent: Any, make_graph: Any) -> None:
    model = ScriptedModel(responses=[AIMessage('{"intent": "launch_rocket", "confidence": 1.0}')])
    services = with_llm(with_intent("track_order", 0.3), ("m", model))
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    graph = make_graph(services)
    graph.invoke({"messages": [HumanMessage("hmm")]}, config, context=Context())
    values = graph.get_state(config).values
    assert values["intent"] == "track_order" and values["decision"] == "escalate"


def test_model_writes_the_rolling_summary(with_intent: Any, make_graph: Any) -> None:
    services = with_intent("delivery_period")
    window = services.policy.session.window_turns
    answers = [AIMessage(f"Answer {i} [kb-x].") for i in range(window + 1)]
    summary = AIMessage("Customer asked about delivery times for order 1004 several times.")
    # The first `window` turns only answer; the next turn folds the oldest turn into a summary first.
    model = ScriptedModel(responses=answers[:window] + [summary, answers[window]])
    graph = make_graph(with_llm(services, ("m", model)))
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    for i in range(window + 1):
        graph.invoke({"messages": [HumanMessage(f"Question {i} about order 1004 delivery")]}, config, context=Context())
    values = graph.get_state(config).values
    assert values["summary"].startswith("Customer asked about delivery times")
    assert model.calls == window + 2


def test_a_reply_in_content_blocks_gives_its_text_not_the_block_list() -> None:
    blocks = [{"type": "text", "text": "Your order 1004 shipped."}, {"type": "text", "text": "It arrives Friday."}]
    model = ScriptedModel(responses=[AIMessage(content=blocks)])
    reply = LLM(models=[("primary", model)]).generate([HumanMessage("Where is order 1004?")])
    assert reply is not None and model.calls == 1
    assert reply.text == "Your order 1004 shipped.\nIt arrives Friday."
