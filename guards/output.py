"""Checks on an answer before it leaves the system.

:func:`check_output` removes what an answer must never carry: card numbers, IBANs, SSN-like numbers and
e-mail addresses other than the allowed ones (the customer's own, the shop's), lines that look like
leaked system-prompt text or role markers, raw tool-call JSON, and order ids the customer may not see.
It caps the length and returns flags naming every change.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection

from dialogue.slots import ORDER_ID_RE
from guards.pii import PLACEHOLDERS, find_pii

MAX_OUTPUT_CHARS = 2000
"""Answers are cut to this many characters."""

_BLOCKED_KINDS = ("card_number", "iban", "ssn")
_ORDER_PLACEHOLDER = "[ORDER]"

_PROMPT_LEAK_LINE = re.compile(
    r"<\|(?:im_start|im_end|system|assistant|user)\|>|\[/?INST\]|<<SYS>>|^\s*#{2,}\s*(?:system|instructions?)\b"
    r"|^\s*(?:system|developer)\s*(?:prompt|message)?\s*:|\b(?:my|the) system prompt\b"
    r"|\bmy (?:instructions|guidelines) (?:are|say|state)\b|\bI (?:was|am) instructed to\b"
    r"|\bBEGIN (?:SYSTEM )?PROMPT\b|\bYou are (?:Switchboard|a customer[- ]support (?:agent|assistant))\b",
    re.I | re.M,
)
_TOOL_KEYS = re.compile(r"\"(?:tool_calls?|function_call|tool_call_id|arguments|parameters)\"\s*:")
_FENCE = re.compile(r"```(?:json|tool|tool_code|python)?\s*\n(.*?)```", re.S)


def _json_objects(text: str) -> list[tuple[int, int]]:
    """Spans of top-level JSON objects in ``text`` (found by decoding from each ``{``)."""
    decoder = json.JSONDecoder()
    spans: list[tuple[int, int]] = []
    i = text.find("{")
    while i != -1:
        try:
            _, end = decoder.raw_decode(text, i)
        except ValueError:
            i = text.find("{", i + 1)
            continue
        spans.append((i, end))
        i = text.find("{", end)
    return spans


def _strip_tool_json(text: str) -> tuple[str, bool]:
    found = False

    def fence(m: re.Match[str]) -> str:
        nonlocal found
        if _TOOL_KEYS.search(m.group(1)):
            found = True
            return ""
        return m.group()

    text = _FENCE.sub(fence, text)
    for start, end in reversed(_json_objects(text)):
        if _TOOL_KEYS.search(text[start:end]):
            found = True
            text = text[:start] + text[end:]
    return text, found


def _redact_pii(text: str, allowed_emails: Collection[str]) -> tuple[str, list[str]]:
    allowed = {e.lower() for e in allowed_emails}
    kinds: list[str] = []
    out, pos = [], 0
    for m in find_pii(text, kinds=(*_BLOCKED_KINDS, "email")):
        if m.kind == "email" and m.value.lower() in allowed:
            continue
        out += [text[pos : m.start], PLACEHOLDERS[m.kind]]
        pos = m.end
        kinds.append(m.kind)
    out.append(text[pos:])
    return "".join(out), list(dict.fromkeys(kinds))


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.8:
        cut = cut[:space]
    return cut.rstrip() + "…"


def check_output(
    text: str,
    *,
    allowed_order_ids: set[int] | None = None,
    allowed_emails: Collection[str] = (),
    max_chars: int = MAX_OUTPUT_CHARS,
) -> tuple[str, list[str]]:
    """Sanitise an answer before it is sent; return ``(clean_text, flags)``.

    Flags: ``pii:<kind>`` for each redacted kind (card numbers, IBANs, SSNs, e-mails not in
    ``allowed_emails``), ``system_prompt_leak`` when leaked prompt lines were dropped, ``tool_json`` when
    tool-call JSON was removed, ``foreign_order_id`` when an order reference outside ``allowed_order_ids``
    was masked (only checked when that set is given), ``truncated`` when cut to ``max_chars``.
    """
    flags: list[str] = []
    original_len = len(text)
    text = text[: max_chars * 4]  # bound the work; the final cap below is the real limit
    text, had_tool_json = _strip_tool_json(text)
    if had_tool_json:
        flags.append("tool_json")
    kept = [line for line in text.splitlines() if not _PROMPT_LEAK_LINE.search(line)]
    if len(kept) != len(text.splitlines()):
        flags.append("system_prompt_leak")
        text = "\n".join(kept)
    text, kinds = _redact_pii(text, allowed_emails)
    flags += [f"pii:{k}" for k in kinds]
    if allowed_order_ids is not None:
        foreign = False

        def mask(m: re.Match[str]) -> str:
            nonlocal foreign
            if int(m.group("id")) in allowed_order_ids:
                return m.group()
            foreign = True
            return m.group()[: m.start("id") - m.start()] + _ORDER_PLACEHOLDER  # the id ends the match

        text = ORDER_ID_RE.sub(mask, text)
        if foreign:
            flags.append("foreign_order_id")
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    capped = _cap(text, max_chars)
    if capped != text or original_len > max_chars * 4:
        flags.append("truncated")
    return capped, flags
