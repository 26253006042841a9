"""Session memory: token counting, fact extraction, extractive summary, compress() and build_context()."""

from __future__ import annotations

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from memory.session import (
    build_context,
    compress,
    count_tokens,
    extract_facts,
    merge_facts,
    split_turns,
    summarise_extractive,
    truncate_to_tokens,
)
from tests.tokens import independent_message_tokens, independent_tokens

TOPICS = [
    "I still have not received the blue kettle I ordered and the tracking page has not changed in days.",
    "Can you tell me which carriers you use for deliveries to the countryside and how long they take?",
    "The invoice you sent lists the wrong billing name, could someone correct it for my company records?",
    "My discount code was rejected at checkout even though the newsletter said it is valid until Sunday.",
    "I would like to understand how returns work for items that were bought during the winter sale.",
]


def turn_pair(i: int) -> tuple[HumanMessage, AIMessage]:
    """One scripted turn; turn 1 carries an order id, an email and a contact preference."""
    if i == 1:
        text = "Hi, my order #1004 never arrived. My email is jane.doe@example.com and I prefer email."
    else:
        text = f"Turn {i}: {TOPICS[i % len(TOPICS)]}"
    answer = (
        f"Thanks for the details on turn {i}. I checked our records and the issue is being handled by the "
        "logistics team, who will update you as soon as the carrier confirms the new delivery estimate."
    )
    return HumanMessage(text, id=f"h{i}"), AIMessage(answer, id=f"a{i}")


def test_count_tokens_is_positive_deterministic_and_counts_messages() -> None:
    text = "Where is my order 1004? It was due on Monday."
    assert count_tokens("") == 0
    assert count_tokens(text) == count_tokens(text) > 5
    assert count_tokens(text + " " + text) > count_tokens(text)
    messages = [HumanMessage(text), AIMessage("It ships tomorrow.")]
    assert count_tokens(messages) > count_tokens(text) + count_tokens("It ships tomorrow.")
    assert count_tokens(HumanMessage(text)) == count_tokens([HumanMessage(text)])


def test_truncate_to_tokens_respects_bound() -> None:
    text = " ".join(f"word{i}" for i in range(500))
    for bound in (1, 10, 57, 300):
        cut = truncate_to_tokens(text, bound)
        assert independent_tokens(cut) <= bound
        assert independent_tokens(truncate_to_tokens(text, bound + 5)) > independent_tokens(cut)  # the longest fit
    assert truncate_to_tokens("short text", 100) == "short text"
    assert truncate_to_tokens(text, 20, keep="tail").endswith("word499")


def test_extract_facts_finds_orders_email_amounts_preferences_address() -> None:
    facts = extract_facts(
        "My order 1007 and #1004 were charged $25.99 twice. Contact me at jane.doe@example.com. "
        "I prefer email and please don't call me. Ship the replacement to 12 Main Street, Springfield."
    )
    assert facts["order_ids"] == ["1007", "1004"]
    assert facts["email"] == "j***@example.com"
    assert "$25.99" in facts["amounts"]
    assert facts["preferences"] == {"contact": "email", "avoid": "call"}
    assert facts["address"] == "12 Main Street, Springfield"
    assert "jane.doe" not in str(facts)


def test_extract_facts_ignores_years_and_plain_chatter() -> None:
    assert extract_facts("I bought it in 2024 and I love it") == {}
    assert extract_facts("hello there") == {}
    assert extract_facts("what about my orders 2211 and 3344?")["order_ids"] == ["2211", "3344"]


def test_merge_facts_accumulates_order_ids_and_overrides_the_rest() -> None:
    old = {"order_ids": ["1004"], "email": "a***@x.com", "preferences": {"contact": "email"}}
    new = {"order_ids": ["1007", "1004"], "email": "b***@y.com", "preferences": {"avoid": "call"}}
    merged = merge_facts(old, new)
    assert merged["order_ids"] == ["1007", "1004"]
    assert merged["email"] == "b***@y.com"
    assert merged["preferences"] == {"contact": "email", "avoid": "call"}


def test_summarise_extractive_is_bounded_and_keeps_fact_sentences() -> None:
    messages: list[BaseMessage] = [
        HumanMessage("Hello! Thanks."),
        HumanMessage("The weather is nice. My parcel for order 5521 arrived damaged and the lid is cracked."),
        AIMessage("I am sorry to hear that. I have opened a replacement request for the damaged lid."),
    ]
    messages += [
        HumanMessage(f"Filler sentence number {i} about general shopping topics.") for i in range(40)
    ]
    summary = summarise_extractive(messages, 60)
    assert independent_tokens(summary) <= 60
    assert "5521" in summary
    assert "Hello" not in summary
    assert summary == summarise_extractive(messages, 60)  # deterministic


