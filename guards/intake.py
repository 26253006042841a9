"""The graph's input boundary: what a caller sends is checked, redacted and its personal slots sealed, before
anything stores, traces or reads it.

LangGraph writes a run's input into the thread's first checkpoint (and its pending writes) before any node runs,
so redacting in `guard_input` alone would leave the raw text in the checkpoints of earlier steps. Every entry
point therefore passes the input through `admit` first: the CLI / service `ask`, and the served API
(`auth.handlers.on_create_run` rewrites the run's input before the server stores the run). `admit`:

1. validates the shape (`InvalidInput`, a clear message, nothing passed on): an object with only `messages`, a
   list of at most `MAX_INPUT_MESSAGES` customer (human / user) messages, text content (a string or text blocks) of
   at most `max_chars` characters, valid Unicode without NUL;
2. reads the slots (`dialogue.slots.extract_slots`) from the raw text and seals them (`guards.vault`) into the
   message's `additional_kwargs["pii"]["slots"]`, bound to the customer (tenant/user); `guard_input` opens them;
3. replaces the text by its redacted form (`guards.pii.redact`: e-mails, phone numbers, card numbers, IBANs,
   addresses, ...), recording the kinds found in `additional_kwargs["pii"]["kinds"]`.

`redact_customer_messages` is the second line, used by the checkpoint serializer (`memory.serde`): any customer
message still carrying PII (a graph invoked directly, not through an entry point) is stored redacted.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage

from guards.pii import redact

__all__ = [
    "HUMAN_ROLES",
    "MAX_INPUT_MESSAGES",
    "PII_KEY",
    "InvalidInput",
    "admit",
    "redact_customer_messages",
    "redacted_text",
]

MAX_INPUT_MESSAGES = 20
"""Messages one run may add (a client sends one; Studio may send a few)."""
HUMAN_ROLES = ("human", "user")
PII_KEY = "pii"
"""`additional_kwargs` key of an admitted message: {"kinds": [...], "slots": sealed token or None}."""
SCRUB_MAX_CHARS = 100_000
"""A customer text longer than this is not scanned by the serializer; it is stored as a placeholder."""


class InvalidInput(ValueError):
    """The graph input is malformed; the message says what and where."""


@functools.lru_cache(maxsize=4096)
def redacted_text(text: str) -> tuple[str, tuple[str, ...]]:
    """`guards.pii.redact`, memoised: the same conversation is written at every step."""
    clean, kinds = redact(text)
    return clean, tuple(kinds)


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for i, block in enumerate(content):
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Mapping) and block.get("type") == "text" and isinstance(block.get("text"), str):
                parts.append(block["text"])
            else:
                kind = block.get("type") if isinstance(block, Mapping) else type(block).__name__
                raise InvalidInput(f"{where}.content[{i}] is a {kind!r} block; only text is accepted")
        return "\n".join(parts)
    raise InvalidInput(f"{where}.content must be a string or a list of text blocks, not {type(content).__name__}")


def _role_and_content(message: Any, where: str) -> tuple[str, Any, dict[str, Any]]:
    """(role, content, the message as a dict) of any form LangGraph accepts for `messages`."""
    if isinstance(message, str):
        return "human", message, {}
    if isinstance(message, BaseMessage):
        return message.type, message.content, {"id": message.id} if message.id else {}
    if isinstance(message, (tuple, list)) and len(message) == 2 and isinstance(message[0], str):
        return message[0], message[1], {}
    if isinstance(message, Mapping):
        role = message.get("role", message.get("type"))
        if not isinstance(role, str):
            raise InvalidInput(f"{where} needs a 'role' (or 'type'), e.g. {{'role': 'user', 'content': '...'}}")
        if "content" not in message:
            raise InvalidInput(f"{where} has no 'content'")
        extra = {k: message[k] for k in ("id", "name") if isinstance(message.get(k), str)}
        return role, message["content"], extra
    kind = type(message).__name__
    raise InvalidInput(f"{where} must be a message object, a (role, text) pair or a string, not {kind}")


def _check_text(text: str, where: str, max_chars: int) -> None:
    if len(text) > max_chars:
        raise InvalidInput(f"{where} is {len(text)} characters; the limit is {max_chars}")
    if "\x00" in text:
        raise InvalidInput(f"{where} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{where} is not valid Unicode (a lone surrogate at position {exc.start})") from exc


def admit(payload: Any, *, vault: Any, owner: str, max_chars: int) -> dict[str, Any]:
    """The input a caller sent, validated, with each message redacted and its slots sealed for `owner`.

    Raises InvalidInput. `vault` is a `guards.vault.Vault`; `owner` is "tenant/user" (`guards.vault.owner_of`).
    """
    from dialogue.slots import extract_slots

    if not isinstance(payload, Mapping):
        raise InvalidInput(f"the input must be an object like {{'messages': [...]}}, not {type(payload).__name__}")
    unknown = sorted(str(k) for k in payload if k != "messages")
    if unknown:
        raise InvalidInput(f"unknown input key(s) {', '.join(unknown)}; the input takes only 'messages'")
    if "messages" not in payload:  # `{}`: the run adds nothing
        return {}
    messages = payload["messages"]
    if not isinstance(messages, list):
        raise InvalidInput(f"input.messages must be a list of messages, not {type(messages).__name__}")
    if len(messages) > MAX_INPUT_MESSAGES:
        raise InvalidInput(f"input.messages has {len(messages)} messages; at most {MAX_INPUT_MESSAGES} per run")
    admitted = []
    for i, message in enumerate(messages):
        where = f"input.messages[{i}]"
        role, content, extra = _role_and_content(message, where)
        if role not in HUMAN_ROLES:
            raise InvalidInput(f"{where} has role {role!r}; a caller may only send customer (user) messages")
        text = _text(content, where)
        _check_text(text, where, max_chars)
        slots = extract_slots(text).entities()
        clean, kinds = redacted_text(text)
        pii = {"kinds": list(kinds), "slots": vault.seal(slots, owner) if slots else None}
        admitted.append({**extra, "role": "user", "content": clean, "additional_kwargs": {PII_KEY: pii}})
    return {"messages": admitted}


def _scrub_text(text: str) -> str:
    if len(text) > SCRUB_MAX_CHARS:
        return f"[withheld: {len(text)} characters, over the input limit]"
    return redacted_text(text)[0]


def _scrub_content(content: Any) -> Any:
    if isinstance(content, str):
        return _scrub_text(content)
    if isinstance(content, list):
        out: list[Any] = []
        for block in content:
            if isinstance(block, str):
                out.append(_scrub_text(block))
            elif isinstance(block, Mapping) and isinstance(block.get("text"), str):
                out.append({**block, "text": _scrub_text(block["text"])})
            else:
                out.append(block)
        return out
    return content


def redact_customer_messages(obj: Any) -> Any:
    """`obj` (a checkpoint, a channel value, a pending write) with the text of every customer message redacted.

    Only customer (human) messages are rewritten: what the system wrote (answers, tool results) may hold the
    customer's own data and is protected by encryption instead. Returns new objects; `obj` is not changed.
    """
    if isinstance(obj, HumanMessage):
        content = _scrub_content(obj.content)
        return obj if content == obj.content else obj.model_copy(update={"content": content})
    if isinstance(obj, Mapping):
        if obj.get("role", obj.get("type")) in HUMAN_ROLES and "content" in obj:
            return {**obj, "content": _scrub_content(obj["content"])}
        return {k: redact_customer_messages(v) for k, v in obj.items()} if obj else obj
    if isinstance(obj, list):
        return [redact_customer_messages(v) for v in obj]
    if isinstance(obj, tuple):
        if len(obj) == 2 and obj[0] in HUMAN_ROLES and isinstance(obj[1], (str, list)):
            return (obj[0], _scrub_content(obj[1]))
        return tuple(redact_customer_messages(v) for v in obj)
    return obj
