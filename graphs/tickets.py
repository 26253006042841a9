"""The ticket service: run a customer's message through the compiled graph, answer a waiting thread, and report a
thread's latest ticket in one JSON contract. The CLI (app.py), the demo, evals and benchmarks all go through it.

    with open_switchboard(settings) as board:
        result = ask(settings, "Where is my order 1003?", user="demo", thread=None, board=board)

`ask` and `resume` validate their input (bad input raises `UsageError` and writes nothing), hold the thread's lease,
check the thread's owner, and run with durability "sync". Rate limits are the caller's (app.take_token).
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from config.settings import Settings

log = logging.getLogger("switchboard.tickets")

INTERRUPT_STATUS = {"request_approval": "awaiting_approval", "review_gate": "awaiting_review", "escalate": "escalated"}
USAGE_KEYS = ("prompt_tokens", "completion_tokens", "llm_calls", "cost_usd")
# Every step's checkpoint is written before the next step starts: an approval or a write always follows a saved
# checkpoint, so a crash loses at most the step that was running (LangGraph's default, "async", may lose more).
DURABILITY = "sync"


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""


class Switchboard:
    """The compiled graph with its checkpointer and services, opened for one command (or one eval / bench run)."""

    def __init__(self, graph: Any, services: Any) -> None:
        self.graph, self.services = graph, services

    def config(self, thread_id: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": thread_id}}


def open_encoder_in_background(settings: Settings) -> threading.Thread:
    """Start building the process-wide sentence encoder (memory.embeddings.get_embedder) on another thread.

    onnxruntime opens its session (~0.2 s) without holding the GIL, so it is done while this thread imports the
    graph (~1 s): a cold `app.py ask` gets its first answer that much sooner. `build_services` then takes the same
    instance (get_embedder waits for a build under way rather than starting a second). A failure here is left to
    that foreground call, which raises it with its own message."""

    def build() -> None:
        try:
            from memory.embeddings import get_embedder

            get_embedder(settings.embedder_cache)
        except Exception:  # noqa: BLE001 - the foreground get_embedder raises it again, where it is reported
            log.debug("the encoder did not open in the background", exc_info=True)

    thread = threading.Thread(target=build, name="switchboard-encoder", daemon=True)
    thread.start()
    return thread


@contextmanager
def open_switchboard(settings: Settings) -> Iterator[Switchboard]:
    open_encoder_in_background(settings)  # before the imports below, which it overlaps
    from graphs.services import build_services
    from graphs.supervisor import build_supervisor
    from memory.checkpointer import open_checkpointer
    from memory.serde import checkpoint_serde
    from memory.user_store import open_store
    from observability.cache import sqlite_cache

    services = build_services(settings)
    # One ticket per CLI process: the node cache (classification, retrieval) lives in a file under the data dir.
    cache = sqlite_cache(settings.data_dir / "cache.sqlite") if settings.observability().cache.enabled else None
    # Per-user memory (preferences, cross-thread working memory): the LangGraph store, SQLite or Postgres.
    with (
        open_checkpointer(settings.checkpoint_target, serde=checkpoint_serde(settings)) as saver,
        open_store(settings.store_target) as store,
    ):
        graph = build_supervisor(services).compile(checkpointer=saver, cache=cache, store=store)
        yield Switchboard(graph, services)




def thread_exists(settings: Settings, thread_id: str) -> bool:
    """True when the checkpoint store holds the thread (without creating anything)."""
    target = settings.checkpoint_target
    if "://" not in target and not Path(target).exists():
        return False
    from memory.checkpointer import open_checkpointer
    from memory.serde import checkpoint_serde

    with open_checkpointer(target, serde=checkpoint_serde(settings)) as saver:
        return saver.get_tuple({"configurable": {"thread_id": thread_id}}) is not None


def pending_of(snapshot: Any) -> tuple[str | None, Any]:
    """(node, payload) of the interrupt the thread waits on, or (None, None)."""
    for task in snapshot.tasks:
        for intr in task.interrupts:
            return task.name, intr.value
    return None, None


def result_of(board: Switchboard, thread_id: str, started: float) -> dict[str, Any]:
    """The CLI's JSON contract for the thread's latest ticket."""
    snap = board.graph.get_state(board.config(thread_id))
    values = snap.values
    node, payload = pending_of(snap)
    status = INTERRUPT_STATUS[node] if node else values.get("status", "completed")
    usage = {k: values.get("usage", {}).get(k, 0) for k in USAGE_KEYS}
    for k in ("prompt_tokens", "completion_tokens", "llm_calls"):
        usage[k] = int(usage[k])
    usage["cost_usd"] = float(usage["cost_usd"])
    result = {
        "thread_id": thread_id,
        "trace_id": values.get("trace_id"),
        "status": status,
        "intent": values.get("intent"),
        "confidence": values.get("confidence"),
        "decision": values.get("decision"),
        "route": list(values.get("route", [])),
        # The answer to this ticket; None while the ticket itself waits (review, escalation, its own approval).
        "answer": values.get("answer"),
        "pending": payload,
        "flags": list(values.get("flags", [])),
        "usage": usage,
        "cost_usd": usage["cost_usd"],
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
    }
    from observability.metrics import record_ticket

    record_ticket(result)
    return result


def owner_of(snapshot: Any) -> tuple[str | None, str | None]:
    """(owner, tenant) a thread's checkpoints record; (None, None) for a new thread or one from before owners."""
    metadata = getattr(snapshot, "metadata", None) or {}
    return metadata.get("owner"), metadata.get("tenant")


