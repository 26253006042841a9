"""guard_output: nothing leaves without a check.

Redacts what the answer must not leak (card numbers, other people's e-mail addresses), strips
anything that looks like leaked instructions or raw tool JSON, caps the length, then appends the
answer to the conversation and settles the ticket's final status.
"""

from __future__ import annotations

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime

from graphs.context import Context
from graphs.services import ServicesProvider
from graphs.state import SupportState
from guards.output import check_output
from nodes.common import visited

NAME = "guard_output"


def make(services: ServicesProvider):
    def guard_output(state: SupportState, runtime: Runtime[Context]) -> dict:
        answer = state.get("answer")
        update: dict = {**visited(NAME)}
        if answer:
            clean, flags = check_output(answer)
            update.update(answer=clean, messages=[AIMessage(content=clean)])
            if flags:
                update["flags"] = flags
        status = state.get("status") or "completed"
        update["status"] = status
        return update

    return guard_output
