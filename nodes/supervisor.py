"""supervisor: deterministic routing from config/workflows.yaml, within the ticket's limits.

For the ticket's intent the workflow names the specialists to run, in order. The supervisor sends
the ticket to the next one (fanning out with Send when retrieval and technical analysis are both
due), and hands over to the response generator when the workflow is done. A ticket that carries an error
signal (an error code, exception, HTTP error status or pasted log: tools.log_triage) gets the technical analyst
beside the retriever even when its workflow does not name it. Low confidence goes straight to a human. It
never guesses: an unknown intent or specialist is an error, not a default route.

Every hop checks the ticket's limits (config/policy.yaml `limits`) and takes the "I can't complete this"
exit — an escalation to a human with the reason — when one is spent:

- `max_hops`: supervisor hops per ticket (every cycle of the graph passes through the supervisor);
- `ticket_budget_s`: wall-clock seconds since the ticket's first hop (restarted after an executed approval,
  because waiting for a human is not the agent's time); the clock is the module-level `clock`, which tests replace;
- `max_specialist_failures`: consecutive failures of one specialist. `watch` wraps each specialist and records
  in `failures` whether it raised (after its RetryPolicy's last attempt) or got a tool result that is not ok
  without a business refusal; the supervisor runs a failed specialist again until the limit. A failed write
  (`execute_action`) is never run again without a human: it escalates at once.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal

from langgraph.errors import GraphBubbleUp
from langgraph.runtime import Runtime
from langgraph.types import Command, Overwrite, RetryPolicy, Send

from graphs.context import Context
from graphs.services import ServicesProvider
from graphs.state import SupportState, written
from nodes.common import Node, visited
from tools.log_triage import triage

NAME: Final = "supervisor"
log = logging.getLogger("switchboard.supervisor")

Destination = Literal["retrieve_knowledge", "analyze_technical", "plan_action", "escalate", "generate_response"]
SPECIALISTS: tuple[Destination, ...] = ("retrieve_knowledge", "analyze_technical", "plan_action", "escalate")
PARALLEL = ("retrieve_knowledge", "analyze_technical")
RERUNNABLE = ("retrieve_knowledge", "analyze_technical", "plan_action")
"""Specialists the supervisor may run again after a failure (reads and dry runs; never a write)."""

clock: Callable[[], float] = time.time
"""Wall clock for the ticket budget (epoch seconds, so a resumed run in another process measures the same)."""


def make(services: ServicesProvider) -> Node:
    def supervisor(state: SupportState, runtime: Runtime[Context]) -> Command[Destination]:
        svc = services()
        limits = svc.policy.limits
        now = clock()
        hops = state.get("hops", 0) + 1
        update: dict = {**visited(NAME), "hops": hops}
        route = state.get("route") or []
        if hops == 1 or (route and route[-1] == "execute_action"):
            update["ticket_started_at"] = now
        started = update.get("ticket_started_at", state.get("ticket_started_at", now))
        failures = {} if hops == 1 else dict(state.get("failures") or {})
        if hops == 1:
            update["failures"] = Overwrite({})

        reason = exhausted(hops, now - started, failures, limits)
        if reason:
            update.update(error=reason, decision="escalate", pending_specialists=[], status="escalated")
            return Command(goto="escalate", update=update)

        intent = state.get("intent") or "out_of_scope"
        if intent not in svc.workflows:
            raise ValueError(f"no workflow for intent {intent!r}; add it to config/workflows.yaml")
        if hops == 1:
            flow = svc.workflows[intent]
            if {"task_dropped", "task_ack"} & set(state.get("flags") or []):
                # "Never mind" / "ok, thanks": nothing to look up or do; the response says what was dropped or
                # that the approval still stands.
                pending = []
            elif state.get("decision") == "escalate":
                # Too unsure to act: gather knowledge for the human, then hand over.
                pending = ["retrieve_knowledge", "escalate"]
            else:
                pending = list(flow.specialists)
                if "retrieve_knowledge" in pending and "analyze_technical" not in pending and (
                    triage(state.get("ticket", "")).has_signals
                ):
                    # An error code, exception, HTTP error or pasted log is the technical analyst's to read, whatever
                    # the intent ("CHK-500 at checkout" is place_order): it runs beside the retriever.
                    pending.insert(pending.index("retrieve_knowledge") + 1, "analyze_technical")
                if flow.escalate and "escalate" not in pending:
                    pending.append("escalate")
        else:
            pending = list(state.get("pending_specialists", []))
            # A specialist that just failed (below the limit) runs again before anything else.
            again = [n for n in RERUNNABLE if failures.get(n, {}).get("count", 0) > 0 and n not in pending]
            pending = again + pending

        if not pending:
            update["pending_specialists"] = []
            return Command(goto="generate_response", update=update)
        if pending[:2] == list(PARALLEL) or pending[:2] == list(reversed(PARALLEL)):
            update["pending_specialists"] = pending[2:]
            return Command(goto=[Send(p, {**state, **written(update)}) for p in pending[:2]], update=update)
        nxt = next((s for s in SPECIALISTS if s == pending[0]), None)
        if nxt is None:
            raise ValueError(f"unknown specialist {pending[0]!r} in workflow for {intent!r}")
        update["pending_specialists"] = pending[1:]
        if nxt == "escalate":
            update["status"] = "escalated"  # truthful while escalate waits for a human
        return Command(goto=nxt, update=update)

    return supervisor


def exhausted(hops: int, elapsed_s: float, failures: dict[str, Any], limits: Any) -> str | None:
    """The reason the ticket cannot go on (a spent limit), or None."""
    if hops > limits.max_hops:
        return "hop budget exhausted"
    if elapsed_s > limits.ticket_budget_s:
        return f"ticket time budget exhausted ({elapsed_s:.0f} s > {limits.ticket_budget_s:g} s)"
    for node, failure in failures.items():
        count = int(failure.get("count", 0))
        if count >= limits.max_specialist_failures or (count and node not in RERUNNABLE):
            times = "once" if count == 1 else f"{count} times in a row"
            return f"{node} failed {times}: {failure.get('error')}"
    return None


# ------------------------------------------------------------------ failure accounting around specialists


def tool_failure(name: str, update: dict[str, Any]) -> str | None:
    """The error of a tool result in a specialist's update that is not ok without a business refusal, or None."""
    results: list[Any] = []
    if name == "execute_action":
        results.append(update.get("action_result"))
    elif name == "plan_action":
        action = update.get("action") or {}
        if action.get("error") and not action.get("refused"):
            return str(action["error"])
    for value in (update.get("lookups") or {}).values():
        results.extend(value if isinstance(value, list) else [value])
    for result in results:
        if isinstance(result, dict) and result.get("ok") is False and not result.get("refusal"):
            return str(result.get("error") or "tool result not ok")
    return None


