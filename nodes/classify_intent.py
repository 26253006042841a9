"""classify_intent: which of the shop's intents is this ticket, and how sure are we?

A calibrated classifier (sentence embeddings + lexical features) decides; confidence picks the tier
(auto / review / escalate) from config. Below the review threshold a configured language model may
pick among the top candidates (cascade); without one the tier stands.

The message is read against the conversation's active task (dialogue.task.interpret): a turn that only
supplies what the task asked for continues it ("it's 1006" is not out of scope when the customer was
asked for an order number), a clearly new, confident intent starts a new task, "never mind" drops it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from langchain_core.messages import AIMessage, BaseMessage
from langgraph.runtime import Runtime
from langgraph.types import Overwrite

from classifier.cascade import refine_with_llm
from classifier.policy import decide, interchangeable
from dialogue.task import interpret, slot_intent
from graphs.context import Context
from graphs.services import ServicesProvider
from graphs.state import SupportState, sum_usage
from nodes.common import Node, visited

if TYPE_CHECKING:
    from llm import LLM

NAME: Final = "classify_intent"
SLOT_EVIDENCE_CONFIDENCE = 0.9
"""Confidence given to an intent that the message's slots make plain (see dialogue.task.slot_intent)."""


def make(services: ServicesProvider) -> Node:
    def classify_intent(state: SupportState, runtime: Runtime[Context]) -> dict:
        svc = services()
        text = state.get("ticket", "")
        prediction = svc.classifier.predict([text])[0]
        thresholds = svc.policy.confidence
        update: dict = {**visited(NAME)}
        if prediction.confidence < thresholds.review and svc.llm is not None:
            refined = refine_with_llm(text, prediction, _ChatAdapter(svc.llm, update))
            if refined is not None:
                prediction = refined
                update["flags"] = ["llm_refined_intent"]
        intent = "out_of_scope" if prediction.is_oos else prediction.intent
        entities = dict(state.get("entities") or {})
        confidence = float(prediction.confidence)
        hinted = slot_intent(text, entities, intent)
        if hinted is not None and hinted in svc.workflows:
            # The slots say it plainly (an order and an address, an order and an amount back): trust them.
            intent, confidence = hinted, max(confidence, SLOT_EVIDENCE_CONFIDENCE)
            update["flags"] = [*update.get("flags", []), "intent_from_slots"]
        group = [intent]
        if hinted is None and not prediction.is_oos:
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
