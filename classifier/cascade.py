"""LLM cascade: below the review threshold, let a configured chat model pick among the top candidates."""

from __future__ import annotations

import json
import re
from typing import Any, Protocol

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from classifier.model import Prediction
from dialogue.messages import text_of

SYSTEM_PROMPT = (
    "You route customer-support messages. Choose the single intent from the allowed list that best matches "
    "the customer's message, or \"{oos}\" when none fits. Answer with JSON only: "
    '{{"intent": "<one allowed name>", "confidence": <number between 0 and 1>}}.'
)
USER_PROMPT = "Allowed intents: {choices}\n\nCustomer message:\n<<<\n{text}\n>>>"
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def _parse(content: str) -> dict[str, Any] | None:
    match = _JSON_OBJECT.search(content)
    if match is None:
        return None
    try:
        data = json.loads(match.group(0))
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


class ChatModel(Protocol):
    """What the cascade calls: a LangChain chat model, or nodes.classify_intent's adapter over the fallback chain."""

    def invoke(self, messages: list[BaseMessage], /) -> BaseMessage: ...


def refine_with_llm(text: str, prediction: Prediction, chat_model: ChatModel, top_k: int = 5,
                    oos_label: str = "out_of_scope") -> Prediction | None:
    """Ask `chat_model` to choose among the top `top_k` candidates (or `oos_label`).

    Returns a new Prediction for a valid answer, or None when the answer is not JSON, names an intent
    outside the offered choices, or the model call fails; the classifier's tier then stands. The caller
    decides when to call this (below the review threshold). The LLM's own confidence is capped at the
    classifier's probability for that intent plus 0.3, so a model cannot talk a low score into autonomy.
    """
    choices = [name for name, _ in prediction.candidates[:top_k] if name != oos_label] + [oos_label]
    messages = [SystemMessage(SYSTEM_PROMPT.format(oos=oos_label)),
                HumanMessage(USER_PROMPT.format(choices=", ".join(choices), text=text))]
    try:
        reply = chat_model.invoke(messages)
    except Exception:  # noqa: BLE001 - any model failure leaves the classifier's decision in place
        return None
    data = _parse(text_of(reply))
    if data is None or not isinstance(data.get("intent"), str):
        return None
    intent = data["intent"].strip()
    if intent not in choices:
        return None
    probs = dict(prediction.candidates)
    prior = probs.get(intent, prediction.oos_score if intent == oos_label else 0.0)
    raw = data.get("confidence", 0.5)
    llm_conf = float(raw) if isinstance(raw, int | float) and 0.0 <= float(raw) <= 1.0 else 0.5
    confidence = min(llm_conf, prior + 0.3)
    return Prediction(intent=intent, confidence=confidence, candidates=prediction.candidates,
                      oos_score=prediction.oos_score, is_oos=intent == oos_label)
