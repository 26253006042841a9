"""Dialogue state: the active task of a thread, and how each new turn changes it.

The task lives in the checkpointed graph state (`SupportState.task`), in one place:

    {"intent": "cancel_order", "confidence": 0.97, "slots": {"order_id": 1008}, "missing": [],
     "step": "collecting" | "confirming" | "awaiting_approval" | "answered" | "done",
     "asked": ["order_id"], "candidates": [1010, 1009], "order_id": 1008, "pending_action": {...} | None}

`interpret()` decides, for one customer message, whether it continues the task (it only supplies what was
asked: an order number, an address, "yes", "the second one"), starts a new one (a clearly new, confident
intent) or drops it ("no", "stop", "never mind"). `resolve_order()` turns references ("it", "that order",
"the last one", "the one I placed yesterday", "the headphones") into one of the customer's own orders, or
into the candidates to offer. Both are pure functions: nodes call them with what they looked up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

OPEN_STEPS = ("collecting", "confirming", "awaiting_approval")
"""Steps in which the task still expects something from the customer (or from an approver)."""

TurnKind = Literal["new", "continue", "drop", "ack"]

_DROP_PHRASE = (
    r"(?:no+|nope|nah|wait|stop|never\s*mind|nevermind|forget (?:it|about it|that)|cancel that|don'?t bother|"
    r"leave it|thanks?|thank you|not anymore|i(?:'ve| have)? changed my mind|scratch that|"
    r"don'?t (?:do|cancel|change|refund|delete) (?:it|that|anything)|i'?ll keep (?:it|them)|keep it|"
    r"i'?ll do it myself|it'?s fine|that'?s all|for now|then|please|actually)"
)
_DROP = re.compile(rf"^\W*(?:{_DROP_PHRASE}[\s,.!;:-]*)+$", re.I)
_DROP_CORE = re.compile(
    r"\b(?:no+|nope|stop|never\s*mind|nevermind|forget|cancel that|don'?t|changed my mind|scratch that|keep)\b", re.I
)
_YES = re.compile(
    r"^\W*(?:yes|yeah|yep|yup|sure|ok(?:ay)?|please do|go ahead|do it|correct|right|exactly|confirm(?:ed)?|"
    r"that'?s (?:right|it|the one|correct)|yes please)\b[\s\w,.!']{0,40}$",
    re.I,
)
_THANKS = re.compile(r"^\W*(?:thanks?|thank you|thx|cheers|great|perfect|cool)\b[\s\w,.!']{0,30}$", re.I)
_ORDINALS = {
    "first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3, "4th": 3, "fifth": 4,
    "5th": 4, "last": -1, "latter": -1, "former": 0, "other": None,
}
_ORDINAL = re.compile(r"\b(?:the\s+)?(first|1st|second|2nd|third|3rd|fourth|4th|fifth|5th|last|latter|former)"
                      r"(?:\s+(?:one|order))?\b", re.I)
_IT = re.compile(
    r"\b(?:it|that(?: one| order)?|this(?: one| order)?|the (?:same )?order|same (?:one|order)|the parcel|"
    r"the package|my parcel|my package)\b",
    re.I,
)
_DESCRIBED = re.compile(
    r"\b(?:(?:the|that) (?:one|order) (?:with|from|for|that|i|containing)|the \w+ (?:one|order))\b", re.I
)
_STATUS_PICK = re.compile(r"\b(pending|processing|shipped|delivered|cancell?ed|refunded|failed)\b", re.I)
_RECENT = re.compile(
    r"\b(?:(?:my|the) (?:latest|newest|most recent|last) (?:order|one|purchase)|(?:latest|newest|most recent) one|"
    r"the (?:one|order) i (?:just )?(?:placed|made|ordered) last)\b",
    re.I,
)
# "the one before that", "the previous order", "the next one": the order placed just before (after) the one under
# discussion.
_RELATIVE = re.compile(
    r"\b(?:(?:one|order) (before|after) (?:that|it|this|the last)|(previous|next|earlier|later|prior) (?:one|order))\b",
    re.I,
)
_WHEN = re.compile(
    r"\b(?:(this morning|today|tonight|earlier today)|(yesterday|last night)|(\d+|two|three|four|five|six|seven) "
    r"days ago|(last week|a week ago))\b",
    re.I,
)
_NUMBER_WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7}
_ASK_ONLY = re.compile(
    r"\b(?:can|could|may) i (?:still |even |actually )?(?:cancel|change|get|have|return|refund|delete|update)\b|"
    r"\bis it (?:still )?possible to\b|\bam i (?:still )?able to\b|\bis (?:it|that|the order|order \d+) still "
    r"(?:cancell?able|refundable|changeable)\b|\bwould i be able to\b",
    re.I,
)
_REQUEST = re.compile(r"\b(?:please|i want|i'd like|i would like|go ahead|do it|i need you to|i wish to)\b", re.I)
_WORD = re.compile(r"[a-z']+")
_STOP = set("i my the a an to of is it me please and or for on in at this that order one".split())


@dataclass(frozen=True)
class Turn:
    """What a customer message does to the active task."""

    kind: TurnKind
    intent: str | None
    confidence: float
    task: dict[str, Any]
    entities: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


def is_open(task: dict[str, Any] | None) -> bool:
    return bool(task and task.get("step") in OPEN_STEPS)


def is_drop(text: str) -> bool:
    """'No', 'stop, never mind', 'no wait, don't cancel it', "never mind, I'll keep it" (and nothing else)."""
    return bool(_DROP.match(text.strip())) and bool(_DROP_CORE.search(text))