def test_split_turns_keeps_tool_messages_with_their_turn() -> None:
    call = AIMessage("", tool_calls=[{"name": "lookup", "args": {}, "id": "t1"}])
    msgs = [HumanMessage("a"), call, ToolMessage("res", tool_call_id="t1"), AIMessage("b"), HumanMessage("c")]
    turns = split_turns(msgs)
    assert [len(t) for t in turns] == [4, 1]


def test_compress_keeps_window_and_reports_dropped_ids() -> None:
    messages: list[BaseMessage] = [SystemMessage("You are helpful.", id="sys")]
    for i in range(1, 11):
        messages += list(turn_pair(i))
    result = compress(
        messages, prev_summary="", pinned={}, window_turns=3, summary_max_tokens=80, budget_tokens=500
    )
    assert result.dropped_ids == [f"{p}{i}" for i in range(1, 8) for p in ("h", "a")]
    assert [m.id for m in result.window] == ["sys", "h8", "a8", "h9", "a9", "h10", "a10"]
    assert result.pinned["order_ids"] == ["1004"]
    assert result.pinned["email"] == "j***@example.com"
    assert "1004" in result.summary
    assert "j***@example.com" in result.summary and "jane.doe" not in result.summary  # PII masked
    assert 0 < result.tokens <= 500


def test_compress_uses_summariser_and_falls_back_when_it_fails() -> None:
    messages = [m for i in range(1, 6) for m in turn_pair(i)]
    seen: list[tuple[str, int, int]] = []

    def llm(prev: str, dropped: list[BaseMessage], max_tokens: int) -> str:
        seen.append((prev, len(dropped), max_tokens))
        return "LLM summary of earlier turns."

    result = compress(messages, prev_summary="old", window_turns=2, summary_max_tokens=50, summariser=llm)
    assert result.summary == "LLM summary of earlier turns."
    assert seen == [("old", 6, 50)]

    def broken(prev: str, dropped: list[BaseMessage], max_tokens: int) -> str:
        raise TimeoutError("model down")

    fallback = compress(messages, prev_summary="", window_turns=2, summary_max_tokens=50, summariser=broken)
    assert "1004" in fallback.summary and independent_tokens(fallback.summary) <= 50


def test_context_stays_under_budget_for_100_turns_and_keeps_pinned_order() -> None:
    """Drive compress() the way the compress_context node does, removing dropped messages each turn.

    The budget is small enough to bind (the unbounded context is larger on most turns), and the context is measured
    with a count of the tests' own (tests/tokens.py), not with the code's running total."""
    state: list[BaseMessage] = []
    summary: str = ""
    pinned: dict = {}
    budget = 400
    naive: list[BaseMessage] = []
    binding = 0
    for i in range(1, 101):
        human, ai = turn_pair(i)
        state.append(human)
        naive.append(human)
        result = compress(
            state,
            prev_summary=summary,
            pinned=pinned,
            window_turns=6,
            summary_max_tokens=200,
            budget_tokens=budget,
        )
        dropped = set(result.dropped_ids)
        state = [m for m in state if m.id not in dropped] + [ai]
        naive.append(ai)
        summary, pinned = result.summary, result.pinned
        context = build_context(summary, pinned, result.window, budget)
        assert independent_tokens(context) <= budget, f"turn {i}"
        assert result.tokens == independent_tokens(context)
        assert independent_tokens(summary) <= 200
        assert len(split_turns(result.window)) <= 6
        assert f"Turn {i}:" in context or i == 1  # the budget is spent on the newest turn first
        binding += independent_tokens(build_context(summary, pinned, result.window, 10**6)) > budget
    assert binding >= 90, binding
    assert "1004" in pinned["order_ids"]
    assert "1004" in context and "j***@example.com" in context
    assert independent_message_tokens(naive) > 5 * independent_tokens(context)


def test_build_context_truncates_oldest_first_and_cuts_a_giant_message() -> None:
    window = [
        HumanMessage("oldest question " * 50),
        AIMessage("older answer " * 50),
        HumanMessage("newest question"),
    ]
    context = build_context("summary line", {"order_ids": ["1004"]}, window, 120)
    assert independent_tokens(context) <= 120
    assert "newest question" in context and "1004" in context
    assert "oldest question" not in context
    giant = build_context("", {}, [HumanMessage("x " * 5000 + "the end")], 50)
    assert independent_tokens(giant) <= 50 and giant.endswith("the end")
