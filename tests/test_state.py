"""graphs.state: reducers, and the one convention that starts a key anew (langgraph.types.Overwrite)."""

from __future__ import annotations

import uuid
from typing import Any

from langchain_core.messages import HumanMessage
from langgraph.types import Command, Overwrite

from graphs.context import Context
from graphs.state import merge_dict, merge_flags, merge_knowledge, route_log, sum_usage, written


def test_reducers_only_accumulate() -> None:
    assert route_log(["a"], ["b", "c"]) == ["a", "b", "c"]
    assert merge_flags(["x", "y"], ["y", "z"]) == ["x", "y", "z"]
    assert merge_knowledge([{"id": "k1", "v": 1}], [{"id": "k1", "v": 2}, {"id": "k2"}]) == [
        {"id": "k1", "v": 2},
        {"id": "k2"},
    ]
    # The same article from the retriever and the analyst: one item with what both know of it.
    retrieved, analysed = {"id": "k1", "intents": ["place_order"], "v": 1}, {"id": "k1", "v": 2, "reasons": "r"}
    merged = [{"id": "k1", "intents": ["place_order"], "v": 2, "reasons": "r"}]
    assert merge_knowledge([retrieved], [analysed]) == merged
    assert merge_dict({"a": 1, "b": 1}, {"b": 2}) == {"a": 1, "b": 2}
    assert sum_usage({"prompt_tokens": 3, "cost_usd": 0.1}, None, {"prompt_tokens": 2, "cost_usd": 0.2}) == {
        "prompt_tokens": 5,
        "cost_usd": 0.3,
    }


def test_written_unwraps_commands_and_overwrites() -> None:
    update = Command(goto="x", update={"flags": Overwrite(["pii_redacted"]), "intent": "refund"})
    assert written(update) == {"flags": ["pii_redacted"], "intent": "refund"}
    assert written({"route": Overwrite(["guard_input"])}) == {"route": ["guard_input"]}
    assert written(None) == {}


def test_a_second_ticket_starts_its_per_ticket_keys_anew(services: Any, checkpointer: Any, make_graph: Any) -> None:
    """Over every checkpointer: the second ticket's route, flags, knowledge and entities are its own."""
    graph = make_graph(services, checkpointer)
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    ctx = Context(user_id="demo")
    graph.invoke({"messages": [HumanMessage("Where is order 1004? My card is 4111 1111 1111 1111")]}, config,
                 context=ctx)
    first = graph.get_state(config).values
    assert "pii_redacted" in first["flags"]
    assert first["entities"]["order_id"] == 1004
    graph.invoke({"messages": [HumanMessage("How long does delivery take?")]}, config, context=ctx)
    second = graph.get_state(config).values
    assert second["route"][0] == "guard_input" and second["route"].count("guard_input") == 1, second["route"]
    assert "pii_redacted" not in second["flags"], second["flags"]
    assert not second.get("hitl")
