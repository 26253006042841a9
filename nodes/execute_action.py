"""execute_action: runs the approved write action, exactly once.

The only node that changes the shop. The tool call carries the plan's idempotency key, so a retry
after a crash (or a replayed resume) returns the recorded result instead of acting twice.
"""

from __future__ import annotations

from typing import Final

from langgraph.runtime import Runtime

from graphs.context import Context, context_of
from graphs.services import ServicesProvider
from graphs.state import SupportState
from nodes.common import Node, tool_caller, visited
from tools.shop import run_tool

NAME: Final = "execute_action"


def make(services: ServicesProvider) -> Node:
    def execute_action(state: SupportState, runtime: Runtime[Context]) -> dict:
        svc = services()
        ctx = context_of(runtime)
        action = state.get("action") or {}
        approval = state.get("approval") or {}
        if approval.get("type") not in ("accept", "edit"):
            raise ValueError("execute_action reached without an approval")
        result = run_tool(
            svc.shop, action["tool"], action["args"], caller=tool_caller(NAME, ctx, state),
            idempotency_key=action.get("idempotency_key"),
        )
        update: dict = {
            **visited(NAME),
            "action_result": result.model_dump(),
            "status": "in_progress",  # the ticket goes on to its answer; guard_output settles "completed"
            "task": {"step": "done", "pending_action": None},
        }
        if not result.ok:
            update["flags"] = ["action_failed"]
        return update

    return execute_action