def check_owner(snapshot: Any, thread_id: str, user: str, tenant: str) -> None:
    owner, owner_tenant = owner_of(snapshot)
    if owner is not None and (owner, owner_tenant or "default") != (user, tenant):
        raise UsageError(
            f"thread {thread_id} belongs to customer {owner} (tenant {owner_tenant}), not {user} (tenant {tenant})"
        )


def owned_config(
    board: Switchboard, thread_id: str, user: str, tenant: str, trace_id: str | None = None
) -> dict[str, Any]:
    """The run config with the owner recorded in the thread's checkpoint metadata (as the served API does), and
    the ticket's trace id (a new ticket takes it; LangSmith runs carry it as metadata)."""
    metadata: dict[str, Any] = {"owner": user, "tenant": tenant}
    if trace_id:
        metadata["trace_id"] = trace_id
    return {**board.config(thread_id), "metadata": metadata}


def validate_text(text: str, settings: Settings) -> str:
    from guards.text import well_formed

    text = well_formed(text or "").strip()  # undecodable argv bytes arrive as lone surrogates
    if not text:
        raise UsageError("the ticket text is empty")
    limit = settings.policy().limits.max_input_chars
    if len(text) > limit:
        raise UsageError(f"the ticket text is {len(text)} characters; the limit is {limit}")
    return text


def validate_id(value: str, what: str) -> str:
    from graphs.context import Context

    try:
        Context(user_id=value)
    except Exception as exc:  # noqa: BLE001 - pydantic's message is too long for one line
        raise UsageError(f"invalid {what} {value!r}: use 1-64 letters, digits, '_', '.', '@' or '-'") from exc
    return value


