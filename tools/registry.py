"""A small registry of typed business tools and the one function that runs them safely.

`execute` (`tools.shop.run_tool` for the shop) is the only door to the shop's data. On every call it:
- knows who calls: a `Caller` built from the runtime (the graph node, the customer, tenant, role, approver,
  thread and trace), never from what a model filled in;
- enforces least privilege: config/permissions.yaml says which node may call (or only dry-run) which tool; a
  violation is audited and raised as `ToolNotPermitted`, whatever was bound to a model;
- validates the arguments with the tool's pydantic model and refuses business-rule violations (a
  `ToolResult` with an error, never an exception, for bad input);
- records idempotent write results in `action_ledger` and every write attempt in the shop's `audit_log`,
  the change, the ledger row and the audit row in one transaction;
- appends one event per call (read, dry run or write, whatever its outcome) to the audit log
  (`auth.audit`, `ShopDB.audit`), the write's event with the same id as its shop journal row.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from auth.audit import AuditEvent, record
from auth.identity import Role
from config.permissions import NodeName, Permissions
from tools.boundary import guarded
from tools.shop_db import ShopDB, iso

logger = logging.getLogger(__name__)

Permission = Literal["read", "write", "needs_approval"]
"""Whether a human must approve a call: `read` (no change), `write` (low impact, no approval), `needs_approval`."""
ToolKind = Literal["read", "write", "destructive"]
"""What a call does: `read` changes nothing; `write` changes data that can be changed back (an address, a
subscription, a new ticket); `destructive` cannot be undone (money leaves, an order is cancelled, an account is
deleted). Every destructive tool needs approval."""

# Argument names that would let a model choose whom a call acts for; identity comes from the runtime.
IDENTITY_ARGS = frozenset({"user_id", "customer_id", "tenant_id", "tenant", "owner", "role", "approver_id", "actor"})
TOOL_NAME = re.compile(r"^(get|list|cancel|issue|update|delete|set|create)_[a-z_]+$")


class Refusal(BaseModel):
    """Why a business rule refused a request, and what the customer can do instead (user-facing)."""

    code: str
    instead: str = ""
    article: str | None = None


class ToolResult(BaseModel):
    """Outcome of one tool call: `ok` with `data`, or not ok with a one-line `error`.

    A business-rule refusal also carries `refusal` (a code, the alternative, the article that says so).
    """

    ok: bool
    data: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    refusal: Refusal | None = None


class ToolRefusal(Exception):
    """Raised when a business rule refuses the request; the message (and `instead`) are user-facing."""

    def __init__(self, message: str, *, code: str = "refused", instead: str = "", article: str | None = None):
        super().__init__(message)
        self.refusal = Refusal(code=code, instead=instead, article=article)

    def result(self) -> ToolResult:
        return ToolResult(ok=False, error=str(self), refusal=self.refusal)


class ToolNotPermitted(PermissionError):
    """A node called a tool config/permissions.yaml does not grant it (audited before it is raised)."""

    def __init__(self, node: str, tool: str, *, dry_run: bool) -> None:
        mode = "dry-run" if dry_run else "call"
        super().__init__(
            f"node {node!r} may not {mode} tool {tool!r} (config/permissions.yaml nodes.{node})"
        )
        self.node, self.tool, self.dry_run = node, tool, dry_run


@dataclass(frozen=True)
class Caller:
    """Who calls a tool, taken from the runtime (`nodes.common.tool_caller`), never from a model's arguments.

    `node` is the graph node making the call (checked against config/permissions.yaml); `user_id` and
    `tenant_id` are the customer the call acts for; `role` and `approver_id` say who drives the run (a
    reviewer's resume runs as the thread's owner, with the reviewer as approver); `thread_id` and `trace_id`
    tie the call to its ticket in the audit log.
    """

    node: NodeName
    user_id: str
    tenant_id: str = "default"
    role: Role = "customer"
    approver_id: str | None = None
    thread_id: str = ""
    trace_id: str = ""

    def __post_init__(self) -> None:
        from config.permissions import NODE_NAMES

        if self.node not in NODE_NAMES:
            raise ValueError(f"unknown node {self.node!r} for a tool call (graph nodes: {', '.join(NODE_NAMES)})")

    @property
    def actor(self) -> str:
        """Who is answerable for the call: the approving human when there is one, else the customer."""
        return self.approver_id or self.user_id


@dataclass(frozen=True)
class ToolContext:
    """What a tool function receives besides its arguments: the connection, the caller and the time."""

    conn: sqlite3.Connection
    user_id: str
    now: datetime
    tenant_id: str = "default"


ToolFn = Callable[[ToolContext, Any], dict[str, Any]]


@dataclass(frozen=True)
class ToolSpec:
    """One business tool: its name, description (shown to models), class, permission, argument model and code.

    `kind` is the declared class (read / write / destructive); `permission` whether a human approves it;
    `when` says when to use it (and when not), for models and for reviewers of config/permissions.yaml.
    `check` holds a write tool's preconditions, declared once: it raises `ToolRefusal` when a rule forbids
    the call and otherwise returns a preview of the effect. It runs alone as a dry run (`plan_action`, before
    anyone is asked to approve) and again inside the write transaction, right before `fn` (enforcement).
    Construction fails on a spec that breaks these rules (see `__post_init__`).
    """

    name: str
    description: str
    permission: Permission
    args_model: type[BaseModel]
    fn: ToolFn
    check: ToolFn | None = None
    kind: ToolKind = "read"
    when: str = ""

    def __post_init__(self) -> None:
        problems = spec_problems(self)
        if problems:
            raise ValueError(f"tool {self.name!r}: " + "; ".join(problems))

    @property
    def is_write(self) -> bool:
        """True for tools that change data (`write` and `destructive`)."""
        return self.kind != "read"

    @property
    def model_description(self) -> str:
        """What a model is told: what the tool does and when to use it."""
        return f"{self.description} Use it when {self.when}"


def spec_problems(spec: ToolSpec) -> list[str]:
    """Everything wrong with a tool's declaration (empty: fine). Checked at registration and by the tests."""
    problems = []
    if not TOOL_NAME.match(spec.name):
        problems.append("the name must be one verb and its object, e.g. get_order")
    if not spec.description.strip() or not spec.when.strip():
        problems.append("description and when (when to use it) are required")
    if not (isinstance(spec.args_model, type) and issubclass(spec.args_model, ToolArgs)):
        problems.append("the argument model must be a ToolArgs (pydantic, unknown fields rejected)")
    else:
        if spec.args_model.model_config.get("extra") != "forbid":
            problems.append("the argument model must reject unknown fields")
        if not (spec.args_model.__doc__ or "").strip():
            problems.append("the argument model needs a docstring")
        for field, info in spec.args_model.model_fields.items():
            if field in IDENTITY_ARGS:
                problems.append(f"argument {field!r} would let a model choose the identity; it comes from the runtime")
            if not (info.description or "").strip():
                problems.append(f"argument {field!r} needs a description")
    if (spec.kind == "read") != (spec.permission == "read"):
        problems.append(f"kind {spec.kind!r} does not match permission {spec.permission!r}")
    if spec.kind == "destructive" and spec.permission != "needs_approval":
        problems.append("a destructive tool needs approval")
    if spec.kind == "read" and spec.check is not None:
        problems.append("a read tool has no preconditions to dry-run")
    if spec.permission == "needs_approval" and spec.check is None:
        problems.append("a tool that needs approval declares its preconditions (check), for the dry run")
    return problems


