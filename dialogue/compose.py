"""The offline answer: composed deterministically from what the specialists found (facts from tool results,
refusals, offers, confirmations, consistent article sentences), with the article ids it cites and what grounds it.

`compose(state, ...) -> (text, citations, ground)`; `nodes.generate_response` sends it as the draft, and as the
fallback when a model is configured.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from dialogue.facts import (
    RETRY_ADVICE,
    about_method,
    about_status,
    account_sentences,
    answers_intent,
    confirmation,
    consistent,
    invoice_sentences,
    order_sentences,
    refund_sentences,
)
from dialogue.sentences import SentenceScorer, sentences_of
from dialogue.task import describe_candidates
from graphs.state import SupportState
from tools.shop import method_name

EMPTY_INPUT = "Please tell me what you need help with: an order, a delivery, a refund, a payment or your account."
SCOPE = (
    "I'm the shop's support assistant, so I can help with orders, deliveries, returns and refunds, "
    "payments, invoices, your account and the newsletter. That request is outside what I can help with here. "
    "If it's about one of those topics, tell me a bit more; or ask for a human colleague at any time."
)
QUESTIONS = {
    "order_id": "the order number (for example 1004)",
    "address": "the full new delivery address, including street, number, postcode and city",
    "field": "which detail to change (name, email or phone)",
    "value": "the new value",
    "amount": "the amount",
}
FIELD_NAMES = {"phone": "phone number", "email": "email address", "name": "name"}
STATUS_QUESTIONS = ("track_order", "delivery_period")
CUSTOMER_SECTION = ("what you can do",)
"""The heading of a known issue's section written to the customer (demo/kb/ki-*.md); the rest is for agents."""
SECTION_SENTENCES = 8
"""A customer section is said whole: at most this many sentences (they are written short)."""

MALFUNCTION = re.compile(
    r"\b(?:crash(?:es|ed|ing)?|shuts? (?:itself )?down|closes (?:itself|down)|freez(?:e|es|ing)|froze|hangs|"
    r"blank (?:screen|page)|(?:won'?t|will not|does ?n[o']t|did ?n[o']t|can'?t|cannot) (?:load|open)|"
    r"(?:page|screen|app|site) (?:is|stays|goes|turns|shows) (?:just |completely |all |totally )?"
    r"(?:blank|white|empty))\b",
    re.I,
)
"""The customer says the app or site itself misbehaves (a status question about order 1006 that also says the app
shuts down when they open it): the order's facts answer one half, an article about the malfunction the other."""

ERROR_CODE = re.compile(r"(?<![\w-])[A-Z]{2,5}-\d{3}(?![\w-])")
"""The shop's error codes as articles write them (PAY-402, CHK-500)."""


