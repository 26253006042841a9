"""escalate: hand the ticket to a human, with everything gathered so far.

The interrupt (Agent Inbox and LangChain v1, `nodes.hitl`) carries the reason, the ticket, the classifier's view and
the retrieved context. The human replies to the customer (Inbox `response`, v1 `respond`: the text is sent and the
resolution remembered as a case) or defers (Inbox `ignore`, v1 `reject`: the customer is told a colleague will
follow up). Nothing else is allowed (no accept, no edit), and the graph enforces it: any other reply is refused and
asked again, the thread still waiting. The node upstream (supervisor, review_gate) sets `status: escalated`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from langgraph.runtime import Runtime
from langgraph.types import Command

from graphs.context import Context, context_of
from graphs.state import SupportState
from nodes import hitl
from nodes.common import Node, visited

NAME: Final = "escalate"
ACTION = "handoff_to_human"
INBOX: tuple[hitl.Kind, ...] = ("respond", "reject")
V1 = ("respond", "reject")

FOLLOW_UP = (
    "I've passed your request to a colleague in our support team, with everything you told me. "
    "They will get back to you by e-mail, usually within one business day."
)


def escalation_reason(state: Mapping[str, Any]) -> str:
    if state.get("error"):
        return str(state["error"])
    if (state.get("review") or {}).get("type") == "ignore":
        return "the reviewer discarded the draft"
    if state.get("decision") == "escalate":
        return f"low confidence ({float(state.get('confidence') or 0):.2f}) in intent {state.get('intent')}"
    return f"the {state.get('intent')} workflow hands over to a human"


def handoff_request(state: Mapping[str, Any], error: str | None = None) -> dict[str, Any]:
    reason = escalation_reason(state)
    args = {
        "reason": reason,
        "ticket": state.get("ticket", ""),
        "intent": state.get("intent"),
        "confidence": state.get("confidence", 0.0),
        "candidates": (state.get("candidates") or [])[:3],
        "knowledge": [k["id"] for k in state.get("knowledge") or []][:5],
        "draft": state.get("draft"),
    }
    description = (
        f"**Escalated:** {reason}.\n\n**Customer wrote:** {' '.join(str(state.get('ticket', ''))[:500].split())}\n\n"
        "Respond with the reply to send to the customer, or ignore (reject) to follow up later."
    )
    return hitl.request(action=ACTION, args=args, description=description, inbox=INBOX, v1=V1, error=error)


def make() -> Node:
    def escalate(state: SupportState, runtime: Runtime[Context]) -> Command[Literal["guard_output", "escalate"]]:
        update: dict = {**visited(NAME)}
        req = handoff_request(state, error=hitl.error_for(state, NAME))
        reply = hitl.await_reply(NAME, state, runtime, req, update)
        if isinstance(reply, Command):
            return reply

        ctx = context_of(runtime)
        who = {"reviewer": ctx.approver_id, "via": reply.dialect}
        update["hitl"] = hitl.cleared()
        if reply.kind == "respond":
            update.update(
                answer=reply.text,
                status="completed",
                review={"type": "resolved_by_human", "draft": state.get("draft"), "final": reply.text, **who},
            )
        else:
            note = {"note": reply.text} if reply.text else {}
            update.update(answer=FOLLOW_UP, status="escalated", review={"type": "ignore", **who, **note})
        return Command(goto="guard_output", update=update)

    return escalate