class ToolArgs(BaseModel):
    """Base for argument models: unknown fields are rejected and strings are stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def format_validation_error(tool: str, exc: ValidationError) -> str:
    """One line naming each bad field and why."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "arguments"
        parts.append(f"{loc}: {err['msg']}")
    return f"invalid arguments for {tool}: " + "; ".join(parts)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def _event(caller: Caller, tool: str, args: Any, outcome: str, ts: datetime, **detail: Any) -> AuditEvent:
    status, _, why = outcome.partition(": ")
    return AuditEvent(
        ts=iso(ts),
        kind="tool_call",
        actor=caller.actor,
        role=caller.role,
        tenant=caller.tenant_id,
        subject=caller.user_id,
        action=tool,
        outcome=status,
        thread_id=caller.thread_id,
        trace_id=caller.trace_id,
        node=caller.node,
        detail={"args": args, **({"note": why} if why else {}), **detail},
    )


def _audit(conn: sqlite3.Connection, event: AuditEvent, args: Any, outcome: str) -> None:
    """The shop journal's row for a write attempt, in the caller's transaction (the audit event's id with it)."""
    conn.execute(
        "INSERT INTO audit_log (ts, actor, tool, args_json, outcome, event_id, node, tenant, role, approver, "
        "thread_id, trace_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            event.ts,
            event.subject,
            event.action,
            _json(args),
            outcome[:500],
            event.id,
            event.node,
            event.tenant,
            event.role,
            event.actor if event.actor != event.subject else None,
            event.thread_id,
            event.trace_id,
        ),
    )