def compose(
    state: SupportState, *, max_chars: int = 4000, scorer: SentenceScorer | None = None, today: date | None = None
) -> tuple[str, list[str], dict[str, Any]]:
    """The offline answer, the article ids it cites, and what grounds it (facts, preconditions, articles)."""
    today = today or date.today()
    flags = set(state.get("flags", []))
    fixed = {"fixed": True}
    if "empty_input" in flags:
        return EMPTY_INPUT, [], fixed
    if "input_too_long" in flags:
        return (
            (
                f"Your message is longer than {max_chars} characters. Please send the key details "
                "(order number, what happened) in a shorter message."
            ),
            [],
            fixed,
        )
    if "prompt_injection" in flags:
        from nodes.guard_input import REFUSAL_INJECTION

        return REFUSAL_INJECTION, [], fixed
    task = state.get("task") or {}
    if "task_dropped" in flags:
        pending = task.get("pending_action")
        if pending:
            return (
                (
                    f"OK, I've withdrawn your request to {_plain(pending.get('summary'))}; nothing was changed. "
                    "Is there anything else I can help with?"
                ),
                [],
                fixed,
            )
        return "OK, I'll leave that. Is there anything else I can help with?", [], fixed
    if "task_ack" in flags and task.get("pending_action"):
        summary = _plain(task["pending_action"].get("summary"))
        return (
            (
                f"Thanks. Your request to {summary} is waiting for a colleague's approval; "
                "I'll confirm here as soon as it is decided."
            ),
            [],
            fixed,
        )
    if state.get("intent") == "out_of_scope":
        return SCOPE, [], fixed

    parts: list[str] = []
    citations: list[str] = []
    ground: dict[str, Any] = {}
    action = state.get("action") or {}
    approval = state.get("approval") or {}
    result = state.get("action_result")
    lookups = dict(state.get("lookups") or {})
    orders = ((lookups.get("list_orders") or {}).get("data") or {}).get("orders", [])
    missing = list(action.get("missing") or []) or list(task.get("missing") or [])
    if missing and not result:
        question = clarifying_question(missing, action, task, orders, today)
        helped = malfunction_help(state, scorer) if "order_id" in missing else None
        if helped is not None:
            # "The tracking page is blank": which order it is waits for the customer; what to do about a page or
            # app that misbehaves does not.
            text, item = helped
            article = {"id": item["id"], "relevance": float(item.get("relevance", 0.0)), "for_intent": True}
            return f"{text} [{item['id']}]\n\n{question}", [item["id"]], {"question": missing, "articles": [article]}
        return question, [], {"question": missing}

    refusal = action.get("refused") or {}
    if action.get("error"):
        ground["precondition"] = True
        parts.append(f"{_sentence(action['error'])}" + (f" {refusal['instead']}" if refusal.get("instead") else ""))
        if refusal.get("article"):
            parts[-1] += f" [{refusal['article']}]"
            citations.append(refusal["article"])
        if refusal.get("code") is None and "not found" in str(action["error"]):
            parts[-1] += " Please check the number in your order list under Account > Orders."
    elif action.get("offer"):
        ground["precondition"] = True
        parts.append(_offer(action))
    elif approval and approval.get("type") not in ("accept", "edit"):
        ground["precondition"] = True
        why = f" Reason: {approval['reason']}" if approval.get("reason") else ""
        parts.append(
            f"A colleague reviewed the request ({_plain(action.get('description', action.get('tool')))}) "
            f"and it was not carried out.{why}"
        )
    elif result is not None:
        ground["result"] = True
        if result.get("ok"):
            parts.append(confirmation(action.get("tool", ""), result.get("data") or {}))
        else:
            parts.append(f"I couldn't complete that: {result.get('error')}.")
    elif action.get("tool") and action.get("approval") == "required":
        parts.append(f"I've asked a colleague to approve this: {_plain(action.get('description'))}.")

    status = None
    intent = state.get("intent")
    if not action.get("tool") or (result is None and not action.get("error") and not action.get("offer")):
        facts, status = _facts(lookups, intent, today)
        if facts:
            ground["facts"] = True
            # Facts from a lookup made for this question (invoice, refunds, account), not just the order's state.
            ground["specific"] = any(
                (lookups.get(t) or {}).get("ok") or (lookups.get(t) or {}).get("error")
                for t in ("get_invoice", "get_refund_status", "get_account")
            ) or answers_intent(((lookups.get("get_order") or {}).get("data") or {}), intent)
            parts.extend(facts)

    analysis = state.get("analysis") or {}
    reported_at = len(parts)  # where a sentence about the customer's error goes, if one is due (see below)

    not_found = bool((lookups.get("get_order") or {}).get("error"))
    group = set(state.get("intent_group") or [intent or ""])
    # The one known issue that explains what the customer reported, if any.
    matched = known_issues_for(analysis, state.get("knowledge", []), group)[:1]
    # A status question the order's own facts answer needs no article on top (only the known issue the customer
    # ran into: TRK-404 on a shipped parcel).
    answered = intent in STATUS_QUESTIONS and ground.get("facts") and status is not None
    # ... unless the app or site misbehaved on the way: then an article about that malfunction is due as well.
    malfunction = bool(answered and not matched and MALFUNCTION.search(state.get("ticket", "")))
    # An offer ("yes, it can still be cancelled; shall I?") already states the policy for this order.
    if (
        not action.get("error") and result is None and not not_found and (not answered or matched or malfunction)
        and not action.get("offer")
    ):
        scorer = scorer or SentenceScorer()
        # "I can't find the money in my PayPal account": a passage about the order's own payment method answers it.
        payment = ((lookups.get("get_order") or {}).get("data") or {}).get("payment") or {}
        method = payment.get("method")
        # The order's own error code is a fact: a passage about another code (PAY-503 for a PAY-402 decline) is not
        # about this order and would contradict it.
        own_code = str(payment.get("error_code") or "")

        def on_topic(sentence: str) -> bool:
            return consistent(sentence, status, strict=strict) and not (
                own_code and set(ERROR_CODE.findall(sentence)) - {own_code}
            )

        items = [
            i for i in state.get("knowledge", [])
            if (
                i["id"] in matched if i.get("kind") == "known_issue"
                else bool(MALFUNCTION.search(i["text"])) if malfunction else not answered
            )
        ]
        # A known issue that explains what the customer ran into is the answer; a general article on top is noise.
        limit = 1 if parts or matched else 2
        strict = intent in STATUS_QUESTIONS and not malfunction
        for item in _best_items(items):
            text = item["text"]
            # A known issue's section written to the customer is said whole; without one, the agents' fix.
            own = customer_section(text) if item.get("kind") == "known_issue" else ""
            if item.get("kind") == "known_issue":
                text = own or _section(text, ("fix", "workaround", "resolution")) or text
            # With an order's facts in hand, a status question only gets passages about that status; any other
            # question gets passages that do not contradict it.
            sentences = scorer.best(
                text,
                state.get("ticket", ""),
                SECTION_SENTENCES if own else 2 if parts else 3,
                keep=on_topic,
                prefer=lambda x: about_status(x, status) or about_method(x, method),
            )
            if not sentences:
                continue
            if own:
                if RETRY_ADVICE in parts and any(re.search(r"\bretry\b", x, re.I) for x in sentences):
                    parts.remove(RETRY_ADVICE)  # the known issue says how to retry, for this very error
                    reported_at = min(reported_at, len(parts))
                parts.append(f"{' '.join(sentences)} [{item['id']}]")
            else:
                label = item.get("title") or "Help"
                # "Title: Section: text" reads like raw key-value output; a sentence with its own label gets a dash.
                sep = " — " if re.match(r"[^:.!?]{3,60}\??: ", sentences[0]) else ": "
                parts.append(f"{label}{sep}{' '.join(sentences)} [{item['id']}]")
            citations.append(item["id"])
            ground.setdefault("articles", []).append(
                {
                    "id": item["id"],
                    "relevance": float(item.get("relevance", 0.0)),
                    "for_intent": bool(
                        set(state.get("intent_group") or [intent or ""]) & set(item.get("intents") or [])
                    )
                    or item.get("kind") == "known_issue",
                }
            )
            if len(citations) >= limit:
                break
    if not any(i.get("kind") == "known_issue" for i in state.get("knowledge", []) if i["id"] in citations):
        # No known issue explains what the customer reported: say in their words what was read, and that it is new.
        reported = unknown_error(analysis)
        if reported:
            parts.insert(reported_at, reported)
    pending = task.get("pending_action")
    if pending and pending.get("idempotency_key") != action.get("idempotency_key"):
        parts.append(f"Your earlier request to {_plain(pending.get('summary'))} is still waiting for approval.")
    if action.get("replaces"):
        earlier = _plain(action["replaces"])
        parts.append(f"I've withdrawn your earlier request to {earlier}, which had not been approved yet.")
    if not parts:
        parts.append("I couldn't find this in our help articles. I can pass it to a colleague if you like.")
    return "\n\n".join(parts), citations, ground


