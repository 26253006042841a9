"""review_gate: confidence decides autonomy.

`auto` sends the draft as it is; `review` stops for a human (Agent Inbox payload: accept, edit the
draft, respond with a replacement, or ignore to discard it); `escalate` hands the ticket to a human.
Refusals and clarifying questions are fixed texts and always go out unreviewed.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from graphs.context import Context
from graphs.services import ServicesProvider
from graphs.state import SupportState
from nodes.common import visited
from nodes.request_approval import HumanResponse, parse_response

NAME = "review_gate"


def review_request(state: SupportState) -> dict[str, Any]:
    return {
        "action_request": {"action": "review_response", "args": {"draft": state.get("draft") or ""}},
        "config": {"allow_accept": True, "allow_edit": True, "allow_respond": True, "allow_ignore": True},
        "description": (
            f"Review the draft answer before it is sent.\n\nCustomer wrote: {state.get('ticket', '')[:500]}\n"
            f"Intent: {state.get('intent')} (confidence {state.get('confidence', 0):.2f})"
        ),
    }


def make(services: ServicesProvider):
    def review_gate(state: SupportState, runtime: Runtime[Context]) -> Command[Literal["guard_output", "escalate"]]:
        update: dict = {**visited(NAME)}
        draft = state.get("draft") or ""
        decision = state.get("decision", "escalate")
        action = state.get("action") or {}
        fixed = (
            state.get("status") == "rejected"
            or state.get("intent") == "out_of_scope"
            or action.get("missing")
            or action.get("error")
            or (state.get("grounding") or {}).get("question")
            or {"task_dropped", "task_ack"} & set(state.get("flags") or [])
        )
        if fixed or decision == "auto" or state.get("action_result") is not None:
            # Executed actions were already approved by a human; their confirmation goes out as is.
            update["answer"] = draft
            return Command(goto="guard_output", update=update)
        if decision == "escalate":
            return Command(goto="escalate", update=update)

        try:
            response: HumanResponse | None = parse_response(interrupt(review_request(state)))
        except ValueError:
            response = None
        if response is None or response.type == "ignore":
            update.update(answer=None, status="escalated", review={"type": "ignore", "draft": draft})
            return Command(goto="escalate", update=update)
        if response.type == "accept":
            update.update(answer=draft, review={"type": "accept"})
        else:
            text = _text_of(response.args)
            if not text:
                update.update(answer=draft, review={"type": "accept", "note": "empty edit ignored"})
            else:
                update.update(answer=text, review={"type": response.type, "draft": draft, "final": text})
        return Command(goto="guard_output", update=update)

    return review_gate


def _text_of(args: Any) -> str:
    if isinstance(args, str):
        return args.strip()
    if isinstance(args, dict):
        inner = args.get("args", args)
        if isinstance(inner, dict):
            return str(inner.get("draft") or inner.get("text") or inner.get("answer") or "").strip()
        if isinstance(inner, str):
            return inner.strip()
    return ""
