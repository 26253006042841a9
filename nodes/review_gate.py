"""review_gate: confidence decides autonomy.

`gate` says what happens to the draft: `send` it as it is, stop for a human `review`, or `escalate` the ticket.
Refusals, clarifying questions and confirmations of executed actions are fixed texts and always go out unreviewed.
The review interrupt speaks Agent Inbox and LangChain v1 (`nodes.hitl`): approve (send the draft), edit
(`args.draft`: the corrected answer), respond (a replacement text) or reject / ignore (discard it: escalate).
Only a reviewer's run may answer; anything else is refused and asked again, the thread still waiting.

`pending` is what `generate_response` writes before the gate: the decision under the assistant's (stricter) auto
threshold, and `status: awaiting_review` when the gate will wait, so the thread's state is true while it waits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final, Literal

from langgraph.runtime import Runtime
from langgraph.types import Command

from config.settings import Policy
from graphs.context import Context, auto_threshold_of, context_of
from graphs.state import SupportState
from nodes import hitl
from nodes.common import Node, visited

NAME: Final = "review_gate"
ACTION = "review_response"
INBOX: tuple[hitl.Kind, ...] = ("approve", "edit", "respond", "reject")
V1 = ("approve", "edit", "reject", "respond")
DRAFT_SCHEMA = {
    "type": "object",
    "properties": {"draft": {"type": "string", "minLength": 1, "description": "The answer to send instead."}},
    "required": ["draft"],
    "additionalProperties": False,
}


def gate(state: Mapping[str, Any]) -> Literal["send", "review", "escalate"]:
    """What happens to the draft in `state`."""
    action = state.get("action") or {}
    fixed = (
        state.get("status") == "rejected"
        or state.get("intent") == "out_of_scope"
        or action.get("missing")
        or action.get("error")
        or (state.get("grounding") or {}).get("question")
        or {"task_dropped", "task_ack"} & set(state.get("flags") or [])
    )
    decision = state.get("decision", "escalate")
    if fixed or decision == "auto" or state.get("action_result") is not None:
        # Executed actions were already approved by a human; their confirmation goes out as is.
        return "send"
    return "escalate" if decision == "escalate" else "review"


def pending(state: Mapping[str, Any], policy: Policy, ctx: Context) -> dict[str, Any]:
    """The update `generate_response` adds for the gate (`state` includes its own update so far)."""
    out: dict[str, Any] = {}
    threshold = auto_threshold_of(policy.confidence.auto, ctx)
    if state.get("decision") == "auto" and float(state.get("confidence") or 0.0) < threshold:
        out["decision"] = "review"  # a strict assistant reviews what the default one would send
    if gate({**state, **out}) == "review":
        out["status"] = "awaiting_review"
    return out


def review_request(state: Mapping[str, Any], error: str | None = None) -> dict[str, Any]:
    draft = state.get("draft") or ""
    description = (
        "**Review the draft answer before it is sent.**\n\n"
        f"**Customer wrote:** {' '.join(str(state.get('ticket', ''))[:500].split())}\n\n"
        f"**Intent:** `{state.get('intent')}` (confidence {float(state.get('confidence') or 0):.2f})\n\n"
        f"**Draft:**\n\n{draft}\n\n"
        "Approve to send it, edit `draft` to correct it, respond with a replacement, or reject to hand the ticket "
        "to a colleague."
    )
    return hitl.request(
        action=ACTION,
        args={"draft": draft},
        description=description,
        inbox=INBOX,
        v1=V1,
        args_schema=DRAFT_SCHEMA,
        error=error,
    )


def make() -> Node:
    def review_gate(
        state: SupportState, runtime: Runtime[Context]
    ) -> Command[Literal["guard_output", "escalate", "review_gate"]]:
        update: dict = {**visited(NAME)}
        draft = state.get("draft") or ""
        where = gate(state)
        if where == "send":
            update["answer"] = draft
            return Command(goto="guard_output", update=update)
        if where == "escalate":
            update["status"] = "escalated"  # truthful while escalate waits for a human
            return Command(goto="escalate", update=update)

        req = review_request(state, error=hitl.error_for(state, NAME))
        reply = hitl.await_reply(NAME, state, runtime, req, update, check=_edited_draft)
        if isinstance(reply, Command):
            return reply

        ctx = context_of(runtime)
        text = reply.text
        who = {"reviewer": ctx.approver_id, "via": reply.dialect}
        update["hitl"] = hitl.cleared()
        if reply.kind == "reject":
            review: dict[str, Any] = {"type": "ignore", "draft": draft, **who, **({"note": text} if text else {})}
            update.update(answer=None, status="escalated", review=review)
            return Command(goto="escalate", update=update)
        if reply.kind == "approve":
            update.update(answer=draft, status="in_progress", review={"type": "accept", **who})
        else:
            kind = "edit" if reply.kind == "edit" else "response"
            review = {"type": kind, "draft": draft, "final": text, **who}
            update.update(answer=text, status="in_progress", review=review)
        return Command(goto="guard_output", update=update)

    return review_gate


def _edited_draft(reply: hitl.Reply) -> hitl.Reply:
    """An edit's corrected answer as the reply's text (other replies as they are)."""
    return replace(reply, text=_draft_of(reply.args)) if reply.kind == "edit" else reply


def _draft_of(args: Mapping[str, Any] | None) -> str:
    draft = (args or {}).get("draft")
    extra = sorted(set(args or {}) - {"draft"})
    if extra:
        raise hitl.ReplyError(f"a review edit takes only args.draft, not {', '.join(extra)}")
    if not isinstance(draft, str) or not draft.strip():
        raise hitl.ReplyError("a review edit must carry the corrected answer as a non-empty string in args.draft")
    return draft.strip()
