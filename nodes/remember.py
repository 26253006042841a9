"""remember: persist what this ticket taught us, in the right tier.

- working memory: the thread's task state (intent, order under discussion, step), with a TTL;
- long-term memory: stated preferences per user, and resolved cases when a human edited, replaced
  or resolved an answer (the feedback loop: similar later tickets retrieve them);
- the append-only audit/decision log: one JSON line per ticket with its trace id and route.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from langgraph.runtime import Runtime

from graphs.context import Context, context_of
from graphs.services import ServicesProvider
from graphs.state import SupportState
from nodes.common import thread_id, visited

NAME = "remember"
_audit_lock = threading.Lock()


def make(services: ServicesProvider):
    def remember(state: SupportState, runtime: Runtime[Context]) -> dict:
        svc = services()
        ctx = context_of(runtime)
        thread = thread_id()
        entities = state.get("entities", {})
        action = state.get("action") or {}
        if thread:
            svc.working.set(thread, "intent", state.get("intent"))
            svc.working.set(thread, "step", state.get("status"))
            if "order_id" in entities:
                svc.working.set(thread, "order_id", entities["order_id"])
            if action.get("tool"):
                svc.working.set(
                    thread, "last_action", {"tool": action["tool"], "ok": (state.get("action_result") or {}).get("ok")}
                )

        for key, value in (state.get("pinned", {}).get("preferences") or {}).items():
            svc.knowledge.set_preference(ctx.tenant_id, ctx.user_id, key, value)

        review = state.get("review") or {}
        learned = None
        if review.get("type") in ("edit", "response", "resolved_by_human") and review.get("final"):
            from memory.knowledge import ResolvedCase

            learned = svc.knowledge.add_case(
                ResolvedCase(
                    problem=state.get("ticket", ""),
                    cause=f"{state.get('intent')}: {review['type']} by a human",
                    fix=review["final"],
                    outcome="human-verified answer",
                    intent=state.get("intent") or "",
                ),
                tenant_id=ctx.tenant_id,
                user_id=ctx.user_id,
                shared=True,
            )
        _audit(
            svc.audit_path,
            {
                "ts": time.time(),
                "trace_id": state.get("trace_id"),
                "thread_id": thread,
                "tenant_id": ctx.tenant_id,
                "user_id": ctx.user_id,
                "intent": state.get("intent"),
                "confidence": state.get("confidence"),
                "decision": state.get("decision"),
                "status": state.get("status"),
                "route": [*state.get("route", []), NAME],
                "flags": state.get("flags", []),
                "action": action.get("tool"),
                "approval": (state.get("approval") or {}).get("type"),
                "learned_case": learned,
            },
        )
        return {**visited(NAME)}

    return remember


def _audit(path: Path | None, record: dict) -> None:
    """Append one line; never rewrites earlier lines."""
    if path is None:
        return
    line = json.dumps(record, default=str, sort_keys=True)
    with _audit_lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
