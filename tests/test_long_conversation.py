"""A 100-turn conversation through the graph keeps its early facts and a flat context budget."""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.messages import HumanMessage

from graphs.context import Context
from memory.session import build_context, count_tokens

FILLER = [
    "How long does standard delivery take?",
    "And is express delivery available on weekends?",
    "What does next-day delivery cost?",
    "Can I pick the parcel up at a locker instead?",
    "Do you deliver to the Canary Islands?",
]


def test_hundred_turns_keep_early_facts_and_a_flat_budget(with_intent: Any, make_graph: Any) -> None:
    services = with_intent("delivery_period")
    session = services.policy.session
    graph = make_graph(services)
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    first = "Hi, this is about order 1004. Please contact me by email only, I prefer email."
    tokens: dict[int, int] = {}
    for turn in range(1, 101):
        text = first if turn == 1 else f"{FILLER[turn % len(FILLER)]} (question {turn})"
        graph.invoke({"messages": [HumanMessage(text)]}, config, context=Context())
        values = graph.get_state(config).values
        context = build_context(values.get("summary", ""), values.get("pinned", {}), values["messages"],
                                session.context_token_budget)
        tokens[turn] = count_tokens(context)
        assert len(values["messages"]) <= 2 * session.window_turns + 2, f"window grew at turn {turn}"

    pinned = values["pinned"]
    assert "1004" in [str(o) for o in pinned["order_ids"]]
    assert pinned["preferences"].get("contact") == "email"
    assert "1004" in build_context(values["summary"], pinned, values["messages"], session.context_token_budget)
    assert max(tokens.values()) <= session.context_token_budget
    assert tokens[50] <= 1.5 * tokens[5], (tokens[5], tokens[50])
    assert tokens[100] <= 1.5 * tokens[5], (tokens[5], tokens[100])
    print(f"context tokens: turn 5 {tokens[5]}, turn 50 {tokens[50]}, turn 100 {tokens[100]}")