def ask(
    settings: Settings,
    text: str,
    *,
    user: str,
    thread: str | None,
    tenant: str = "default",
    channel: str = "cli",
    board: Switchboard | None = None,
) -> dict[str, Any]:
    """Run one ticket; `board` reuses an open runtime (chat, demo), else one is opened for this call."""
    from graphs.context import Context

    text = validate_text(text, settings)
    validate_id(user, "user")
    validate_id(tenant, "tenant")
    if thread is not None:
        validate_id(thread, "thread id")
    thread_id = thread or str(uuid.uuid4())
    with _opened(settings, board) as board, thread_lease(settings, thread_id):
        started = time.perf_counter()
        if thread is not None:
            snap = board.graph.get_state(board.config(thread_id))
            check_owner(snap, thread_id, user, tenant)
            node, _ = pending_of(snap)
            # A new message while an approval waits is answered, and the approval stays pending (the graph keeps
            # it); a draft under review or an escalation must be answered first.
            if node and node != "request_approval":
                raise UsageError(
                    f"thread {thread_id} is waiting ({INTERRUPT_STATUS[node]}); answer it with "
                    f"'python app.py resume {thread_id} ...'"
                )
        from guards.intake import InvalidInput, admit
        from guards.vault import owner_of as vault_owner
        from guards.vault import vault_for
        from observability.tracing import bound, new_trace_id

        # Redacted, its slots sealed, before the graph (and its first checkpoint, and any trace) sees it.
        try:
            admitted = admit(
                {"messages": [{"role": "user", "content": text}]},
                vault=vault_for(settings),
                owner=vault_owner(tenant, user),
                max_chars=settings.policy().limits.max_input_chars,
            )
        except InvalidInput as exc:  # e.g. a NUL character: refused with the boundary's reason, nothing written
            raise UsageError(f"the ticket text is refused: {exc}") from None
        trace_id = new_trace_id()
        with bound(trace_id):
            board.graph.invoke(
                admitted,
                owned_config(board, thread_id, user, tenant, trace_id),
                context=Context(user_id=user, tenant_id=tenant, channel=channel),
                durability=DURABILITY,
            )
            return result_of(board, thread_id, started)


@contextmanager
def thread_lease(settings: Settings, thread_id: str) -> Iterator[None]:
    """Hold the thread's lease (memory.locks) for one run: a second concurrent run on it exits 2, never forks it."""
    from memory.locks import ThreadBusy, hold

    with ExitStack() as stack:
        try:
            stack.enter_context(hold(settings.checkpoint_target, thread_id, ttl_s=settings.policy().limits.lease_ttl_s))
        except ThreadBusy as exc:
            raise UsageError(str(exc)) from None
        yield


@contextmanager
def _opened(settings: Settings, board: Switchboard | None) -> Iterator[Switchboard]:
    if board is not None:
        yield board
    else:
        with open_switchboard(settings) as opened:
            yield opened


def resume_value(
    node: str, payload: dict[str, Any], args: argparse.Namespace, board: Switchboard | None = None
) -> dict[str, Any]:
    """Turn --approve/--reject/--edit/--respond into an Agent Inbox response for the waiting node, checked the way
    the graph will check it (nodes.hitl; an approval's edit also against the tool's preconditions, given `board`), so
    a reply the graph would refuse exits 2 and writes nothing."""
    from nodes import hitl

    value = _resume_value(node, payload, args)
    try:
        reply = hitl.parse_reply(value, payload)
        if node == "request_approval" and reply.kind == "edit" and board is not None:
            from nodes.request_approval import check_edit

            action = {"tool": payload["action_request"]["action"], "args": payload["action_request"]["args"]}
            from tools.registry import Caller

            caller = Caller("request_approval", args.user, tenant_id=args.tenant, role="agent")
            check_edit(board.services.shop, action, reply.args, caller=caller)
    except hitl.ReplyError as exc:
        raise UsageError(str(exc)) from exc
    return value


