"""remember: persist what this ticket taught us, in the right tier.

- the task itself lives in the checkpointed state (dialogue.task); working memory only keeps the last
  action's outcome for the thread, with a TTL;
- per-user memory in the LangGraph store (`runtime.store`, memory.user_store): stated preferences, and the last
  action's outcome as cross-thread working memory with a TTL (no store, e.g. a graph compiled without one: skipped);
- long-term memory: when a human edited, replaced or resolved an answer, a
  *lesson* in neutral words (memory.lessons) is queued for review — a human's reply to one customer is never
  shown to another, and a lesson reaches the knowledge base only once a reviewer approves it;
- the ticket's closing decision record (observability.decision_points.remember: status, route, flags, approval,
  approver, usage) is written by the node's instrumentation to the decision log; this node notes the lesson it
  proposed on it, and settles the ticket's `cost_usd`.

An action that was still waiting for approval when the customer wrote again is kept: after this ticket's
answer the thread goes back to `request_approval` with it, so the approval is never dropped silently.
"""

from __future__ import annotations

from typing import Final, Literal

from langgraph.runtime import Runtime
from langgraph.types import Command, Overwrite

from graphs.context import Context, context_of
from graphs.services import ServicesProvider
from graphs.state import SupportState
from guards.injection import guard_for
from memory.lessons import make_lesson
from memory.user_store import load_preferences, note_working, save_preferences
from nodes.common import Node, thread_id, visited
from observability.decision_points import note

NAME: Final = "remember"


def make(services: ServicesProvider) -> Node:
    def remember(state: SupportState, runtime: Runtime[Context]) -> Command[Literal["request_approval", "__end__"]]:
        svc = services()
        ctx = context_of(runtime)
        thread = thread_id()
        action = state.get("action") or {}
        task = state.get("task") or {}
        store = runtime.store
        if thread and action.get("tool") and state.get("action_result") is not None:
            last = {"tool": action["tool"], "ok": (state.get("action_result") or {}).get("ok")}
            svc.working.set(thread, "last_action", last)
            if store is not None:
                ttl = svc.policy.working_memory.ttl_seconds
                note_working(store, ctx, "last_action", {**last, "thread_id": thread}, ttl_seconds=ttl)

        stated = state.get("pinned", {}).get("preferences") or {}
        if store is not None and stated:
            known = load_preferences(store, ctx)
            save_preferences(store, ctx, {k: v for k, v in stated.items() if known.get(k, object()) != v})

        review = state.get("review") or {}
        learned = None
        if review.get("type") in ("edit", "response", "resolved_by_human") and review.get("final"):
            intent = state.get("intent") or "out_of_scope"
            flow = svc.workflows.get(intent)
            lesson = make_lesson(
                state.get("ticket", ""),
                review["final"],
                intent=intent,
                cause=flow.description if flow else intent.replace("_", " "),
                guard=guard_for(svc),
            )
            if lesson is not None and svc.lessons is not None:
                learned = svc.lessons.propose(lesson, tenant_id=ctx.tenant_id, trace_id=state.get("trace_id", ""))
        note(lesson_proposed=learned)
        update: dict = {**visited(NAME), "cost_usd": float((state.get("usage") or {}).get("cost_usd", 0.0))}
        pending = task.get("pending_action")
        if "task_dropped" in (state.get("flags") or []):
            update["task"] = {"pending_action": None}
        elif pending and pending.get("idempotency_key") != action.get("idempotency_key"):
            # The customer wrote while an approval was waiting: this ticket is answered, the approval stands.
            update.update(
                action=pending,
                approval=None,
                action_result=None,
                lookups={},
                knowledge=Overwrite([]),
                status="awaiting_approval",
                task={"step": "awaiting_approval"},
            )
            return Command(goto="request_approval", update=update)
        return Command(goto="__end__", update=update)  # END, spelled as the Literal the annotation names

    return remember

