"""escalate: hand the ticket to a human, with everything gathered so far.

The interrupt payload (Agent Inbox schema) carries the reason, the ticket, the classifier's view and
the retrieved context. The human answers with `response` (the text sent to the customer; the
resolution is remembered as a case) or `ignore` (the customer is told a colleague will follow up).
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from graphs.context import Context
from graphs.services import ServicesProvider
from graphs.state import SupportState
from nodes.common import visited
from nodes.request_approval import parse_response

NAME = "escalate"

FOLLOW_UP = (
    "I've passed your request to a colleague in our support team, with everything you told me. "
    "They will get back to you by e-mail, usually within one business day."
)


def escalation_reason(state: SupportState) -> str:
    if state.get("error"):
        return str(state["error"])
    if state.get("review", {}) and state["review"].get("type") == "ignore":
        return "the reviewer discarded the draft"
    if state.get("decision") == "escalate":
        return f"low confidence ({state.get('confidence', 0):.2f}) in intent {state.get('intent')}"
    return f"the {state.get('intent')} workflow hands over to a human"


def handoff_request(state: SupportState) -> dict[str, Any]:
    return {
        "action_request": {
            "action": "handoff_to_human",
            "args": {
                "reason": escalation_reason(state),
                "ticket": state.get("ticket", ""),
                "intent": state.get("intent"),
                "confidence": state.get("confidence", 0.0),
                "candidates": state.get("candidates", [])[:3],
                "knowledge": [k["id"] for k in state.get("knowledge", [])][:5],
                "draft": state.get("draft"),
            },
        },
        "config": {"allow_accept": False, "allow_edit": False, "allow_respond": True, "allow_ignore": True},
        "description": f"Escalated: {escalation_reason(state)}. Reply to the customer, or ignore to follow up later.",
    }


def make(services: ServicesProvider):
    def escalate(state: SupportState, runtime: Runtime[Context]) -> Command[Literal["guard_output"]]:
        update: dict = {**visited(NAME)}
        try:
            response = parse_response(interrupt(handoff_request(state)))
        except ValueError:
            response = None
        text = ""
        if response is not None and response.type in ("response", "edit", "accept"):
            args = response.args
            text = (args if isinstance(args, str) else str((args or {}).get("text") or "")).strip() if args else ""
            if not text and response.type == "accept":
                text = state.get("draft") or ""
        if text:
            update.update(
                answer=text,
                status="completed",
                review={"type": "resolved_by_human", "draft": state.get("draft"), "final": text},
            )
        else:
            update.update(answer=FOLLOW_UP, status="escalated", review={"type": "ignore"})
        return Command(goto="guard_output", update=update)

    return escalate
