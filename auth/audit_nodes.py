"""Audit the human-in-the-loop nodes: every approval, review and escalation decision goes to the audit log.

`audited(name, fn, services)` wraps `request_approval`, `review_gate` and `escalate` (other nodes are returned
unchanged) and reads what the node decided from its own update, so the nodes themselves stay free of audit
code. Recorded:

- `approval`: the approver's decision on a planned write (accept, edit, response, ignore, invalid), or the
  workflow's `approval: none` (actor `policy`);
- `review`: a reviewer's decision on a draft answer;
- `escalation`: a ticket handed to a human (`requested`, when the escalate interrupt is raised) and the
  human's resolution (`resolved` with a reply, `follow_up` without one).

Who: the reviewer (`Context.approver_id`, from their own credentials) and their role, for the customer
(`subject`) and tenant of the thread; with the thread id and the ticket's trace id. A node re-runs from its
start on resume and may be replayed after a crash: event ids are derived from (thread, trace, node, phase),
so a replay records nothing twice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from langgraph.errors import GraphInterrupt

from auth.audit import AuditEvent, EventKind, event_id, record
from graphs.state import written

AUDITED = ("request_approval", "review_gate", "escalate")


def audited(name: str, fn: Callable[..., Any], services: Callable[[], Any]) -> Callable[..., Any]:
    """`fn` with its decisions recorded in `services().audit` (see the module docstring)."""
    if name not in AUDITED:
        return fn

    @functools.wraps(fn)
    def wrapper(state: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        runtime = args[0] if args else kwargs.get("runtime")
        try:
            out = fn(state, *args, **kwargs)
        except GraphInterrupt:
            if name == "escalate":
                _record(services, name, state, runtime, "escalation", "handoff_to_human", "requested",
                        phase="requested", detail={"reason": _reason(state)})  # fmt: skip
            raise
        update = written(out)  # a Command's update, Overwrite values unwrapped
        if update:
            _decided(services, name, state, runtime, update)
        return out

    return wrapper


def _decided(services: Callable[[], Any], name: str, state: Mapping[str, Any], runtime: Any, update: Mapping) -> None:
    if name == "request_approval" and isinstance(update.get("approval"), Mapping):
        approval = update["approval"]
        action = update.get("action") or state.get("action") or {}
        detail = {k: approval[k] for k in ("reason", "args") if approval.get(k)}
        if approval.get("by") == "policy":
            _record(services, name, state, runtime, "approval", str(action.get("tool")), "accept", phase="decision",
                    actor="policy", role="system", detail={"by": "policy (workflow approval: none)"})  # fmt: skip
        else:
            _record(services, name, state, runtime, "approval", str(action.get("tool")), str(approval.get("type")),
                    phase="decision", actor=approval.get("approver"), detail=detail)  # fmt: skip
    elif name == "review_gate" and isinstance(update.get("review"), Mapping):
        review = update["review"]
        _record(services, name, state, runtime, "review", "review_response", str(review.get("type")),
                phase="decision", detail={k: review[k] for k in ("note",) if review.get(k)})  # fmt: skip
    elif name == "escalate" and isinstance(update.get("review"), Mapping):
        resolved = update["review"].get("type") == "resolved_by_human"
        _record(services, name, state, runtime, "escalation", "handoff_to_human",
                "resolved" if resolved else "follow_up", phase="decision")  # fmt: skip


def _reason(state: Mapping[str, Any]) -> str:
    from nodes.escalate import escalation_reason

    try:
        return escalation_reason(state)
    except Exception:  # noqa: BLE001 - the reason is a courtesy; the event is what matters
        return ""


def _record(
    services: Callable[[], Any],
    node: str,
    state: Mapping[str, Any],
    runtime: Any,
    kind: EventKind,
    action: str,
    outcome: str,
    *,
    phase: str,
    actor: str | None = None,
    role: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    from graphs.context import context_of
    from nodes.common import thread_id

    audit = getattr(services(), "audit", None)
    if audit is None:
        return
    ctx = context_of(runtime)
    thread, trace = thread_id(), str(state.get("trace_id") or "")
    extra: dict[str, Any] = {"id": event_id(thread, trace, node, phase)} if thread and trace else {}
    record(
        audit,
        AuditEvent(
            **extra,
            kind=kind,
            actor=actor or ctx.approver_id or ctx.user_id,
            role=role or ctx.role,
            tenant=ctx.tenant_id,
            subject=ctx.user_id,
            action=action,
            outcome=outcome,
            thread_id=thread,
            trace_id=trace,
            node=node,
            detail=detail or {},
        ),
    )
