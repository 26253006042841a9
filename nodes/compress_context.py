"""compress_context: bounded session memory.

Keeps the last turns verbatim, folds older turns into a rolling summary (LLM when configured,
extractive offline), pins key facts so they survive summarisation, and deletes folded messages from
the checkpointed conversation. Which order "it" means is decided by the dialogue state (dialogue.task),
not here. The customer's stored preferences (memory.user_store, from any earlier thread) are pinned under the
ones this thread states.
"""

from __future__ import annotations

from typing import Final

from langchain_core.messages import BaseMessage, RemoveMessage, SystemMessage
from langgraph.runtime import Runtime

from graphs.context import Context, context_of
from graphs.services import ServicesProvider
from graphs.state import SupportState, sum_usage
from memory.session import compress, extract_facts, merge_facts
from memory.user_store import load_preferences
from nodes.common import Node, visited

NAME: Final = "compress_context"

SUMMARY_PROMPT = (
    "Summarise this customer-support conversation in at most {max_tokens} tokens. Keep order numbers, "
    "amounts, promises made and the customer's stated preferences. Write plain sentences."
)


def make(services: ServicesProvider) -> Node:
    def compress_context(state: SupportState, runtime: Runtime[Context]) -> dict:
        svc = services()
        session = svc.policy.session
        usage: dict[str, float] = {}

        def llm_summariser(prev_summary: str, dropped: list[BaseMessage], max_tokens: int) -> str:
            prompt = SystemMessage(SUMMARY_PROMPT.format(max_tokens=max_tokens))
            earlier = [SystemMessage(f"Summary so far: {prev_summary}")] if prev_summary else []
            messages = [prompt, *earlier, *dropped]
            reply = svc.llm.generate(messages, task="summarise") if svc.llm is not None else None
            if reply is None:
                raise RuntimeError("no language model answered")  # compress() falls back to extractive
            usage.update(sum_usage(usage, reply.usage))
            return reply.text

        result = compress(
            list(state.get("messages", [])),
            prev_summary=state.get("summary", ""),
            pinned=dict(state.get("pinned", {})),
            window_turns=session.window_turns,
            summary_max_tokens=session.summary_max_tokens,
            budget_tokens=session.context_token_budget,
            summariser=llm_summariser if svc.llm is not None else None,
        )
        pinned = merge_facts(result.pinned, extract_facts(state.get("ticket", "")))
        stored = load_preferences(runtime.store, context_of(runtime))
        if stored:  # what this thread says wins over what an earlier thread stored
            pinned = merge_facts({"preferences": stored}, pinned)
        update: dict = {
            **visited(NAME),
            "summary": result.summary,
            "pinned": pinned,
            "messages": [RemoveMessage(id=mid) for mid in result.dropped_ids],
        }
        if usage:
            update["usage"] = usage
        return update

    return compress_context
