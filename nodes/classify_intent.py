"""classify_intent: which of the shop's intents is this ticket, and how sure are we?

A calibrated classifier (sentence embeddings + lexical features) decides; confidence picks the tier
(auto / review / escalate) from config. Below the review threshold a configured language model may
pick among the top candidates (cascade); without one the tier stands.

When the classifier says out of scope, or is not sure enough to answer on its own, the message is triaged for
error signals (tools.log_triage) and matched against the tenant's known issues: an error code or an exception
class of the shop's own systems that a known-issue article names settles it. The ticket is about the shop's site
or app, with the article's intent that the classifier rates highest (flag `intent_from_known_issue`). An HTTP
status, a built-in or a library's exception alone decides nothing: any site or script shows those. A message that
says the shop's own app, site or checkout crashes, freezes, stays blank or will not load is never out of scope either
(flag `intent_from_malfunction`): the classifier's best in-scope intent, at the review threshold, so a colleague
reads the answer first.

The message is read against the conversation's active task (dialogue.task.interpret): a turn that only
supplies what the task asked for continues it ("it's 1006" is not out of scope when the customer was
asked for an order number), a clearly new, confident intent starts a new task, "never mind" drops it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

from langchain_core.messages import AIMessage, BaseMessage
from langgraph.runtime import Runtime
from langgraph.types import Overwrite

from classifier.cascade import refine_with_llm
from classifier.model import Prediction
from classifier.policy import decide, interchangeable
from dialogue.compose import MALFUNCTION
from dialogue.task import interpret, slot_intent
from graphs.context import Context
from graphs.services import ServicesProvider
from graphs.state import SupportState, sum_usage
from nodes.common import Node, visited
from tools.log_triage import Triage, match_known_issues, triage

if TYPE_CHECKING:
    from llm import LLM

NAME: Final = "classify_intent"
SLOT_EVIDENCE_CONFIDENCE = 0.9
"""Confidence given to an intent that the message's slots make plain (see dialogue.task.slot_intent)."""
KNOWN_ISSUE_CONFIDENCE = 0.9
"""Confidence given to an intent that a known issue's own error code or exception in the message settles."""


