"""A small registry of typed business tools and the one function that runs them safely.

`run_tool` is the only door to the shop's data: it validates arguments with the tool's pydantic model,
takes the caller's identity from the caller (never from the model), refuses business-rule violations,
records idempotent write results in `action_ledger` and appends every write attempt to `audit_log`,
the change, the ledger row and the audit row in one transaction. It never raises for bad input.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tools.boundary import guarded
from tools.shop_db import ShopDB, iso

logger = logging.getLogger(__name__)

Permission = Literal["read", "write", "needs_approval"]


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


@dataclass(frozen=True)
class ToolContext:
    """What a tool function receives besides its arguments: the connection, the caller and the time."""

    conn: sqlite3.Connection
    user_id: str
    now: datetime


ToolFn = Callable[[ToolContext, Any], dict[str, Any]]


@dataclass(frozen=True)
class ToolSpec:
    """One business tool: its name, description (shown to models), permission, argument model and code.

    `check` holds a write tool's preconditions, declared once: it raises `ToolRefusal` when a rule forbids
    the call and otherwise returns a preview of the effect. It runs alone as a dry run (`plan_action`, before
    anyone is asked to approve) and again inside the write transaction, right before `fn` (enforcement).
    """

    name: str
    description: str
    permission: Permission
    args_model: type[BaseModel]
    fn: ToolFn
    check: ToolFn | None = None

    @property
    def is_write(self) -> bool:
        """True for tools that change data (`write` and `needs_approval`)."""
        return self.permission != "read"


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


def _audit(conn: sqlite3.Connection, now: datetime, actor: str, tool: str, args: Any, outcome: str) -> None:
    conn.execute(
        "INSERT INTO audit_log (ts, actor, tool, args_json, outcome) VALUES (?, ?, ?, ?, ?)",
        (iso(now), actor, tool, _json(args), outcome[:500]),
    )


def _customer_problem(conn: sqlite3.Connection, user_id: str) -> str | None:
    row = conn.execute("SELECT status FROM customers WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        return f"unknown customer '{user_id}'"
    return None


def execute(
    db: ShopDB,
    tools: Mapping[str, ToolSpec],
    name: str,
    args: Mapping[str, Any] | None,
    *,
    user_id: str,
    idempotency_key: str | None = None,
    allowed_tools: Collection[str] | None = None,
    dry_run: bool = False,
) -> ToolResult:
    """Validate and run tool `name` for `user_id`; see the module docstring for the guarantees.

    `dry_run` checks a write tool's preconditions without changing anything: ok with `data["preview"]`
    (what the call would do), or the refusal the real call would give.
    """
    spec = tools.get(name)
    if spec is None:
        return ToolResult(ok=False, error=f"unknown tool '{name}'; available: {', '.join(sorted(tools))}")
    if allowed_tools is not None and name not in allowed_tools:
        return ToolResult(ok=False, error=f"tool '{name}' is not permitted in this workflow")
    if not isinstance(user_id, str) or not user_id.strip():
        return ToolResult(ok=False, error="no customer identity: user_id must be set by the caller")
    if args is None:
        args = {}
    if not isinstance(args, Mapping):
        return ToolResult(
            ok=False, error=f"invalid arguments for {name}: expected an object of named arguments"
        )
    if "user_id" in args:
        return ToolResult(ok=False, error="user_id is not a tool argument: identity comes from the session")
    if idempotency_key is not None and (not isinstance(idempotency_key, str) or not idempotency_key.strip()):
        return ToolResult(ok=False, error="idempotency_key must be a non-empty string")
    if not db.is_seeded():
        return ToolResult(ok=False, error="the shop database is not seeded; run `seed` first")
    try:
        parsed = spec.args_model.model_validate(dict(args))
    except ValidationError as exc:
        error = format_validation_error(name, exc)
        if spec.is_write:
            with db.transaction() as conn:
                _audit(conn, db.now(), user_id, name, dict(args), f"invalid: {error}")
        return ToolResult(ok=False, error=error)

    def run(checked: ToolSpec) -> ToolResult:
        if checked.is_write and dry_run:
            return _run_check(db, checked, parsed, user_id)
        if checked.is_write:
            return _run_write(db, checked, parsed, user_id, idempotency_key)
        return _run_read(db, checked, parsed, user_id)

    # The boundary (tools.boundary): the tool's circuit breaker, retries, a check of what it returned; a tool that
    # raised or returned malformed data is recorded and reported as ok=False, never raised into the graph.
    return guarded(db, spec, run, user_id=user_id, args=parsed.model_dump(mode="json"))


def _run_read(db: ShopDB, spec: ToolSpec, args: BaseModel, user_id: str) -> ToolResult:
    with db.reading() as conn:
        problem = _customer_problem(conn, user_id)
        if problem:
            return ToolResult(ok=False, error=problem)
        try:
            return ToolResult(ok=True, data=spec.fn(ToolContext(conn, user_id, db.now()), args))
        except ToolRefusal as refusal:
            return refusal.result()


def _run_check(db: ShopDB, spec: ToolSpec, args: BaseModel, user_id: str) -> ToolResult:
    """A write tool's preconditions alone, in a read transaction: nothing is written, not even audit."""
    with db.reading() as conn:
        problem = _customer_problem(conn, user_id)
        if problem:
            return ToolResult(ok=False, error=problem)
        try:
            preview = spec.check(ToolContext(conn, user_id, db.now()), args) if spec.check else {}
        except ToolRefusal as refusal:
            return refusal.result()
        return ToolResult(ok=True, data={"preview": preview})


def _run_write(db: ShopDB, spec: ToolSpec, args: BaseModel, user_id: str, key: str | None) -> ToolResult:
    args_dump = args.model_dump(mode="json")
    now = db.now()
    with db.transaction() as conn:
        if key is not None:
            row = conn.execute(
                "SELECT tool, user_id, args_json, result_json FROM action_ledger WHERE key = ?", (key,)
            ).fetchone()
            if row is not None:
                if (row["tool"], row["user_id"], row["args_json"]) != (spec.name, user_id, _json(args_dump)):
                    error = f"idempotency key '{key}' was already used for a different action"
                    _audit(conn, now, user_id, spec.name, args_dump, f"refused: {error}")
                    return ToolResult(ok=False, error=error)
                _audit(conn, now, user_id, spec.name, args_dump, f"replayed: {key}")
                return ToolResult(ok=True, data={**json.loads(row["result_json"]), "replayed": True})
        problem = _customer_problem(conn, user_id)
        if problem:
            _audit(conn, now, user_id, spec.name, args_dump, f"refused: {problem}")
            return ToolResult(ok=False, error=problem)
        conn.execute("SAVEPOINT tool_call")
        ctx = ToolContext(conn, user_id, now)
        try:
            if spec.check is not None:
                spec.check(ctx, args)  # the same preconditions as the dry run, enforced in this transaction
            data = spec.fn(ctx, args)
        except ToolRefusal as refusal:
            # Undo anything the tool wrote before refusing; the audit row is the only write committed.
            conn.execute("ROLLBACK TO tool_call")
            _audit(conn, now, user_id, spec.name, args_dump, f"refused: {refusal}")
            return refusal.result()
        conn.execute("RELEASE tool_call")
        if key is not None:
            data = {**data, "replayed": False}
            conn.execute(
                "INSERT INTO action_ledger (key, tool, user_id, args_json, result_json, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (key, spec.name, user_id, _json(args_dump), _json(data), iso(now)),
            )
        _audit(conn, now, user_id, spec.name, args_dump, "ok" if key is None else f"ok: {key}")
        return ToolResult(ok=True, data=data)