def _plain(markdown: Any) -> str:
    """A one-line, Markdown-free version of an action description."""
    text = str(markdown or "").replace("**", "")
    return " ".join(text.replace("\n- ", "; ").split()).rstrip(".")


def _sentence(text: str) -> str:
    text = str(text).strip()
    text = text[0].upper() + text[1:] if text else text
    return text if text.endswith((".", "!", "?")) else text + "."


def _offer(action: dict[str, Any]) -> str:
    p, tool = action.get("preview") or {}, action.get("tool")
    if tool == "cancel_order":
        what = f"order {p.get('order_id')} is {str(p.get('status')).replace('_', ' ')}, so it can still be cancelled"
        return f"Yes: {what} free of charge, and {p.get('money')}. Shall I cancel it for you?"
    if tool == "issue_refund":
        return (
            f"Yes: order {p.get('order_id')} can be refunded ({p.get('currency')} {float(p.get('amount', 0)):.2f} "
            f"to {method_name(p.get('method'))}). Shall I request the refund?"
        )
    if tool == "update_shipping_address":
        return (
            f"Yes: order {p.get('order_id')} has not shipped yet, so its address can still be changed to "
            f"{p.get('new_address')}. Shall I change it?"
        )
    return f"Yes, that is possible: {_plain(action.get('description'))}. Shall I go ahead?"


