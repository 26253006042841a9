"""Small helpers shared by nodes: message text, route bookkeeping, entity extraction."""

from __future__ import annotations

import re
from typing import Any

from langchain_core.messages import AnyMessage, HumanMessage

ORDER_RE = re.compile(r"(?:#\s?|\border\s*(?:no\.?|number|id|#)?\s*:?\s*)(\d{4,6})\b", re.IGNORECASE)
BARE_ORDER_RE = re.compile(r"\b(1\d{3})\b")
AMOUNT_RE = re.compile(
    r"(?:€|eur\s?|\$|usd\s?)\s?(\d+(?:[.,]\d{1,2})?)|(\d+(?:[.,]\d{1,2})?)\s?(?:€|eur|euros?|\$|usd|dollars?)\b",
    re.IGNORECASE,
)
ADDRESS_RE = re.compile(
    r"\b(?:to|address(?:\s+is)?:?|ship(?:ping)? to)\s+(.{10,160}?\d.{0,160}?)(?:[.!?](?:\s|$)|$)", re.IGNORECASE
)
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
NAME_RE = re.compile(r"\b(?:my name|name)\s+(?:to|is|should be)\s+([A-Za-z][A-Za-z .'-]{1,60}[A-Za-z])", re.IGNORECASE)
PHONE_RE = re.compile(r"\+?\d[\d\s()-]{7,}\d")


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


def extract_entities(text: str) -> dict[str, Any]:
    """Deterministic slot filling: order id, amount, address, account field changes."""
    found: dict[str, Any] = {}
    match = ORDER_RE.search(text) or BARE_ORDER_RE.search(text)
    if match:
        found["order_id"] = int(match.group(1))
    amount = AMOUNT_RE.search(text)
    if amount:
        found["amount"] = float((amount.group(1) or amount.group(2)).replace(",", "."))
    address = ADDRESS_RE.search(text)
    if address and not EMAIL_RE.search(address.group(1)):
        found["address"] = address.group(1).strip().rstrip(",;")
    email = EMAIL_RE.search(text)
    name = NAME_RE.search(text)
    if email and re.search(r"\b(e-?mail)\b", text, re.IGNORECASE):
        found["field"], found["value"] = "email", email.group(0)
    elif name:
        found["field"], found["value"] = "name", name.group(1).strip()
    elif re.search(r"\b(phone|mobile|number)\b", text, re.IGNORECASE) and (phone := PHONE_RE.search(text)):
        found["field"], found["value"] = "phone", phone.group(0).strip()
    if re.search(r"\b(unsubscribe|stop (sending|the)|opt[- ]?out|no more)\b", text, re.IGNORECASE):
        found["subscribed"] = False
    elif re.search(r"\b(subscribe|sign (me )?up|opt[- ]?in)\b", text, re.IGNORECASE):
        found["subscribed"] = True
    return found
