"""Issue 9, routing by task complexity: nodes name their task (classify, summarise, answer) and the answer's
complexity, and the shipped routes (config/error-policies.yaml) send simple steps to the cheap tier and hard
answers (technical, multi-part, several orders) to the strong one. Scripted models (tests/scripted.py) record what
they were sent, and fail the test on a call their script does not hold or a scripted reply left unused."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from config.settings import ComplexityRules, Settings
from graphs.context import Context
from llm import LLM
from llm.complexity import answer_complexity, questions_in
from tests.scripted import ScriptedChatModel

CASCADE = '{"intent": "delivery_period", "confidence": 0.9}'


def tiers(scripted: Any, **scripts: list[Any]) -> dict[str, ScriptedChatModel]:
    """The three shipped endpoints as scripted models; a tier not named gets no reply (a call to it fails)."""
    return {name: scripted(*scripts.get(name, []), name=name) for name in ("primary", "secondary", "strong")}


def answer(name: str) -> str:
    return f"From {name} [kb-x]."


def with_routes(services: Any, models: dict[str, ScriptedChatModel]) -> Any:
    shipped = Settings().error_policies()
    llm = LLM(
        models=list(models.items()),
        routes={task: dict(by) for task, by in shipped.routes.items()},
        complexity=shipped.complexity,
    )
    return dataclasses.replace(services, llm=llm)


def ask(graph: Any, text: str) -> dict:
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    graph.invoke({"messages": [HumanMessage(text)]}, config, context=Context())
    return graph.get_state(config).values


def called(models: dict[str, ScriptedChatModel]) -> dict[str, int]:
    return {name: len(m.prompts) for name, m in models.items()}


def test_a_simple_answer_goes_to_the_cheap_tier(with_intent: Any, make_graph: Any, scripted: Any) -> None:
    models = tiers(scripted, primary=[answer("primary")])
    ask(make_graph(with_routes(with_intent("delivery_period"), models)), "How long does delivery take?")
    assert called(models) == {"primary": 1, "secondary": 0, "strong": 0}
    assert "How long does delivery take?" in models["primary"].prompts[0]


@pytest.mark.parametrize(
    ("intent", "text"),
    [
        ("payment_issue", "My payment for order 1007 failed with error PAY-402 and HTTP 402, what now?"),
        ("delivery_period", "How long does delivery take? And do you ship to Norway?"),
        ("track_order", "Where are my orders 1005 and 1006"),
    ],
    ids=["technical", "multi_part", "several_orders"],
)
def test_a_hard_answer_goes_to_the_strong_tier(
    with_intent: Any, make_graph: Any, scripted: Any, intent: str, text: str
) -> None:
    models = tiers(scripted, strong=[answer("strong")])
    values = ask(make_graph(with_routes(with_intent(intent), models)), text)
    assert called(models) == {"primary": 0, "secondary": 0, "strong": 1}, values.get("route")
    assert models["strong"].prompts[0].endswith(f"CUSTOMER: {text}")


def test_a_failing_strong_tier_falls_back_to_the_cheap_one(with_intent: Any, make_graph: Any, scripted: Any) -> None:
    models = tiers(scripted, strong=[ConnectionError("strong tier down")], primary=[answer("primary")])
    values = ask(make_graph(with_routes(with_intent("delivery_period"), models)),
                 "How long does delivery take? And do you ship to Norway?")
    assert called(models) == {"primary": 1, "secondary": 0, "strong": 1}
    assert models["primary"].prompts == models["strong"].prompts  # the same prompt, one tier down
    assert values["draft"].startswith(answer("primary"))


def test_the_classification_cascade_uses_the_cheap_tier_even_on_a_hard_ticket(
    with_intent: Any, make_graph: Any, scripted: Any
) -> None:
    services = with_intent("track_order", 0.3)
    services.classifier.candidates = [("track_order", 0.3), ("delivery_period", 0.25)]
    models = tiers(scripted, primary=[CASCADE], strong=[answer("strong")])
    ask(make_graph(with_routes(services, models)), "when does stuff get here? and what does it cost?")
    assert "Allowed intents: " in models["primary"].prompts[0]  # the cascade's prompt went to the cheap tier
    assert called(models) == {"primary": 1, "secondary": 0, "strong": 1}  # and the two-question answer to the strong
    assert not any("Allowed intents: " in p for p in models["strong"].prompts)


def test_the_rolling_summary_uses_the_cheap_tier(with_intent: Any, make_graph: Any, scripted: Any) -> None:
    services = with_intent("delivery_period")
    turns = services.policy.session.window_turns + 1
    summary = "Customer asked about delivery of order 1004."
    models = tiers(scripted, primary=[summary], strong=[answer("strong")] * turns)
    graph = make_graph(with_routes(services, models))
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    for i in range(turns):  # the last turn folds the oldest into a summary
        text = f"Question {i}: how long does delivery of order 1004 take? And can it be faster?"
        graph.invoke({"messages": [HumanMessage(text)]}, config, context=Context())
    summaries = [p for p in models["primary"].prompts if p.startswith("Summarise this customer-support")]
    assert len(summaries) == 1
    assert not any(p.startswith("Summarise") for p in models["strong"].prompts)
    assert called(models)["strong"] == turns  # every answer was hard


# ------------------------------------------------------------------ the rules themselves


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("Where is my order?", 1),
        ("Where is my order? When will it arrive?", 2),
        ("I have questions:\n1) the refund\n2) the invoice\n3) the address", 3),
        ("Hi. Thanks!", 0),
        ("??", 0),
    ],
)
def test_questions_are_counted(text: str, n: int) -> None:
    assert questions_in(text) == n


def test_rules_come_from_config_and_can_be_switched_off() -> None:
    technical = {"ticket": "It says PAY-402", "analysis": {"error_codes": ["PAY-402"]}}
    two = {"ticket": "Where is it? When?", "entities": {"order_ids": [1004, 1005]}}
    assert answer_complexity(technical, ComplexityRules()) == ("hard", "technical")
    assert answer_complexity(two, ComplexityRules()) == ("hard", "multi_part")
    assert answer_complexity(two, ComplexityRules(min_questions=0)) == ("hard", "several_orders")
    assert answer_complexity(two, ComplexityRules(min_questions=0, min_orders=0)) == ("simple", "")
    assert answer_complexity(technical, ComplexityRules(technical=False)) == ("simple", "")
    quiet = {"ticket": "hi", "analysis": {"error_codes": [], "severity": "low"}}  # the analyst ran, found nothing
    assert answer_complexity(quiet, ComplexityRules()) == ("simple", "")