def is_yes(text: str) -> bool:
    return bool(_YES.match(text.strip())) and not is_drop(text)


def asks_only(text: str) -> bool:
    """A question about whether something is possible ("can I still cancel it?"), not a request to do it."""
    return bool(_ASK_ONLY.search(text)) and not _REQUEST.search(text)


_HOWTO = re.compile(
    r"^\W*(?:how (?:do|can|would|should|could) (?:i|we|you)|what(?:'s| is| are| does)|where (?:do|can|does) i|"
    r"is there a way|do you (?:have|offer|allow)|"
    r"(?:what|which)\b[\w\s,'-]{0,60}?\b(?:do|does|did) (?:you|the shop) (?:have|hold|keep|store|show|use)|"
    r"(?:what|which)\b[\w\s,'-]{0,60}?\b(?:is|are) (?:on file|registered|stored|saved|on my account))\b",
    re.I,
)


def is_howto(text: str) -> bool:
    """A general question ("how do I add an address?", "what's my default address?"), not a request to act."""
    return bool(_HOWTO.match(text))


_ASKS_YOU = re.compile(r"^\W*(?:and\s+)?(?:can|could|would|will) you\b", re.I)


def is_question(text: str) -> bool:
    """A question to answer ("and will I still get emails about my orders?"), not a request put as a question
    ("can you unsubscribe me?", "please change it?")."""
    return text.rstrip().endswith("?") and not _ASKS_YOU.match(text) and not _REQUEST.search(text)


def short_follow_up(text: str) -> bool:
    """A short message that leans on the last one ("and the one before that?", "what about order 1004?")."""
    words = _WORD.findall(text.lower())
    return len(words) <= 10 and (words[:1] in (["and"], ["what"], ["how"], ["also"]) or len(words) <= 6)


def refers_to_order(text: str) -> bool:
    """The message points at an order without its number ("it", "that order", "the last one", ...)."""
    return bool(
        _IT.search(text) or _DESCRIBED.search(text) or _RECENT.search(text) or _ORDINAL.search(text)
        or _WHEN.search(text)
    )