def _resume_value(node: str, payload: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    allowed = payload.get("config", {})
    if args.approve:
        if not allowed.get("allow_accept"):
            raise UsageError(f"this {INTERRUPT_STATUS[node]} thread cannot be approved; use --respond TEXT or --reject")
        return {"type": "accept"}
    if args.reject:
        return {"type": "response", "args": args.reason} if args.reason else {"type": "ignore"}
    if args.respond is not None:
        if not args.respond.strip():
            raise UsageError("--respond needs a non-empty text")
        return {"type": "response", "args": args.respond.strip()}
    try:
        edit = json.loads(args.edit)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--edit is not valid JSON: {exc.msg} at position {exc.pos}") from exc
    if not allowed.get("allow_edit"):
        raise UsageError("this thread does not accept edits; use --respond TEXT or --reject")
    if node == "request_approval":
        from nodes.request_approval import validate_edit

        action = {"tool": payload["action_request"]["action"], "args": payload["action_request"]["args"]}
        try:
            validate_edit(action, edit)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        return {"type": "edit", "args": edit}
    if isinstance(edit, str) and edit.strip():
        return {"type": "edit", "args": {"draft": edit.strip()}}
    if isinstance(edit, dict) and isinstance(edit.get("draft"), str) and edit["draft"].strip():
        return {"type": "edit", "args": {"draft": edit["draft"].strip()}}
    raise UsageError('--edit for a review takes {"draft": "new text"} or a JSON string')


def resume(
    settings: Settings, thread_id: str, args: argparse.Namespace, board: Switchboard | None = None
) -> dict[str, Any]:
    from langgraph.types import Command

    validate_id(thread_id, "thread id")
    if board is None and not thread_exists(settings, thread_id):
        raise UsageError(f"unknown thread {thread_id}")
    with _opened(settings, board) as board, thread_lease(settings, thread_id):
        started = time.perf_counter()
        snap = board.graph.get_state(board.config(thread_id))
        if not snap.values:
            raise UsageError(f"unknown thread {thread_id}")
        check_owner(snap, thread_id, args.user, args.tenant)
        node, payload = pending_of(snap)
        decided = any(getattr(args, k, None) for k in ("approve", "reject")) or any(
            getattr(args, k, None) is not None for k in ("edit", "respond")
        )
        if not decided:
            return continue_run(board, snap, thread_id, args, started)
        if not node:
            raise UsageError(f"thread {thread_id} is not waiting for anyone (status {snap.values.get('status')})")
        ctx = operator_context(args, settings)
        from nodes import hitl
        from observability.tracing import bound

        try:
            hitl.require_reviewer(ctx.role)  # the graph enforces it too; checked first so a refusal writes nothing
        except hitl.ReplyError as exc:
            raise UsageError(f"{exc} (SWITCHBOARD_CLI_ROLE sets the CLI's role)") from exc
        value = resume_value(node, payload, args, board)
        trace_id = snap.values.get("trace_id")  # a resumed ticket keeps its trace id
        with bound(trace_id):
            board.graph.invoke(
                Command(resume=value),
                owned_config(board, thread_id, args.user, args.tenant, trace_id),
                context=ctx,
                durability=DURABILITY,
            )
            result = result_of(board, thread_id, started)
        refused = (result["pending"] or {}).get("error") if result["status"] == INTERRUPT_STATUS[node] else None
        if refused:
            raise UsageError(f"the graph refused the answer: {refused}; thread {thread_id} still waits")
        return result


def operator_context(args: argparse.Namespace, settings: Settings) -> Any:
    """The CLI acts as its configured local identity (role `Settings.cli_role`, default admin; name `--as`): it
    resumes as the thread's owner and records who answered. The graph refuses an answer from a customer role."""
    from graphs.context import Context

    approver = getattr(args, "approver", None) or "operator"
    validate_id(approver, "approver")
    return Context(
        user_id=args.user, tenant_id=args.tenant, channel="cli", role=settings.cli_role, approver_id=approver
    )


def continue_run(
    board: Switchboard, snap: Any, thread_id: str, args: argparse.Namespace, started: float
) -> dict[str, Any]:
    """`resume THREAD` with no decision: continue an interrupted or crashed run from its last checkpoint."""
    node, _ = pending_of(snap)
    if node:
        raise UsageError(
            f"thread {thread_id} is waiting ({INTERRUPT_STATUS[node]}); answer it with --approve, --reject, "
            "--edit JSON or --respond TEXT"
        )
    if not snap.next:
        raise UsageError(f"thread {thread_id} has nothing to continue (status {snap.values.get('status')})")
    from observability.tracing import bound

    trace_id = snap.values.get("trace_id")
    config = owned_config(board, thread_id, args.user, args.tenant, trace_id)
    with bound(trace_id):
        board.graph.invoke(None, config, context=operator_context(args, board.services.settings), durability=DURABILITY)
        return result_of(board, thread_id, started)