def _retryable(policy: RetryPolicy | None, exc: Exception, attempt: int) -> bool:
    """True when LangGraph will run the node again for `exc` (its RetryPolicy matches and attempts remain)."""
    if policy is None or attempt >= policy.max_attempts:
        return False
    retry_on = policy.retry_on
    if isinstance(retry_on, type):
        return isinstance(exc, retry_on)
    if isinstance(retry_on, Sequence):  # as langgraph.pregel._retry reads it
        return isinstance(exc, tuple(retry_on))
    return bool(retry_on(exc))


def watch(
    name: str, fn: Callable[..., Any], retry: RetryPolicy | None = None, *, command: bool = False
) -> Callable[..., Any]:
    """Wrap specialist `name` so each run records its outcome in `failures` (see the module docstring).

    An exception LangGraph will retry is re-raised; on the last attempt (or one not retried) it becomes a
    recorded failure and the ticket goes back to the supervisor (`command=True` for a node without a static
    edge there). Interrupts and other control flow pass through untouched.
    """

    @functools.wraps(fn)
    def watched(state: SupportState, *args: Any, **kwargs: Any) -> Any:
        runtime = args[0] if args else kwargs.get("runtime")
        info = getattr(runtime, "execution_info", None)
        attempt = int(getattr(info, "node_attempt", 1) or 1)
        prior = int(((state.get("failures") or {}).get(name) or {}).get("count", 0))
        try:
            out = fn(state, *args, **kwargs)
        except GraphBubbleUp:
            raise
        except Exception as exc:  # noqa: BLE001 - the failure is recorded and routed, not swallowed
            if _retryable(retry, exc, attempt):
                raise
            log.warning("specialist %s failed: %s", name, exc, exc_info=True)
            error = f"{type(exc).__name__}: {exc}"[:300]
            record = {**visited(name), "failures": {name: {"count": prior + 1, "error": error}}}
            return Command(goto="supervisor", update=record) if command else record
        body = out.update if isinstance(out, Command) else out
        if not isinstance(body, dict):
            return out
        failed = tool_failure(name, body)
        outcome = {"count": prior + 1, "error": failed[:300]} if failed else {"count": 0}
        body = {**body, "failures": {name: outcome}}
        if isinstance(out, Command):
            return Command(graph=out.graph, update=body, resume=out.resume, goto=out.goto)
        return body

    return watched
