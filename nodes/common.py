"""Small helpers shared by nodes: message text (`dialogue.messages`), route bookkeeping; slots: `dialogue.slots`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AnyMessage, HumanMessage

from dialogue.messages import text_of

__all__ = ["last_human", "text_of", "thread_id", "tool_caller", "visited"]

if TYPE_CHECKING:
    from langgraph.runtime import Runtime
    from langgraph.types import Command

    from config.permissions import NodeName
    from graphs.context import Context
    from graphs.state import SupportState
    from tools.registry import Caller

type Node = Callable[[SupportState, Runtime[Context]], dict[str, Any] | Command[Any]]
"""What a node module's `make()` returns (docs/ARCHITECTURE.md, node contract)."""


def last_human(messages: list[AnyMessage]) -> HumanMessage | None:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return message
    return None


def thread_id() -> str:
    """The running thread's id ("" outside a run or without a checkpointer)."""
    from langgraph.config import get_config

    try:
        return str(get_config().get("configurable", {}).get("thread_id") or "")
    except RuntimeError:  # called outside a runnable context
        return ""


def tool_caller(node: NodeName, ctx: Context, state: Mapping[str, Any]) -> Caller:
    """Who a tool call comes from, for `run_tool`: this node, the run's resolved identity, thread and trace."""
    from tools.registry import Caller

    return Caller(
        node=node,
        user_id=ctx.user_id,
        tenant_id=ctx.tenant_id,
        role=ctx.role,
        approver_id=ctx.approver_id,
        thread_id=thread_id(),
        trace_id=str(state.get("trace_id") or ""),
    )


def visited(name: str) -> dict[str, list[str]]:
    """The route update every node returns: its own name."""
    return {"route": [name]}
