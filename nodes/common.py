"""Small helpers shared by nodes: message text, route bookkeeping. Slots come from `dialogue.slots`."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AnyMessage, HumanMessage


def text_of(message: AnyMessage | dict[str, Any]) -> str:
    """Plain text of a message (string content or a list of content blocks)."""
    content = message.get("content") if isinstance(message, dict) else message.content
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "\n".join(parts)


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


def visited(name: str) -> dict[str, list[str]]:
    """The route update every node returns: its own name."""
    return {"route": [name]}
