"""What each node decided, in words: turns a node call (its input state and its update) into the fields of a
`DecisionRecord` (action, tool, intent, confidence, reasoning, outcome, details).

Pure functions of the state and the update, so the nodes stay free of logging code. A node may add to its
record with `note(key=value)` while it runs (remember notes the lesson it proposed); notes land in `details`.
A node without an extractor here still gets a record (action "run").
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

Fields = dict[str, Any]

_notes: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("switchboard_notes", default=None)


def note(**values: Any) -> None:
    """Add `values` to the decision record of the node running now (no-op outside an instrumented node)."""
    notes = _notes.get()
    if notes is not None:
        notes.update(values)


@contextmanager
def collecting_notes() -> Iterator[dict[str, Any]]:
    notes: dict[str, Any] = {}
    token = _notes.set(notes)
    try:
        yield notes
    finally:
        _notes.reset(token)


def split(out: Any) -> tuple[dict[str, Any], list[str]]:
    """(what it writes, destinations) of a node's return value: a dict, a Command, or anything else (Overwrite
    values unwrapped: `graphs.state.written`)."""
    from graphs.state import written

    goto: list[str] = []
    if hasattr(out, "goto") and hasattr(out, "update"):
        raw = out.goto if isinstance(out.goto, (list, tuple)) else [out.goto]
        for g in raw:
            if isinstance(g, str):
                goto.append(g)
            elif hasattr(g, "node"):
                goto.append(str(g.node))
    return written(out), goto


def _clean(values: list[Any]) -> list[str]:
    return [str(v) for v in values if v]


def _ok_tools(lookups: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in (lookups or {}).items():
        results = value if isinstance(value, list) else [value]
        out[name] = all(isinstance(r, Mapping) and r.get("ok") for r in results)
    return out


def guard_input(state: Mapping[str, Any], update: dict[str, Any], goto: list[str]) -> Fields:
    flags = _clean(update.get("flags") or [])
    if update.get("status") == "rejected":
        return {"action": "reject_input", "outcome": "rejected", "reasoning": update.get("error") or ", ".join(flags),
                "details": {"flags": flags}}
    why = "input accepted" + (f" ({', '.join(flags)})" if flags else "")
    return {"action": "accept_input", "outcome": "accepted", "reasoning": why, "details": {"flags": flags}}


def compress_context(state: Mapping[str, Any], update: dict[str, Any], goto: list[str]) -> Fields:
    dropped = sum(1 for m in update.get("messages") or [] if type(m).__name__ == "RemoveMessage")
    return {"action": "summarise" if dropped else "keep_context", "outcome": f"{dropped} message(s) summarised",
            "reasoning": "conversation over the window" if dropped else "conversation within the window"}


def classify_intent(state: Mapping[str, Any], update: dict[str, Any], goto: list[str]) -> Fields:
    candidates = update.get("candidates") or []
    top = ", ".join(f"{c['intent']} {c['p']:.2f}" for c in candidates[:3])
    flags = _clean(update.get("flags") or [])
    return {
        "action": "classify",
        "intent": update.get("intent"),
        "confidence": update.get("intent_confidence", update.get("confidence")),
        "outcome": str(update.get("decision")),
        "reasoning": f"top candidates: {top}" + (f"; {', '.join(flags)}" if flags else ""),
        "details": {"candidates": candidates[:3], "flags": flags},
    }


def supervisor(state: Mapping[str, Any], update: dict[str, Any], goto: list[str]) -> Fields:
    pending = update.get("pending_specialists") or []
    reason = update.get("error")
    why = reason or (f"workflow {state.get('intent')}: next {', '.join(goto)}" + (
        f", then {', '.join(pending)}" if pending else ""))
    return {"action": "route", "outcome": " + ".join(goto) or "none", "reasoning": why,
            "details": {"hop": update.get("hops"), "pending": list(pending), "goto": goto}}


def retrieve_knowledge(state: Mapping[str, Any], update: dict[str, Any], goto: list[str]) -> Fields:
    items = [k for k in update.get("knowledge") or [] if isinstance(k, Mapping)]
    articles = [k for k in items if k.get("kind") != "case"]
    tools = _ok_tools(update.get("lookups") or {})
    best = max((float(k.get("relevance", 0)) for k in articles), default=0.0)
    why = f"{len(articles)} article(s) (best relevance {best:.2f}), {len(items) - len(articles)} case(s)"
    if tools:
        why += "; lookups " + ", ".join(f"{t} {'ok' if ok else 'failed'}" for t, ok in tools.items())
    return {"action": "retrieve", "tool": ",".join(tools) or None, "outcome": "found" if items else "nothing_found",
            "reasoning": why, "details": {"ids": [k.get("id") for k in items][:8], "tools": tools, "best": best}}


def analyze_technical(state: Mapping[str, Any], update: dict[str, Any], goto: list[str]) -> Fields:
    analysis = update.get("analysis") or {}
    issues = [i.get("id") for i in analysis.get("known_issues") or []]
    return {"action": "triage", "outcome": "known_issue" if issues else "no_match",
            "reasoning": f"matched {', '.join(issues)}" if issues else "no known issue matched",
            "details": {"known_issues": issues, "codes": list(analysis.get("error_codes") or [])}}


def plan_action(state: Mapping[str, Any], update: dict[str, Any], goto: list[str]) -> Fields:
    plan = update.get("action") or {}
    tool = plan.get("tool")
    if not plan:
        return {"action": "plan", "outcome": "no_action", "reasoning": "nothing to do for this request"}
    if plan.get("missing"):
        outcome, why = "needs_slots", f"missing {', '.join(plan['missing'])}"
    elif plan.get("error"):
        outcome, why = "refused", str(plan["error"])
    elif plan.get("offer"):
        outcome, why = "offered", "the customer asked whether, not to do it"
    else:
        outcome = "needs_approval" if plan.get("approval") == "required" else "planned"
        why = str(plan.get("summary") or plan.get("description") or tool)
    args = {k: v for k, v in (plan.get("args") or {}).items() if v is not None}
    return {"action": "plan", "tool": tool, "outcome": outcome, "reasoning": why[:500], "details": {"args": args}}


def request_approval(state: Mapping[str, Any], update: dict[str, Any], goto: list[str]) -> Fields:
    approval = update.get("approval") or {}
    action = state.get("action") or {}
    kind = approval.get("type")
    outcome = {"accept": "approved", "edit": "approved_with_edit", "response": "refused", "ignore": "refused"}.get(
        kind or "", str(kind))
    by = approval.get("approver") or approval.get("by")
    return {"action": "approve", "tool": action.get("tool"), "outcome": outcome,
            "reasoning": f"{kind} by {by}" + (f": {approval.get('reason')}" if approval.get("reason") else ""),
            "details": {"approval": kind, "by": approval.get("by"), "approver": approval.get("approver")}}


def execute_action(state: Mapping[str, Any], update: dict[str, Any], goto: list[str]) -> Fields:
    result = update.get("action_result") or {}
    action = state.get("action") or {}
    failure = ((update.get("failures") or {}).get("execute_action") or {}).get("error")
    ok = bool(result.get("ok"))
    why = "executed" if ok else str(result.get("error") or failure or "failed")
    return {"action": "execute", "tool": action.get("tool"), "outcome": "ok" if ok else "failed",
            "reasoning": why[:500], "details": {"replayed": bool(result.get("replayed"))}}


def generate_response(state: Mapping[str, Any], update: dict[str, Any], goto: list[str]) -> Fields:
    flags = _clean(update.get("flags") or [])
    grounding = update.get("grounding") or {}
    return {"action": "compose", "confidence": update.get("confidence"),
            "outcome": "unsupported_claim" if "unsupported_claim" in flags else "drafted",
            "reasoning": f"cited {', '.join(update.get('citations') or []) or 'nothing'}"
            + (f"; {', '.join(flags)}" if flags else ""),
            "details": {"grounded": bool(grounding.get("grounded", grounding)), "flags": flags}}


def review_gate(state: Mapping[str, Any], update: dict[str, Any], goto: list[str]) -> Fields:
    review = update.get("review") or {}
    decision = state.get("decision")
    if review:
        outcome, why = f"human_{review.get('type')}", f"reviewer answered {review.get('type')}"
    elif goto == ["escalate"]:
        outcome, why = "escalate", f"confidence {state.get('confidence', 0):.2f} below review"
    else:
        outcome, why = "send", f"decision {decision}"
    return {"action": "review", "confidence": state.get("confidence"), "outcome": outcome, "reasoning": why}


def escalate(state: Mapping[str, Any], update: dict[str, Any], goto: list[str]) -> Fields:
    review = update.get("review") or {}
    return {"action": "handoff", "outcome": "resolved_by_human" if review.get("type") == "resolved_by_human"
            else "follow_up_later", "reasoning": str(state.get("error") or "handed to a human")[:500]}


def guard_output(state: Mapping[str, Any], update: dict[str, Any], goto: list[str]) -> Fields:
    flags = _clean(update.get("flags") or [])
    return {"action": "check_output", "outcome": "redacted" if flags else "clean",
            "reasoning": ", ".join(flags) or "nothing to redact", "details": {"flags": flags}}


def remember(state: Mapping[str, Any], update: dict[str, Any], goto: list[str]) -> Fields:
    approval = state.get("approval") or {}
    status = update.get("status") or state.get("status") or "completed"
    return {
        "action": "close_ticket",
        "tool": (state.get("action") or {}).get("tool"),
        "confidence": state.get("confidence"),
        "outcome": str(status),
        "reasoning": f"{state.get('decision')} · route {' > '.join(state.get('route') or [])}",
        "details": {
            "route": [*(state.get("route") or []), "remember"],
            "flags": list(state.get("flags") or []),
            "decision": state.get("decision"),
            "approval": approval.get("type"),
            "approver": approval.get("approver"),
            "usage": dict(state.get("usage") or {}),
        },
    }


EXTRACTORS: dict[str, Callable[[Mapping[str, Any], dict[str, Any], list[str]], Fields]] = {
    f.__name__: f
    for f in (
        guard_input, compress_context, classify_intent, supervisor, retrieve_knowledge, analyze_technical,
        plan_action, request_approval, execute_action, generate_response, review_gate, escalate, guard_output,
        remember,
    )
}

INTERRUPT_OUTCOME = {"request_approval": "awaiting_approval", "review_gate": "awaiting_review", "escalate": "escalated"}


def fields_for(node: str, state: Mapping[str, Any], out: Any) -> Fields:
    """The record fields for a finished node call (intent defaults to the state's)."""
    update, goto = split(out)
    fn = EXTRACTORS.get(node)
    fields: Fields = fn(state, update, goto) if fn else {"action": "run", "outcome": "ok"}
    fields.setdefault("intent", update.get("intent", state.get("intent")) if isinstance(state, Mapping) else None)
    return fields


def interrupted_fields(node: str, state: Mapping[str, Any], payload: Any) -> Fields:
    """The record for a node that paused for a human (its interrupt's request)."""
    request = payload.get("action_request") if isinstance(payload, Mapping) else None
    tool = (request or {}).get("action") if isinstance(request, Mapping) else None
    why = payload.get("description", "") if isinstance(payload, Mapping) else ""
    return {"action": "ask_human", "tool": tool, "intent": state.get("intent"), "confidence": state.get("confidence"),
            "outcome": INTERRUPT_OUTCOME.get(node, "interrupted"), "reasoning": str(why).split("\n")[0][:500]}
