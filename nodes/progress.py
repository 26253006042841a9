"""Progress events on LangGraph's `custom` stream mode: which node ran and what it found.

`reporting(name, fn)` wraps a node (sync or async; the signature is kept, so LangGraph still injects `runtime`):
when the node returns it writes `{"node", "event": "done", ...found}` with `get_stream_writer()`, and when it stops
for a human `{"node", "event": "waiting", "action"}`. `found` is a small JSON summary of the node's update (intent,
confidence, decision, status, next node, tool, knowledge ids, a triage's severity and codes, ...), never the whole
state. The steps of a subgraph (analyze_technical's) report too; a client sees their events when it streams
subgraphs (`subgraphs=True`, the API's `stream_subgraphs`), under the subgraph's namespace. Outside a run, or when
nobody streams `custom`, the writer does nothing.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, cast

from langgraph.config import get_stream_writer
from langgraph.errors import GraphInterrupt
from langgraph.types import Command, Send

from graphs.state import written

_SCALARS = ("intent", "confidence", "decision", "status", "hops", "error")
_CLASSIFIED = ("confidence", "decision")  # belong to an intent; left out of an update that clears it


def found(update: Any) -> dict[str, Any]:
    """A JSON-ready summary of what a node's return value says it found or decided."""
    out: dict[str, Any] = {}
    body = written(update)
    if isinstance(update, Command) and update.goto:
        goto = update.goto if isinstance(update.goto, (list, tuple)) else [update.goto]
        out["next"] = [g.node if isinstance(g, Send) else str(g) for g in goto]
    # guard_input resets the ticket (no intent yet, confidence 0, the fail-safe decision "escalate"): a reset is
    # not a finding, so a client watching `custom` does not see every ticket start as an escalation.
    reset = "intent" in body and body["intent"] is None
    for key in _SCALARS:
        if reset and key in _CLASSIFIED:
            continue
        value = body.get(key)
        if isinstance(value, (str, int, float, bool)):
            out[key] = value
    flags = [f for f in body.get("flags") or [] if isinstance(f, str)]
    if flags:
        out["flags"] = flags
    knowledge = [k.get("id") for k in body.get("knowledge") or [] if isinstance(k, Mapping)]
    knowledge = [k for k in knowledge if isinstance(k, str)]
    if knowledge:
        out["knowledge"] = knowledge[:5]
    if isinstance(body.get("lookups"), Mapping) and body["lookups"]:
        out["lookups"] = sorted(body["lookups"])
    action = body.get("action")
    if isinstance(action, Mapping) and action.get("tool"):
        out["tool"] = action["tool"]
        if action.get("missing"):
            out["missing"] = list(action["missing"])
    for key in ("approval", "review"):
        value = body.get(key)
        if isinstance(value, Mapping) and value.get("type"):
            out[key] = value["type"]
    triage = body.get("triage")  # analyze_technical's triage_log step
    if isinstance(triage, Mapping):
        out["severity"] = str(triage.get("severity", ""))
        for key in ("error_codes", "exceptions", "http_statuses"):
            values = [v for v in triage.get(key) or [] if isinstance(v, (str, int))]
            if values:
                out[key] = values[:5]
    result = body.get("action_result")
    if isinstance(result, Mapping):
        out["action_ok"] = bool(result.get("ok"))
    refused = body.get("hitl")
    if isinstance(refused, Mapping) and refused.get("error"):
        out["refused"] = refused["error"]
    return out


def emit(node: str, event: str, **data: Any) -> None:
    """Write one progress event on the `custom` stream (a no-op outside a run)."""
    try:
        writer = get_stream_writer()
    except RuntimeError:  # not inside a run
        return
    writer({"node": node, "event": event, **data})


def _waiting(node: str, exc: GraphInterrupt) -> None:
    actions = []
    for intr in exc.args[0] if exc.args else ():
        value = getattr(intr, "value", None)
        if isinstance(value, Mapping):
            actions.append(str((value.get("action_request") or {}).get("action", "")))
    emit(node, "waiting", actions=actions)


def reporting[F: Callable[..., Any]](name: str, fn: F) -> F:
    """`fn` with a progress event after each call (see the module docstring)."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def awrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                out = await fn(*args, **kwargs)
            except GraphInterrupt as exc:
                _waiting(name, exc)
                raise
            emit(name, "done", **found(out))
            return out

        return cast(F, awrapper)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            out = fn(*args, **kwargs)
        except GraphInterrupt as exc:
            _waiting(name, exc)
            raise
        emit(name, "done", **found(out))
        return out

    return cast(F, wrapper)
