"""The text of a chat message: the one helper nodes, session memory, the classifier cascade and the model chain use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["text_of"]


def text_of(message: Any) -> str:
    """Plain text of a LangChain message, a message dict (``{"role", "content"}``) or a bare content value.

    String content is returned as it is; a list of content blocks gives its plain strings and text blocks
    (``{"type": "text", "text": ...}``; a block without a type counts as text) joined by newlines. Other blocks
    (images, tool calls, reasoning) are left out.
    """
    if isinstance(message, Mapping):
        content = message.get("content")
    elif isinstance(message, (str, list, tuple)) or message is None:
        content = message
    else:
        content = message.content
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content or []:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, Mapping) and block.get("type", "text") == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
    return "\n".join(parts)
