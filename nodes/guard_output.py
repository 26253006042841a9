"""guard_output: nothing leaves without a check.

Redacts what the answer must not leak (card numbers, other people's e-mail addresses), strips
anything that looks like leaked instructions or raw tool JSON, caps the length, then appends the
answer to the conversation and settles the ticket's final status.
"""

from __future__ import annotations

from typing import Final

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime

from graphs.context import Context
from graphs.state import SupportState
from guards.output import check_output
from nodes.common import Node, visited

NAME: Final = "guard_output"


def make() -> Node:
    def guard_output(state: SupportState, runtime: Runtime[Context]) -> dict:
        answer = state.get("answer")
        update: dict = {**visited(NAME)}
        if answer:
            clean, flags = check_output(answer, allowed_emails=_own_emails(state))
            # The streamed draft's id when exactly that text goes out, so a client's streamed message and the
            # thread's final message are one; a rewritten answer (redacted here, edited by a reviewer, the offline
            # answer instead of the model's) is a new message, which the `messages` stream carries whole.
            same = bool(state.get("draft_id")) and clean == state.get("draft")
            update.update(answer=clean, messages=[AIMessage(content=clean, id=state["draft_id"] if same else None)])
            if flags:
                update["flags"] = flags
        status = state.get("status") or "completed"
        update["status"] = "completed" if status == "in_progress" else status  # the ticket is answered now
        return update

    return guard_output


def _own_emails(state: SupportState) -> set[str]:
    """Addresses the customer may see: their own (from identity-checked tools) and the shop's (in its articles)."""
    from dialogue.slots import EMAIL_RE

    found: set[str] = set()
    for item in state.get("knowledge") or []:
        if item.get("kind") in ("article", "known_issue"):
            found.update(m.group(0) for m in EMAIL_RE.finditer(str(item.get("text", ""))))
    account = ((state.get("lookups") or {}).get("get_account") or {}).get("data") or {}
    if account.get("email"):
        found.add(str(account["email"]))
    result = (state.get("action_result") or {}).get("data") or {}
    if result.get("field") == "email":
        found.update(str(v) for v in (result.get("old_value"), result.get("new_value")) if v)
    preview = (state.get("action") or {}).get("preview") or {}
    if preview.get("field") == "email":
        found.update(str(v) for v in (preview.get("old_value"), preview.get("new_value")) if v)
    return found
