"""Chaos, part 3: tools that raise or return malformed data (`bench.chaos` runs it).

Tickets run one at a time through `graphs.tickets.ask` / `resume` (offline tier, approvals given as an
operator would) while `TOOL_FAULTS` breaks one tool per ticket: `get_order` raises, returns a non-mapping or a mapping
without its facts; `cancel_order` and `issue_refund` make their change and then answer garbage or raise. The boundary
(`tools.boundary`) must catch each one, record it (metric, audit row for a write, the error in the escalation) and let
the ticket degrade: ran again, then escalated to a human. Never a crash, never an answer built from garbage, never a
write left behind. The breaker of `get_order` opens on the way and, once the tool works again and its cool-down has
passed (an injected clock, nothing sleeps), closes after one trial.

Measured: `ended_ok_ratio` (answer or escalation, nothing left to run, no exception), `tool_failures` by kind
(`switchboard_tool_failures_total`), `writes_left_behind` (effects of the failed writes found in the shop), and the
tool breaker's `opened` / `recovered` transitions.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from config.settings import ErrorPolicies, Settings


def _raise(ctx: Any, args: Any) -> Any:
    raise RuntimeError("tool crashed")


def _wrap(real: Callable[..., Any], answer: Any) -> Callable[..., Any]:
    """The real tool (its change made), then `answer` instead of its result (raised when an exception)."""

    def fn(ctx: Any, args: Any) -> Any:
        real(ctx, args)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return fn


# (user, ticket text, tool broken during the ticket, how; approval edit for a write), in order. The writes fail
# first (their tickets also read get_order); then get_order fails until its circuit opens (5 failures: each ticket
# runs retrieve_knowledge twice), a healthy ticket meets the open circuit, and after the cool-down one trial closes it.
TOOL_FAULTS: list[tuple[str, str, str | None, str, dict[str, Any] | None]] = [
    ("demo", "Please cancel order 1008, I ordered the wrong thing.", "cancel_order", "garbage_after_write", None),
    ("demo", "I want my money back for order 1004.", "issue_refund", "raises_after_write", {"amount": 1.0}),
    ("demo", "Where is my order 1006?", "get_order", "raises", None),
    ("demo", "Where is my order 1005?", "get_order", "not_a_mapping", None),
    ("demo", "Where is my order 1006?", "get_order", "missing_facts", None),
    ("demo", "Where is my order 1006?", None, "healthy_while_open", None),
    ("demo", "Where is my order 1006?", None, "healthy_after_cooldown", None),
    ("demo", "Please cancel order 1009, I ordered the wrong thing.", None, "healthy", None),
]
FAULT_POLICIES: dict[str, Any] = {"defaults": {"tool": {"attempts": 2, "initial_s": 0, "jitter_s": 0,
                                                         "breaker": {"failure_threshold": 5, "cooldown_s": 30}}}}


@contextmanager
def broken(name: str | None, how: str) -> Iterator[None]:
    """Tool `name` misbehaves `how` for the life of the block (the registry entry is restored after)."""
    from tools.shop import TOOLS

    if name is None:
        yield
        return
    spec = TOOLS[name]
    fn = {
        "raises": _raise,
        "not_a_mapping": lambda ctx, args: ["order", 1006, "shipped"],
        "missing_facts": lambda ctx, args: {"order": "shipped, probably"},
        "garbage_after_write": _wrap(spec.fn, "cancelled!"),
        "raises_after_write": _wrap(spec.fn, ValueError("refund gateway said something odd")),
    }[how]
    TOOLS[name] = dataclasses.replace(spec, fn=fn)
    try:
        yield
    finally:
        TOOLS[name] = spec


def run_tool_faults(services: Any, settings: Settings, work: Path) -> dict[str, Any]:
    """Serve `TOOL_FAULTS` offline; see the module docstring."""
    import tools.boundary as boundary
    from bench.chaos_models import ObservedStore
    from graphs import tickets as service
    from graphs.supervisor import build_supervisor
    from memory.checkpointer import open_checkpointer
    from observability.metrics import REGISTRY

    settings = settings.model_copy(update={"checkpointer_url": str(work / "checkpoints-tools.sqlite"),
                                           "openai_api_key": None, "llm_base_url": None})
    svc = dataclasses.replace(services, llm=None, settings=settings)
    now = [time.time()]
    store = ObservedStore()
    previous = boundary._current
    boundary._current = boundary.ToolBoundary(
        ErrorPolicies.model_validate(FAULT_POLICIES), store, clock=lambda: now[0], sleep=lambda s: None
    )

    def failures() -> Counter[str]:
        out: Counter[str] = Counter()
        for metric in REGISTRY.collect():
            if metric.name == "switchboard_tool_failures":
                for sample in metric.samples:
                    if sample.name.endswith("_total"):
                        out[sample.labels["kind"]] += int(sample.value)
        return out

    before = failures()
    statuses: Counter[str] = Counter()
    crashes: list[str] = []
    reasons: list[str] = []
    started = time.perf_counter()
    try:
        with open_checkpointer(settings.checkpoint_target) as saver:
            board = service.Switchboard(build_supervisor(svc).compile(checkpointer=saver), svc)
            for n, (user, text, tool, how, edit) in enumerate(TOOL_FAULTS):
                if how == "healthy_after_cooldown":
                    now[0] += 30  # the cool-down passes (injected clock)
                with broken(tool, how):
                    try:
                        result = service.ask(settings, text, user=user, thread=None, board=board)
                        if result["status"] == "awaiting_approval":
                            decision = {"approve": edit is None, "reject": False, "respond": None, "reason": None,
                                        "edit": None if edit is None else json.dumps(edit)}
                            args = argparse.Namespace(**decision, user=user, tenant="default", approver="chaos")
                            result = service.resume(settings, result["thread_id"], args, board=board)
                    except Exception as exc:  # noqa: BLE001 - a crash is what this bench counts
                        crashes.append(f"{n}: {type(exc).__name__}: {exc}"[:200])
                        continue
                snap = board.graph.get_state(board.config(result["thread_id"]))
                node, payload = service.pending_of(snap)
                statuses[result["status"]] += 1
                if node == "escalate":
                    reasons.append(str(payload["action_request"]["args"].get("reason", ""))[:160])
                elif snap.next:
                    crashes.append(f"{n}: left unfinished at {list(snap.next)}")
    finally:
        boundary._current = previous
    after = failures()
    left = writes_left_behind(svc.shop.path)
    ok = sum(statuses[s] for s in ("completed", "escalated", "awaiting_review"))
    return {
        "tickets": len(TOOL_FAULTS),
        "faulty_tickets": sum(1 for _, _, tool, _, _ in TOOL_FAULTS if tool),
        "ended_ok_ratio": round(ok / len(TOOL_FAULTS), 3),
        "statuses": dict(statuses),
        "crashes": crashes,
        "tool_failures": {k: after[k] - before[k] for k in ("raised", "malformed", "circuit_open")},
        "writes_left_behind": left,
        "breaker_opened": sum(e == "opened" for _, _, e in store.events),
        "breaker_recovered": sum(e == "trial_ok" for _, _, e in store.events),
        "escalation_reasons": reasons,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def writes_left_behind(shop: Path) -> dict[str, int]:
    """Effects of the failed writes of `TOOL_FAULTS` found in the shop (each should be 0), and the audit rows that
    recorded their failures (`audited_failures`, one per failed write)."""
    conn = sqlite3.connect(shop)
    try:
        return {
            "cancel_1008": conn.execute("SELECT count(*) FROM orders WHERE id = 1008 AND status = 'cancelled'")
            .fetchone()[0],
            "refund_1004": conn.execute("SELECT count(*) FROM refunds WHERE order_id = 1004 AND amount_cents = 100")
            .fetchone()[0],
            "ledger_rows_of_failed_writes": conn.execute(
                "SELECT count(*) FROM action_ledger WHERE tool = 'issue_refund' OR "
                "(tool = 'cancel_order' AND json_extract(args_json, '$.order_id') = 1008)"
            ).fetchone()[0],
            "audited_failures": conn.execute("SELECT count(*) FROM audit_log WHERE outcome LIKE 'failed: %'")
            .fetchone()[0],
        }
    finally:
        conn.close()