_PAYMENT = re.compile(r"\b(?:pay(?:ment|ments|ing)?|paid|charge[sd]?|card|bank|paypal|transaction)\b", re.I)
_FAILED = re.compile(
    r"\b(?:fail(?:s|ed|ing|ure)?|declin(?:e|es|ed|ing)|refus(?:e|es|ed|ing)|reject(?:s|ed|ing)?|bounced|"
    r"unsuccessful|did ?n[o']?t go through|(?:not|never) (?:go|gone|went) through)\b",
    re.I,
)
# The shop's site or app itself failing (at checkout, before there is an order to speak of).
_SITE_FAILURE = re.compile(
    r"\b(?:crash(?:es|ed|ing)?|freez(?:es|ing)|froze(?:n)?|hangs|hanging|blank (?:page|screen)|white (?:page|screen)|"
    r"error (?:page|screen)|(?:closes|shuts|shut) (?:down|itself|by itself)|clos(?:es|ing) by itself|"
    r"(?:won'?t|doesn'?t|does not|will not) (?:load|open)|not (?:loading|responding)|bad gateway|server error|"
    r"internal error|(?:keeps|kept) spinning)\b",
    re.I,
)


def about_failed_payment(text: str, order_codes: tuple[str, ...] = ()) -> bool:
    """The message speaks of a payment or charge that failed ("my payment failed", "my card keeps getting
    declined"), so the customer's one order whose payment failed is the one meant, when it names no other.

    Not when it describes the site or app failing at checkout (a crash, an error page, an HTTP error, an
    exception, a pasted log: there may be no order yet), nor when it reports an error code other than the order's
    own (`order_codes`, e.g. its payment's PAY-402): another failure than that order's.
    """
    from tools.log_triage import triage

    if not (_PAYMENT.search(text) and _FAILED.search(text)) or _SITE_FAILURE.search(text):
        return False
    found = triage(text)
    if found.exceptions or found.http_statuses or found.contains_log:
        return False
    own = {c.upper() for c in order_codes}
    return all(c.upper() in own for c in found.error_codes)


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2}


def _supplies(task: dict[str, Any], entities: dict[str, Any], text: str) -> bool:
    """The message gives (part of) what the task was waiting for."""
    wanted = set(task.get("missing") or []) | set(task.get("asked") or [])
    if wanted & set(entities):
        return True
    field = (task.get("slots") or {}).get("field")
    if "value" in wanted and field in ("phone", "email") and entities.get(field):
        return True
    if "order_id" in wanted and (task.get("candidates") and (_ORDINAL.search(text) or is_yes(text))):
        return True
    if wanted and len(_WORD.findall(text.lower())) <= 6 and not _REQUEST.search(text):
        return True  # a short reply to a question ("the pending one", "the one with the bottles")
    if task.get("step") == "confirming" and is_yes(text):
        return True
    return bool("order_id" in wanted and refers_to_order(text))


def interpret(
    text: str,
    entities: dict[str, Any],
    *,
    intent: str,
    confidence: float,
    task: dict[str, Any] | None,
    auto_threshold: float,
) -> Turn:
    """Continue, start or drop the task for one message, given the classifier's view of the message alone."""
    task = dict(task or {})
    if is_open(task) and is_drop(text):
        return Turn("drop", task.get("intent"), float(task.get("confidence", confidence)), {"step": "done"},
                    reason="the customer dropped the task")
    if task.get("step") == "awaiting_approval" and (is_yes(text) or _THANKS.match(text)):
        # "ok" / "yes" / "thanks" while a colleague decides: nothing new to do; the approval stands.
        return Turn("ack", task.get("intent"), float(task.get("confidence", confidence)), {},
                    reason="an acknowledgement while the approval waits")
    short = len(_WORD.findall(text.lower())) <= 6
    confident_new = intent != "out_of_scope" and confidence >= auto_threshold and intent != task.get("intent")
    if is_open(task):
        supplies = _supplies(task, entities, text)
        if intent == task.get("intent") or (supplies and (short or not confident_new)) or (
            not confident_new and (short or intent == "out_of_scope")
        ):
            slots = {**(task.get("slots") or {}), **entities}
            field = slots.get("field")
            if field in ("phone", "email") and entities.get(field) and "value" not in entities:
                slots["value"] = entities[field]  # "0612-987654" answers "what should your new phone number be?"
            return Turn(
                "continue",
                task["intent"],
                max(float(task.get("confidence", 0.0)), confidence if intent == task.get("intent") else 0.0),
                {"slots": slots},
                entities=slots,
                reason="the message supplies what the task asked for" if supplies else "same task",
            )
    if task.get("step") == "answered" and task.get("intent") not in (None, "out_of_scope") and (
        intent == "out_of_scope" or confidence < auto_threshold
    ) and (refers_to_order(text) or "order_id" in entities) and short_follow_up(text) and not asks_only(text):
        # "and for the one with the bottles?": the same question about another order.
        slots = {k: v for k, v in (task.get("slots") or {}).items() if k not in ("order_id", "order_ids")}
        slots.update(entities)
        return Turn("continue", task["intent"], float(task.get("confidence", confidence)),
                    {"slots": slots, "step": "collecting", "order_id": None}, entities=slots,
                    reason="a follow-up about another order")
    new_task: dict[str, Any] = {
        "intent": intent,
        "confidence": confidence,
        "slots": {**entities, "request": text[:200]},
        "missing": [],
        "asked": [],
        "candidates": list(task.get("candidates") or []),
        "step": "collecting",
        "order_id": task.get("order_id"),
        "pending_action": task.get("pending_action"),
    }
    return Turn("new", intent, confidence, new_task, entities=dict(new_task["slots"]), reason="a new request")


