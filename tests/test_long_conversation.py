"""A 100-turn conversation through the graph keeps its early facts and a flat context budget.

Measured on what the model is sent (scripted models record every prompt) with the tests' own token count.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from graphs.context import Context
from llm import LLM
from tests.tokens import independent_message_tokens, independent_tokens

FILLER = [
    "How long does standard delivery take?",
    "And is express delivery available on weekends?",
    "What does next-day delivery cost?",
    "Can I pick the parcel up at a locker instead?",
    "Do you deliver to the Canary Islands?",
]
# generate_response's prompt: the bounded conversation context, then the specialists' findings and the ticket.
FINDINGS = re.compile(r"\n\n(?=ARTICLE \[|LOOKUP |TRIAGE: |ACTION |CUSTOMER: )")
TURNS = 100


@pytest.mark.parametrize("budget", [None, 120], ids=["shipped_budget", "binding_budget"])
def test_hundred_turns_keep_early_facts_and_a_flat_budget(
    with_intent: Any, make_graph: Any, scripted: Any, budget: int | None
) -> None:
    services = with_intent("delivery_period")
    if budget is not None:  # small enough that the context is cut on every turn after the first few
        policy = services.policy
        session = policy.session.model_copy(update={"context_token_budget": budget})
        services = dataclasses.replace(services, policy=policy.model_copy(update={"session": session}))
    session = services.policy.session
    # One answer per turn; one summary per turn once the conversation is longer than the window.
    answerer = scripted(*[f"Answer {t} [kb-x]." for t in range(1, TURNS + 1)], name="answer")
    summariser = scripted(
        *[f"Summary {t}: the customer asked about delivery." for t in range(session.window_turns + 1, TURNS + 1)],
        name="summarise",
    )
    llm = LLM(
        models=[("answer", answerer), ("summarise", summariser)],
        routes={"answer": {"simple": ["answer"], "hard": ["answer"]}, "summarise": {"simple": ["summarise"]}},
    )
    graph = make_graph(dataclasses.replace(services, llm=llm))
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    first = "Hi, this is about order 1004. Please contact me by email only, I prefer email."
    context_tokens: dict[int, int] = {}
    prompt_tokens: dict[int, int] = {}
    for turn in range(1, TURNS + 1):
        text = first if turn == 1 else f"{FILLER[turn % len(FILLER)]} (question {turn})"
        graph.invoke({"messages": [HumanMessage(text)]}, config, context=Context())
        values = graph.get_state(config).values
        assert len(values["messages"]) <= 2 * session.window_turns + 2, f"window grew at turn {turn}"
        sent = answerer.received[-1]
        assert len(answerer.received) == turn and sent[-1].content.endswith(f"CUSTOMER: {text}")
        conversation = FINDINGS.split(sent[-1].content)[0]
        assert f"User: {text}" in conversation, turn  # the newest turn is always in the context sent
        context_tokens[turn] = independent_tokens(conversation)
        prompt_tokens[turn] = independent_message_tokens(sent)

    assert max(context_tokens.values()) <= session.context_token_budget, context_tokens
    if budget is not None:
        assert max(context_tokens.values()) > 0.8 * budget  # the budget did bind
    # Turns 5, 50 and 100 ask the same filler question: what the model is sent does not grow with the conversation.
    assert context_tokens[50] <= 1.5 * context_tokens[5], (context_tokens[5], context_tokens[50])
    assert context_tokens[100] <= 1.5 * context_tokens[5], (context_tokens[5], context_tokens[100])
    assert prompt_tokens[100] <= 1.5 * prompt_tokens[5], (prompt_tokens[5], prompt_tokens[100])
    # Turn 1's facts still reach the model at turn 100, and the latest summary with them.
    last = answerer.received[-1][-1].content
    assert "order ids: 1004" in last and "contact=email" in last, last[:400]
    assert f"Summary {TURNS}: the customer asked about delivery." in last
    print(f"context tokens sent: turn 5 {context_tokens[5]}, turn 50 {context_tokens[50]}, turn 100 "
          f"{context_tokens[100]}; whole prompt: turn 5 {prompt_tokens[5]}, turn 100 {prompt_tokens[100]}")