def _customer_problem(conn: sqlite3.Connection, user_id: str) -> str | None:
    row = conn.execute("SELECT status FROM customers WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        return f"unknown customer '{user_id}'"
    return None


def default_permissions(tools: Mapping[str, ToolSpec]) -> Permissions:
    """The shipped config/permissions.yaml, validated against `tools` (cached), for a shop handle without its own
    (`ShopDB.permissions`, which `build_services` sets from the settings' config directory)."""
    from config.permissions import load_permissions
    from config.settings import CONFIG_DIR

    return load_permissions(
        CONFIG_DIR / "permissions.yaml",
        tuple(sorted(tools)),
        tuple(sorted(n for n, s in tools.items() if not s.is_write)),
    )


def execute(
    db: ShopDB,
    tools: Mapping[str, ToolSpec],
    name: str,
    args: Mapping[str, Any] | None,
    *,
    caller: Caller,
    idempotency_key: str | None = None,
    allowed_tools: Collection[str] | None = None,
    dry_run: bool = False,
    permissions: Permissions | None = None,
) -> ToolResult:
    """Validate and run tool `name` for `caller`; see the module docstring for the guarantees.

    `dry_run` checks a write tool's preconditions without changing anything: ok with `data["preview"]`
    (what the call would do), or the refusal the real call would give. Raises `ToolNotPermitted` when
    `caller.node` may not use the tool (`permissions`, else the shop handle's `permissions`, else the shipped
    config/permissions.yaml); nothing else raises.
    """
    if not isinstance(caller, Caller):
        raise TypeError("caller must be a tools.registry.Caller built from the runtime (nodes.common.tool_caller)")
    audit = getattr(db, "audit", None)
    spec = tools.get(name)
    given = dict(args) if isinstance(args, Mapping) else args
    if spec is None:
        error = f"unknown tool '{name}'; available: {', '.join(sorted(tools))}"
        record(audit, _event(caller, str(name)[:100], given, f"invalid: {error}", db.now()))
        return ToolResult(ok=False, error=error)
    check_only = dry_run and spec.is_write
    permissions = permissions or getattr(db, "permissions", None) or default_permissions(tools)
    if not permissions.allows(caller.node, name, dry_run=check_only):
        denied = ToolNotPermitted(caller.node, name, dry_run=check_only)
        mode = "dry_run" if check_only else "call"
        record(audit, _event(caller, name, given, f"denied: {denied}", db.now(), mode=mode))
        logger.error("permission denied: %s", denied)
        raise denied
    result, event = _execute(db, spec, given, caller, idempotency_key, allowed_tools, check_only)
    if event is None:
        outcome = "ok" if result.ok else ("refused" if result.refusal else "invalid") + f": {result.error}"
        event = _event(caller, name, given, outcome, db.now(), **({"mode": "dry_run"} if check_only else {}))
    record(audit, event)
    return result


def _execute(
    db: ShopDB,
    spec: ToolSpec,
    args: Any,
    caller: Caller,
    idempotency_key: str | None,
    allowed_tools: Collection[str] | None,
    dry_run: bool,
) -> tuple[ToolResult, AuditEvent | None]:
    """The call itself: (result, the audit event when the path made one itself, else None)."""
    name, user_id = spec.name, caller.user_id
    if allowed_tools is not None and name not in allowed_tools:
        return ToolResult(ok=False, error=f"tool '{name}' is not permitted in this workflow"), None
    if not isinstance(user_id, str) or not user_id.strip():
        return ToolResult(ok=False, error="no customer identity: user_id must be set by the caller"), None
    if args is None:
        args = {}
    if not isinstance(args, Mapping):
        return ToolResult(ok=False, error=f"invalid arguments for {name}: expected an object of named arguments"), None
    forged = sorted(IDENTITY_ARGS & set(args))
    if forged:
        error = f"{forged[0]} is not a tool argument: identity comes from the session"
        return ToolResult(ok=False, error=error), None
    if idempotency_key is not None and (not isinstance(idempotency_key, str) or not idempotency_key.strip()):
        return ToolResult(ok=False, error="idempotency_key must be a non-empty string"), None
    if not db.is_seeded():
        return ToolResult(ok=False, error="the shop database is not seeded; run `seed` first"), None
    try:
        parsed = spec.args_model.model_validate(dict(args))
    except ValidationError as exc:
        error = format_validation_error(name, exc)
        event = None
        if spec.is_write and not dry_run:
            now = db.now()
            event = _event(caller, name, dict(args), f"invalid: {error}", now)
            with db.transaction() as conn:
                _audit(conn, event, dict(args), f"invalid: {error}")
        return ToolResult(ok=False, error=error), event
    written: AuditEvent | None = None

    def run(checked: ToolSpec) -> ToolResult:
        nonlocal written
        if checked.is_write and dry_run:
            return _run_check(db, checked, parsed, caller)
        if checked.is_write:
            result, written = _run_write(db, checked, parsed, caller, idempotency_key)
            return result
        return _run_read(db, checked, parsed, caller)

    # The boundary (tools.boundary): the tool's circuit breaker, retries, a check of what it returned; a tool that
    # raised or returned malformed data is recorded and reported as ok=False, never raised into the graph.
    result = guarded(db, spec, run, caller=caller, args=parsed.model_dump(mode="json"))
    return result, written if result.ok or result.refusal else None


def _context(conn: sqlite3.Connection, caller: Caller, now: datetime) -> ToolContext:
    return ToolContext(conn, caller.user_id, now, caller.tenant_id)


def _run_read(db: ShopDB, spec: ToolSpec, args: BaseModel, caller: Caller) -> ToolResult:
    with db.reading() as conn:
        problem = _customer_problem(conn, caller.user_id)
        if problem:
            return ToolResult(ok=False, error=problem)
        try:
            return ToolResult(ok=True, data=spec.fn(_context(conn, caller, db.now()), args))
        except ToolRefusal as refusal:
            return refusal.result()


def _run_check(db: ShopDB, spec: ToolSpec, args: BaseModel, caller: Caller) -> ToolResult:
    """A write tool's preconditions alone, in a read transaction: nothing is written to the shop, not even
    its journal (the dry run's audit event goes to the audit log only)."""
    with db.reading() as conn:
        problem = _customer_problem(conn, caller.user_id)
        if problem:
            return ToolResult(ok=False, error=problem)
        try:
            ctx = _context(conn, caller, db.now())
            preview = spec.check(ctx, args) if spec.check else {}
        except ToolRefusal as refusal:
            return refusal.result()
        return ToolResult(ok=True, data={"preview": preview})


def _run_write(
    db: ShopDB, spec: ToolSpec, args: BaseModel, caller: Caller, key: str | None
) -> tuple[ToolResult, AuditEvent]:
    args_dump = args.model_dump(mode="json")
    now = db.now()
    user_id = caller.user_id

    def journal(conn: sqlite3.Connection, outcome: str) -> AuditEvent:
        event = _event(caller, spec.name, args_dump, outcome, now, **({"idempotency_key": key} if key else {}))
        _audit(conn, event, args_dump, outcome)
        return event

    with db.transaction() as conn:
        if key is not None:
            row = conn.execute(
                "SELECT tool, user_id, args_json, result_json FROM action_ledger WHERE key = ?", (key,)
            ).fetchone()
            if row is not None:
                if (row["tool"], row["user_id"], row["args_json"]) != (spec.name, user_id, _json(args_dump)):
                    error = f"idempotency key '{key}' was already used for a different action"
                    return ToolResult(ok=False, error=error), journal(conn, f"refused: {error}")
                event = journal(conn, f"replayed: {key}")
                return ToolResult(ok=True, data={**json.loads(row["result_json"]), "replayed": True}), event
        problem = _customer_problem(conn, user_id)
        if problem:
            return ToolResult(ok=False, error=problem), journal(conn, f"refused: {problem}")
        conn.execute("SAVEPOINT tool_call")
        ctx = _context(conn, caller, now)
        try:
            if spec.check is not None:
                spec.check(ctx, args)  # the same preconditions as the dry run, enforced in this transaction
            data = spec.fn(ctx, args)
        except ToolRefusal as refusal:
            # Undo anything the tool wrote before refusing; the audit row is the only write committed.
            conn.execute("ROLLBACK TO tool_call")
            return refusal.result(), journal(conn, f"refused: {refusal}")
        conn.execute("RELEASE tool_call")
        if key is not None:
            data = {**data, "replayed": False}
            conn.execute(
                "INSERT INTO action_ledger (key, tool, user_id, args_json, result_json, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (key, spec.name, user_id, _json(args_dump), _json(data), iso(now)),
            )
        event = journal(conn, "ok" if key is None else f"ok: {key}")
        return ToolResult(ok=True, data=data), event
