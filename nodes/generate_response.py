"""generate_response: the response generator.

Writes the customer's answer from what the specialists found — retrieved articles, tool results,
technical triage, the action's outcome — and nothing else. Offline it composes the answer
deterministically and cites article ids; with a language model configured it generates from the
same grounded context and must cite the same ids (the offline answer is the fallback).

The node decides; the pieces live in `dialogue/`: `compose.py` (the offline answer), `sentences.py` (article
sentences and their scorer), `prompts.py` (what the model is sent), `claims.py` (what a model answer may state).
`assess` (the answer's confidence and tier) stays here.
"""

from __future__ import annotations

from typing import Any, Final

from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.runtime import Runtime

from dialogue.claims import unsupported_claims
from dialogue.compose import compose
from dialogue.prompts import SYSTEM_PROMPT, grounded_context
from dialogue.sentences import SentenceScorer
from graphs.context import Context, context_of
from graphs.services import ServicesProvider
from graphs.state import SupportState
from llm.complexity import answer_complexity
from nodes import review_gate
from nodes.common import Node, visited

NAME: Final = "generate_response"


def make(services: ServicesProvider) -> Node:
    scorers: dict[int, SentenceScorer] = {}

    def generate_response(state: SupportState, runtime: Runtime[Context]) -> dict:
        svc = services()
        scorer = scorers.setdefault(id(svc.embedder), SentenceScorer(svc.embedder))
        offline, citations, ground = compose(
            state, max_chars=svc.policy.limits.max_input_chars, scorer=scorer, today=svc.shop.now().date()
        )
        update: dict = {**visited(NAME), "draft": offline, "draft_id": None, "citations": citations}
        flow = svc.workflows.get(state.get("intent") or "out_of_scope")
        update.update(assess(state, ground, svc.policy, about_one_order=bool(flow and flow.needs_order)))
        # The assistant's auto threshold, and `awaiting_review` written before review_gate waits.
        update.update(review_gate.pending({**state, **update}, svc.policy, context_of(runtime)))
        task = state.get("task") or {}
        if ground.get("question"):
            update["task"] = {"asked": ground["question"], "step": "collecting"}
        elif task.get("step") in ("collecting", None) and not ground.get("fixed"):
            update["task"] = {"asked": [], "step": "answered"}
        if svc.llm is None or state.get("status") == "rejected" or _is_fixed(state) or ground.get("question"):
            return update
        facts = grounded_context(state, svc.policy.session)
        messages = [SystemMessage(SYSTEM_PROMPT), HumanMessage(facts)]
        # A technical, multi-part or several-order ticket is hard: the strong tier first (error-policies.yaml routes).
        complexity, _ = answer_complexity(state, svc.llm.complexity)
        # Only an answer that goes out unreviewed streams its tokens to the client (`messages` mode); a draft a human
        # reviews first, or that is escalated, is generated unseen.
        visible = review_gate.gate({**state, **update}) == "send"
        reply = svc.llm.generate(messages, task="answer", complexity=complexity, visible=visible)
        if reply is None:
            update["flags"] = ["llm_fallback_offline"]
            return update
        text = reply.text.strip()
        unsupported = unsupported_claims(text, facts + "\n" + offline)
        if unsupported:
            # A model answer may only state what the facts say; otherwise the offline answer goes out.
            update.update(flags=["unsupported_claim"], usage=reply.usage)
            return update
        if citations and not any(f"[{c}]" in text for c in citations):
            text += "\n\nSources: " + ", ".join(f"[{c}]" for c in citations)
        update.update(draft=text, usage=reply.usage)
        if visible and text == reply.text:
            # The client holds this text, streamed, under the reply's id: the answer's message takes it if it goes
            # out unchanged (guard_output); anything rewritten goes out as a new message.
            update["draft_id"] = reply.id
        return update

    return generate_response


def assess(
    state: SupportState, ground: dict[str, Any], policy: Any, *, about_one_order: bool = False
) -> dict[str, Any]:
    """Answer confidence: the intent's confidence combined with the answer's grounding; the tier follows from it.

    `about_one_order`: the workflow's answer is about one order (`order: required`), so that order's facts answer it;
    facts from a lookup made for the question itself (an invoice, refunds, the account) count the same way.
    """
    from classifier.policy import decide

    intent_conf = float(state.get("intent_confidence", state.get("confidence", 0.0)) or 0.0)
    g = policy.grounding
    article = any(
        a["relevance"] >= (g.intent_article_min_relevance if a["for_intent"] else g.article_min_relevance)
        for a in ground.get("articles", [])
    )
    grounded = bool(
        ground.get("fixed")
        or ground.get("question")
        or ground.get("facts")
        or ground.get("precondition")
        or ground.get("result")
        or article
    )
    facts = bool(ground.get("facts") or ground.get("precondition") or ground.get("result"))
    decision = state.get("decision", "escalate")
    if not grounded:
        # Nothing stands behind the answer: a human reads it first (review), whatever the intent's confidence.
        confidence = intent_conf * g.ungrounded_factor
        decision = "review" if decision == "auto" else decision
    elif facts and decision == "review" and (about_one_order or ground.get("specific")):
        # The question is about the customer's own order and identity-checked facts answer it: they take away
        # part of the doubt about the intent.
        confidence = intent_conf + (1.0 - intent_conf) * g.fact_boost
        decision = decide(confidence, policy.confidence)
    elif decision == "review" and any(
        a["for_intent"] and a["relevance"] >= g.strong_article_relevance for a in ground.get("articles", [])
    ):
        # A passage written for this intent that closely matches the ticket answers it whichever way the doubt
        # about the intent goes.
        confidence = intent_conf + (1.0 - intent_conf) * g.article_boost
        decision = decide(confidence, policy.confidence)
    else:
        confidence = intent_conf
    confidence = round(confidence, 4)
    return {"confidence": confidence, "decision": decision, "grounding": {**ground, "grounded": grounded}}


def _is_fixed(state: SupportState) -> bool:
    """Answers that must be exact (scope refusals, clarifying questions) are not left to a model."""
    action = state.get("action") or {}
    return state.get("intent") == "out_of_scope" or bool(action.get("missing") or action.get("error"))