def malfunction_help(state: SupportState, scorer: SentenceScorer | None = None) -> tuple[str, dict] | None:
    """When the customer says the app or a page misbehaves (`MALFUNCTION`): the section of the best retrieved article
    about such malfunctions that is closest to the ticket ("A page shows an error or does not load: ..."), said whole
    (up to three sentences), with that article; None otherwise."""
    ticket = state.get("ticket", "")
    if not MALFUNCTION.search(ticket):
        return None
    items = [i for i in state.get("knowledge", []) if i.get("kind") != "known_issue" and MALFUNCTION.search(i["text"])]
    for item in _best_items(items):
        sections = [(h, b) for level, h, b in _sections(item["text"]) if level == 2 and b]
        if not sections:
            continue
        scorer = scorer or SentenceScorer()
        heading, body = sections[scorer.closest([h for h, _ in sections], ticket)]  # a heading names its case
        said = " ".join(sentences_of(body)[:3])
        if said:
            return f"{heading}: {said}", item
    return None


def clarifying_question(
    missing: list[str], action: dict[str, Any], task: dict[str, Any], orders: list[dict[str, Any]], today: date
) -> str:
    """One sentence asking for exactly what is missing; offers the customer's candidate orders."""
    if action.get("invalid"):
        bad = missing[0]
        if bad == "address":
            return (
                "That address looks incomplete: please send the full address with street and house number, "
                "postcode and city."
            )
        if bad == "value":
            field = (action.get("args") or {}).get("field", "value")
            return f"That doesn't look like a valid {FIELD_NAMES.get(field, field)}: could you send it again?"
        return f"Some details were not valid ({', '.join(missing)}): could you send them again?"
    if "order_id" in missing:
        wanted = [int(c) for c in task.get("candidates") or []]
        by_id = {int(o["order_id"]): o for o in orders}
        candidates = [by_id[c] for c in wanted if c in by_id][:5]
        rest = [m for m in missing if m != "order_id"]
        tail = " and the full new address" if "address" in rest else ""
        if candidates:
            listed = describe_candidates(candidates, today)
            if len(candidates) <= 2:
                return f"Do you mean {listed}{tail}?"
            return f"Which order do you mean{tail and ', and what is' + tail[4:]}: {listed}?"
        return f"Which order is it about? Please send the order number (for example 1004){tail}."
    if "address" in missing:
        return "What is the full new delivery address, with street and house number, postcode and city?"
    if "field" in missing and "value" in missing:
        return "Which detail should I change (your name, email address or phone number), and to what?"
    if "value" in missing:
        field = (action.get("args") or {}).get("field", "detail")
        return f"What should your new {FIELD_NAMES.get(field, field)} be?"
    if "field" in missing:
        return "Which detail should I change: your name, email address or phone number?"
    if missing == ["subscribed"]:
        return "Would you like to subscribe to the newsletter, or unsubscribe from it?"
    return "Could you tell me " + " and ".join(QUESTIONS.get(m, m) for m in missing) + "?"