def make(services: ServicesProvider) -> Node:
    def classify_intent(state: SupportState, runtime: Runtime[Context]) -> dict:
        svc = services()
        text = state.get("ticket", "")
        prediction = svc.classifier.predict([text])[0]
        thresholds = svc.policy.confidence
        update: dict = {**visited(NAME)}
        known = None
        if prediction.is_oos or prediction.confidence < thresholds.auto:
            # Only here: a confident in-scope ticket pays for no triage, and one without codes for no lookup.
            found = triage(text)
            if found.error_codes or found.exceptions:
                articles = svc.knowledge.known_issues(tenant_id=runtime.context.tenant_id)
                known = known_issue_intent(found, prediction, articles, set(svc.workflows))
        if known is None and prediction.is_oos and our_app_misbehaves(text):
            # "The app crashes when I open checkout": the shop's own app or site, so never out of scope; which of
            # its intents is the classifier's best in-scope guess, at review (a colleague reads the answer first).
            inscope = [(i, p) for i, p in prediction.candidates if i != "out_of_scope" and i in svc.workflows]
            if inscope:
                prediction = Prediction(intent=inscope[0][0], confidence=thresholds.review,
                                        candidates=prediction.candidates, oos_score=prediction.oos_score,
                                        is_oos=False)
                update["flags"] = ["intent_from_malfunction"]
        if known is None and prediction.confidence < thresholds.review and svc.llm is not None:
            refined = refine_with_llm(text, prediction, _ChatAdapter(svc.llm, update))
            if refined is not None:
                prediction = refined
                update["flags"] = ["llm_refined_intent"]
        intent = "out_of_scope" if prediction.is_oos else prediction.intent
        confidence = float(prediction.confidence)
        if known is not None:
            # The classifier's own confidence counts only when it named that intent itself.
            agreed = confidence if (not prediction.is_oos and prediction.intent == known) else 0.0
            intent, confidence = known, max(agreed, KNOWN_ISSUE_CONFIDENCE, thresholds.auto)
            update["flags"] = [*update.get("flags", []), "intent_from_known_issue"]
        entities = dict(state.get("entities") or {})
        hinted = slot_intent(text, entities, intent)
        if hinted is not None and hinted in svc.workflows:
            # The slots say it plainly (an order and an address, an order and an amount back): trust them.
            intent, confidence = hinted, max(confidence, SLOT_EVIDENCE_CONFIDENCE)
            update["flags"] = [*update.get("flags", []), "intent_from_slots"]
        group = [intent]
        if hinted is None and known is None and not prediction.is_oos:
            group = interchangeable(intent, list(prediction.candidates), svc.workflows)
            confidence += sum(float(p) for i, p in prediction.candidates if i in group[1:])
        turn = interpret(
            text,
            entities,
            intent=intent,
            confidence=confidence,
            task=state.get("task"),
            auto_threshold=thresholds.auto,
        )
        confidence = turn.confidence
        intent = turn.intent or intent
        # Saying "that is outside what this desk handles" is safe to send on its own.
        fixed = intent == "out_of_scope" or turn.kind in ("drop", "ack")
        decision = "auto" if fixed else decide(confidence, thresholds)
        update.update(
            intent=intent,
            confidence=round(confidence, 4),
            intent_confidence=round(confidence, 4),
            candidates=[{"intent": i, "p": round(float(p), 4)} for i, p in prediction.candidates],
            # Knowledge-only intents that would build the same answer (their summed probability is the confidence).
            intent_group=group if turn.kind == "new" else [intent],
            decision=decision,
        )
        if turn.kind == "new":
            update["task"] = Overwrite(dict(turn.task))
        else:
            update["task"] = turn.task
            update["entities"] = turn.entities
        if turn.kind != "new":
            flag = {"drop": "task_dropped", "ack": "task_ack"}.get(turn.kind, "task_continued")
            update["flags"] = [*update.get("flags", []), flag]
        return update

    return classify_intent


OUR_APP = re.compile(r"\b(?:your|the|this) (?:app|apps|website|web ?site|site|web ?shop|shop|checkout)\b|"
                     r"\b(?:checkout|basket|tracking page|order page)\b", re.I)
"""Names the shop's own app, site or one of its pages (with MALFUNCTION: the shop's software misbehaves)."""


def our_app_misbehaves(text: str) -> bool:
    """The customer says the shop's app or site crashes, freezes, stays blank or will not load."""
    return bool(OUR_APP.search(text) and MALFUNCTION.search(text))


def known_issue_intent(
    found: Triage, prediction: Prediction, known: list[dict[str, Any]], intents: set[str]
) -> str | None:
    """The intent the tenant's known issues (`known`, as `known_issues()` returns them) settle for a message's
    triage, or None.

    The best-scoring known-issue article whose match is decisive (`KnownIssueMatch.decisive`: one of its error
    codes or its own exception classes in the message) decides; of the intents it lists (and the workflows know),
    the one the classifier rates highest, else the first listed.
    """
    by_id = {str(a.get("id")): a for a in known}
    for match in match_known_issues(found, known):
        listed = [str(i) for i in by_id.get(match.article_id, {}).get("intents") or [] if i in intents]
        if not match.decisive or not listed:
            continue
        rated = dict(prediction.candidates)
        return max(listed, key=lambda i: (float(rated.get(i, 0.0)), -listed.index(i)))
    return None


class _ChatAdapter:
    """Lets the cascade call the fallback chain like a chat model, and records usage."""

    def __init__(self, llm: LLM, update: dict[str, Any]) -> None:
        self.llm, self.update = llm, update

    def invoke(self, messages: list[BaseMessage], /) -> AIMessage:
        reply = self.llm.generate(messages, task="classify")  # the cheap tier (error-policies.yaml routes)
        if reply is None:
            raise RuntimeError("no language model answered")
        self.update["usage"] = sum_usage(self.update.get("usage"), reply.usage)
        return AIMessage(content=reply.text)