_REFUND_WORDS = re.compile(r"\b(?:refund|money back|back|reimburse|compensat|credit)\w*", re.I)
_ADDRESS_INTENTS = ("change_shipping_address", "set_up_shipping_address")


def slot_intent(text: str, entities: dict[str, Any], intent: str) -> str | None:
    """An intent the slots make plain when the classifier read the words otherwise, or None.

    An order and a full address in one message ask to deliver that order there; an order, an amount and
    "back"/"refund" ask for money back. Deterministic evidence, used only where it is unambiguous.
    """
    has_order = "order_id" in entities or bool(_IT.search(text))
    if entities.get("address") and has_order:
        return intent if intent in _ADDRESS_INTENTS else "change_shipping_address"
    if entities.get("amount") and "order_id" in entities and _REFUND_WORDS.search(text):
        # An amount back on a named order is a refund request, even put as a question ("can I get 20 back?").
        if intent not in ("get_refund", "track_refund"):
            return "get_refund"
    return None


# ------------------------------------------------------------------------------------------ order references


@dataclass(frozen=True)
class Resolution:
    """Which of the customer's orders a message means: one id, or candidates to offer, and how it was found."""

    order_id: int | None = None
    candidates: tuple[int, ...] = ()
    how: str = ""


def _days_ago(order: dict[str, Any], today: date) -> int:
    return (today - date.fromisoformat(str(order["created_at"])[:10])).days


def placed_phrase(order: dict[str, Any], today: date) -> str:
    days = _days_ago(order, today)
    return "placed today" if days <= 0 else "placed yesterday" if days == 1 else f"placed {days} days ago"


def describe_candidates(orders: list[dict[str, Any]], today: date) -> str:
    """'order 1010 (pending, placed yesterday) or 1009 (processing, placed yesterday)'."""
    parts = [f"{o['order_id']} ({str(o['status']).replace('_', ' ')}, {placed_phrase(o, today)})" for o in orders]
    if not parts:
        return ""
    if len(parts) == 1:
        return f"order {parts[0]}"
    return "order " + ", ".join(parts[:-1]) + " or " + parts[-1]