def _facts(lookups: dict[str, Any], intent: str | None, today: date) -> tuple[list[str], str | None]:
    """Sentences from the read tools' results that answer this intent, and the order's status (for consistency)."""
    out: list[str] = []
    status = None
    order = lookups.get("get_order") or {}
    if order.get("ok"):
        data = order.get("data") or {}
        status = data.get("status")
        if intent not in ("get_invoice", "check_invoice") or not (lookups.get("get_invoice") or {}).get("ok"):
            out += order_sentences(data, intent, today)
    elif order:
        out.append(
            _sentence(f"I couldn't find that order: {order.get('error')}")
            + " Please check the number in your order list under Account > Orders."
        )
    for more in lookups.get("get_order_more") or []:
        if more.get("ok"):
            status = None  # several orders: no single status to keep articles consistent with
            out += order_sentences(more.get("data") or {}, intent, today)
    refund = lookups.get("get_refund_status") or {}
    if refund.get("ok") and intent in ("track_refund", "get_refund"):
        out += refund_sentences(refund.get("data") or {})
    invoice = lookups.get("get_invoice") or {}
    if invoice.get("ok"):
        out += invoice_sentences(invoice.get("data") or {})
    elif invoice.get("error") and not order.get("error"):
        out.append(_sentence(f"I can't provide an invoice yet: {invoice['error']}"))
    account = lookups.get("get_account") or {}
    if account.get("ok"):
        out += account_sentences(account.get("data") or {}, intent)
    return out, status


def known_issues_for(analysis: dict[str, Any], knowledge: list[dict[str, Any]], intents: set[str]) -> list[str]:
    """The analyst's known-issue matches an answer may use, best first.

    A match on an error code or exception (`reasons` beyond HTTP statuses) stands on its own. A match on an HTTP
    status alone (a 500 is many things) counts only when the retriever found the same article for the ticket's
    intent (its `intents`, merged into the item): "HTTP 500 when I pay" is the checkout error, not the invoice PDF.
    """
    by_id = {i["id"]: i for i in knowledge}
    out = []
    for match in analysis.get("known_issues") or []:
        reasons = [str(r) for r in match.get("reasons") or []]
        http_only = bool(reasons) and all(r.startswith("HTTP ") for r in reasons)
        if http_only and not intents & set((by_id.get(match["id"]) or {}).get("intents") or []):
            continue
        out.append(str(match["id"]))
    return out


def unknown_error(analysis: dict[str, Any]) -> str:
    """One sentence for an error the customer reported that no known issue explains ("" when none was reported):
    the codes or exception names as they wrote them, never the triage's own summary."""
    codes = [str(c) for c in analysis.get("error_codes") or []][:3]
    names = [str(e).rsplit(".", 1)[-1] for e in analysis.get("exceptions") or []][:2]
    what = codes or names
    if not what:
        return ""
    if any(not str(r).startswith("HTTP ") for m in analysis.get("known_issues") or [] for r in m.get("reasons") or []):
        return ""  # a known issue names one of them: it is known, whether or not the answer could quote it
    listed = " and ".join([", ".join(what[:-1]), what[-1]] if len(what) > 1 else what)
    several = len(what) > 1
    noun = ("error code" if codes else "error") + ("s" if several else "")
    known = "they are not" if several else "it is not"
    return f"You reported {noun} {listed}; {known} among the problems we already know of."


def _best_items(items: list[dict]) -> list[dict]:
    """Known issues and resolved cases first (they are specific), then articles by score."""
    rank = {"known_issue": 0, "case": 1}
    return sorted(items, key=lambda i: (rank.get(i.get("kind", ""), 2), -float(i.get("score", 0))))


def customer_section(text: str) -> str:
    """A known issue's section written to the customer (`## What you can do`), "" when it has none."""
    return _section(text, CUSTOMER_SECTION)


def _section(text: str, names: tuple[str, ...]) -> str:
    """The body of the first markdown section whose heading mentions one of `names`."""
    wanted = re.compile("|".join(names), re.IGNORECASE)
    return next((body for _, heading, body in _sections(text) if wanted.search(heading)), "")


_SECTION = re.compile(r"^(#+)[ \t]*([^\n]*)\n(.*?)(?=^#+\s|\Z)", re.MULTILINE | re.DOTALL)


def _sections(text: str) -> list[tuple[int, str, str]]:
    """An article's markdown sections in order: (heading level, heading, body), stripped."""
    return [(len(level), heading.strip(), body.strip()) for level, heading, body in _SECTION.findall(text)]