def resolve_order(
    text: str,
    entities: dict[str, Any],
    *,
    task: dict[str, Any] | None,
    orders: list[dict[str, Any]],
    statuses: tuple[str, ...] = (),
    today: date,
    last_order_id: int | None = None,
) -> Resolution:
    """Resolve the order a message is about against the customer's own `orders` (list_orders rows).

    An explicit number wins; then a choice among the candidates offered last turn ("the second one", "yes");
    then "it"/"that order" (the order under discussion); "the latest one"; a day ("the one I placed
    yesterday"); a product ("the headphones"). Otherwise the customer's orders in `statuses` become
    candidates (one of them is still only a candidate: a write needs the customer to confirm it).
    """
    task = task or {}
    mine = {int(o["order_id"]): o for o in orders}
    if entities.get("order_id") is not None:
        return Resolution(int(entities["order_id"]), how="stated")
    offered = [int(c) for c in task.get("candidates") or [] if int(c) in mine]
    if offered:
        ordinal = _ORDINAL.search(text)
        if ordinal:
            index = _ORDINALS.get(ordinal.group(1).lower())
            if index is not None and -len(offered) <= index < len(offered):
                return Resolution(offered[index], how="ordinal")
        if len(offered) == 1 and is_yes(text):
            return Resolution(offered[0], how="confirmed")
        picked = (
            _by_status(text, [mine[c] for c in offered])
            or _by_words(text, [mine[c] for c in offered])
            or _by_day(text, [mine[c] for c in offered], today)
        )
        if len(picked) == 1:
            return Resolution(int(picked[0]["order_id"]), how="described")
    current = task.get("order_id") or (None if offered else last_order_id)
    by_date = sorted(orders, key=lambda o: (str(o["created_at"]), int(o["order_id"])), reverse=True)
    relative = _RELATIVE.search(text)
    if relative and current is not None and int(current) in mine:
        older = (relative.group(1) or relative.group(2)).lower() in ("before", "previous", "earlier", "prior")
        ids = [int(o["order_id"]) for o in by_date]  # newest first
        step = ids.index(int(current)) + (1 if older else -1)
        if 0 <= step < len(ids):
            return Resolution(ids[step], how="relative")
        return Resolution(candidates=tuple(ids), how="open orders")
    if current is not None and int(current) in mine and _IT.search(text) and not (
        _WHEN.search(text) or _DESCRIBED.search(text)
    ):
        return Resolution(int(current), how="reference")
    if _RECENT.search(text) and by_date:
        return Resolution(int(by_date[0]["order_id"]), how="latest")
    pool = [o for o in by_date if not statuses or o["status"] in statuses]
    for narrow in (_by_day, lambda t, os, _d: _by_words(t, os)):
        picked = narrow(text, pool, today)
        if picked and len(picked) < len(pool) or (picked and len(pool) == 1):
            if len(picked) == 1:
                return Resolution(int(picked[0]["order_id"]), how="described")
            return Resolution(candidates=tuple(int(o["order_id"]) for o in picked), how="described")
    return Resolution(candidates=tuple(int(o["order_id"]) for o in pool), how="open orders")


def _by_status(text: str, orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """'the pending one', 'the one that failed'."""
    match = _STATUS_PICK.search(text)
    if not match:
        return []
    word = match.group(1).lower().replace("canceled", "cancelled")
    word = "payment_failed" if word == "failed" else word
    return [o for o in orders if o.get("status") == word]


def _by_day(text: str, orders: list[dict[str, Any]], today: date) -> list[dict[str, Any]]:
    match = _WHEN.search(text)
    if not match:
        return []
    if match.group(1):
        days = {0}
    elif match.group(2):
        days = {1}
    elif match.group(3):
        n = match.group(3).lower()
        days = {int(n) if n.isdigit() else _NUMBER_WORDS[n]}
    else:
        days = set(range(5, 10))
    return [o for o in orders if _days_ago(o, today) in days]


def named_item(text: str, items: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The one item of a several-item order that the message names ("a refund for my monitor"), else None."""
    if len(items) < 2:
        return None
    words = {w.rstrip("s") for w in _content_words(text)}
    hits = [i for i in items if {w.rstrip("s") for w in _content_words(str(i.get("name", "")))} & words]
    return hits[0] if len(hits) == 1 else None


def order_by_item(text: str, orders: list[dict[str, Any]]) -> int | None:
    """The one order whose items the message names ("when will my new headphones get here?"), else None."""
    words = {w.rstrip("s") for w in _content_words(text)}
    hits = [
        o for o in orders
        if {w.rstrip("s") for w in _content_words(str(o.get("items") or ""))} & words
    ]
    return int(hits[0]["order_id"]) if len(hits) == 1 else None


def _by_words(text: str, orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Orders whose item names or carrier share a word with the message ("the headphones", "the UPS one")."""
    words = {w.rstrip("s") for w in _content_words(text)}
    if not words:
        return []
    hits = []
    for o in orders:
        names = {w.rstrip("s") for w in _content_words(f"{o.get('items') or ''} {o.get('carrier') or ''}")}
        if names & words:
            hits.append(o)
    return hits
