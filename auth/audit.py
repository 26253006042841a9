"""The audit log: an append-only record of who did what, when, for which tenant and trace, and the outcome.

Recorded: every tool call through the one door (`tools.registry.execute`: reads, dry runs, writes, refusals,
permission denials), every approval, review and escalation decision (`auth.audit_nodes`), every auth failure
of the served API (`auth.handlers`: 401), every policy refusal (a handler's 403; a wrong-owner 404, `auth.refusals`)
and every rate-limit refusal (`auth.ratelimit`).

Storage sits behind a small interface (`AuditLog`: `append`, `query`): `SqlAuditLog` writes one SQL over
storage.sql to a SQLite file or to Postgres, `MemoryAuditLog` keeps events in memory; `open_audit(settings)`
picks the target from `Settings.audit_target` (SWITCHBOARD_AUDIT_URL, else SWITCHBOARD_DATABASE_URL, so every
instance of a cluster writes one log, else data_dir/audit.sqlite). There is no update or delete path: the table
has triggers that refuse UPDATE and DELETE, and appends are idempotent by event id (a replayed node does not
record twice).

Writes to the shop stay transactional: `run_tool` writes each write attempt's row into the shop's own
`audit_log` table (tools/shop_db.py) in the same transaction as the change and the idempotency ledger, with
this module's event id, and appends the same event here after the commit. `query_events` merges both by
event id, so a committed write is in the audit even if the process died between its commit and the copy.
String values in `detail` are masked for logs (guards.pii.mask_for_log); the shop's journal keeps the raw
arguments beside the data they changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

from pydantic import BaseModel, ConfigDict, Field

from storage.sql import connect, create_schema, is_postgres, redact, sqlite_file, table_exists

log = logging.getLogger("switchboard.audit")

EventKind = Literal[
    "tool_call", "approval", "review", "escalation", "auth_failure", "policy_refusal", "rate_limited"
]
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_id(*parts: str) -> str:
    """A deterministic id for an event that a replay may record again (same parts, same id)."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


class AuditEvent(BaseModel):
    """One audit record."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=lambda: uuid.uuid4().hex, description="Unique; a replay reuses it.")
    ts: str = Field(default_factory=now_iso, description="When, UTC ISO 8601.")
    kind: EventKind
    actor: str = Field(description="Who acted: the customer, the reviewer, 'policy', or 'anonymous'.")
    role: str = Field("customer", description="The actor's role: customer, agent, admin, anonymous, system.")
    tenant: str = ""
    subject: str = Field("", description="On whose behalf (the customer / thread owner) when not the actor.")
    action: str = Field(description="What: a tool name, 'approve cancel_order', 'threads.create_run', ...")
    outcome: str = Field(description="ok, refused, invalid, denied, error, replayed, accept, edit, 401, 429, ...")
    thread_id: str = ""
    trace_id: str = ""
    node: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)


class AuditLog(Protocol):
    """Where audit events go. Append-only: there is deliberately no update or delete method."""

    def append(self, event: AuditEvent) -> None: ...

    def query(
        self,
        *,
        thread_id: str | None = None,
        user_id: str | None = None,
        tenant: str | None = None,
        kind: str | None = None,
        limit: int = 1000,
    ) -> list[AuditEvent]: ...


def masked(detail: Mapping[str, Any]) -> dict[str, Any]:
    """`detail` with PII in every string masked for the log (emails, cards, IBANs, phone numbers)."""
    from guards.pii import mask_for_log
    from guards.text import well_formed

    def walk(value: Any) -> Any:
        if isinstance(value, str):  # a lone surrogate would make the append fail, and the record be lost
            return mask_for_log(well_formed(value), max_len=1000)
        if isinstance(value, Mapping):
            return {str(k): walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        return value

    return walk(dict(detail))


SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE, ts TEXT NOT NULL, kind TEXT NOT NULL, actor TEXT NOT NULL, role TEXT NOT NULL,
    tenant TEXT NOT NULL, subject TEXT NOT NULL, action TEXT NOT NULL, outcome TEXT NOT NULL,
    thread_id TEXT NOT NULL, trace_id TEXT NOT NULL, node TEXT NOT NULL, detail_json TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS idx_audit_thread ON audit_events(thread_id);
CREATE INDEX IF NOT EXISTS idx_audit_actor ON audit_events(actor);
CREATE INDEX IF NOT EXISTS idx_audit_subject ON audit_events(subject);
"""
COLUMNS = ("id", "ts", "kind", "actor", "role", "tenant", "subject", "action", "outcome", "thread_id", "trace_id",
           "node")  # fmt: skip
_INSERT = (
    f"INSERT INTO audit_events ({', '.join(COLUMNS)}, detail_json) VALUES ({', '.join('?' * (len(COLUMNS) + 1))}) "
    "ON CONFLICT (id) DO NOTHING"
)


class SqlAuditLog:
    """Audit events in one SQLite file (WAL, synchronous=NORMAL like the shop: an append survives a crash of the
    process; mode 600) or in Postgres (`target`: a path, ``sqlite:///path`` or a ``postgresql://`` URL, storage.sql),
    where every instance of a cluster appends to one log. Append-only on both: triggers refuse UPDATE and DELETE
    (storage.sql.append_only). One connection per handle, serialised by a lock, so it is safe from any thread;
    several processes may append at once."""

    def __init__(self, target: Path | str) -> None:
        self.target = str(target)
        self.path = None if is_postgres(target) else sqlite_file(target)
        self._lock = threading.Lock()
        self._conn: Any = None

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        with self._lock:
            if self._conn is None:
                if self.path is not None and not self.path.exists():
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self.path.touch(mode=0o600)
                conn = connect(self.target, lock="audit_events")
                try:
                    create_schema(conn, SCHEMA, append_only_tables=("audit_events",))
                except BaseException:
                    conn.close()
                    raise
                self._conn = conn
            yield self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def append(self, event: AuditEvent) -> None:
        row = event.model_dump()
        values = [str(row[c] if row[c] is not None else "") for c in COLUMNS]
        detail = json.dumps(masked(event.detail), sort_keys=True, default=str, ensure_ascii=False)
        with self._connect() as conn:
            conn.execute(_INSERT, (*values, detail))

    def query(
        self,
        *,
        thread_id: str | None = None,
        user_id: str | None = None,
        tenant: str | None = None,
        kind: str | None = None,
        limit: int = 1000,
    ) -> list[AuditEvent]:
        if self.path is not None and not self.path.exists():
            return []  # reading creates nothing
        where, params = _where(thread_id=thread_id, user_id=user_id, tenant=tenant, kind=kind)
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT * FROM audit_events {where} ORDER BY ts, seq LIMIT ?", (*params, int(limit))
            ).fetchall()
        return [_event(r) for r in rows]


def _where(**filters: str | None) -> tuple[str, list[str]]:
    clauses, params = [], []
    for key, value in filters.items():
        if value is None:
            continue
        if key == "user_id":
            clauses.append("(actor = ? OR subject = ?)")
            params += [value, value]
        else:
            clauses.append(f"{key} = ?")
            params.append(value)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _event(row: Any) -> AuditEvent:
    return AuditEvent(**{c: row[c] for c in COLUMNS}, detail=json.loads(row["detail_json"] or "{}"))


class MemoryAuditLog:
    """In-memory audit log (tests, notebooks): the same contract, nothing on disk."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def append(self, event: AuditEvent) -> None:
        if all(e.id != event.id for e in self.events):
            self.events.append(event.model_copy(update={"detail": masked(event.detail)}))

    def query(
        self,
        *,
        thread_id: str | None = None,
        user_id: str | None = None,
        tenant: str | None = None,
        kind: str | None = None,
        limit: int = 1000,
    ) -> list[AuditEvent]:
        return [e for e in self.events if _matches(e, thread_id, user_id, tenant, kind)][:limit]


def _matches(e: AuditEvent, thread_id: str | None, user_id: str | None, tenant: str | None, kind: str | None) -> bool:
    return (
        (thread_id is None or e.thread_id == thread_id)
        and (user_id is None or user_id in (e.actor, e.subject))
        and (tenant is None or e.tenant == tenant)
        and (kind is None or e.kind == kind)
    )


def open_audit(settings: Any) -> AuditLog:
    """The audit log the settings name (`Settings.audit_target`: SWITCHBOARD_AUDIT_URL, else the database URL, else
    data_dir/audit.sqlite): a SQLite file or Postgres. Anything else is a ValueError naming what is supported."""
    target = settings.audit_target
    if "://" in target and not is_postgres(target) and not target.startswith("sqlite:///"):
        raise ValueError(
            f"audit log URL {redact(target)!r} is not supported: use a file path, sqlite:///path or postgresql://..."
        )
    return SqlAuditLog(target)


def record(audit: AuditLog | None, event: AuditEvent) -> None:
    """Append `event`; a failing audit store is logged loudly and never breaks the caller.

    Writes to the shop are covered anyway: their row is committed with the change (see the module docstring).
    """
    if audit is None:
        return
    try:
        audit.append(event)
    except Exception:  # noqa: BLE001 - the audit store being down must not take the request with it
        log.error("audit append failed for %s %s %s", event.kind, event.action, event.outcome, exc_info=True)


# ---------------------------------------------------------------- the shop's transactional journal


def shop_events(shop: Path | str) -> list[AuditEvent]:
    """The write attempts the shop committed with their changes (tools/shop_db.py `audit_log`), as events; `shop`
    is the shop database (`Settings.shop_target`: a SQLite file or Postgres). Reading creates nothing."""
    if not is_postgres(shop) and not Path(shop).exists():
        return []
    conn = connect(str(shop), lock="shop")
    try:
        if not table_exists(conn, "audit_log"):  # not a seeded shop database
            return []
        rows = conn.execute("SELECT * FROM audit_log ORDER BY id").fetchall()
    finally:
        conn.close()
    events = []
    for r in rows:
        keys = r.keys()

        def col(name: str, default: str = "", row: Any = r, keys: list[str] = keys) -> str:
            return str(row[name]) if name in keys and row[name] is not None else default

        outcome, _, why = col("outcome").partition(": ")
        detail = {"args": json.loads(col("args_json", "{}")), "journal": "shop", **({"note": why} if why else {})}
        events.append(
            AuditEvent(
                id=col("event_id") or f"shop-{r['id']}",
                ts=col("ts"),
                kind="tool_call",
                actor=col("approver") or col("actor"),
                role=col("role", "customer"),
                tenant=col("tenant"),
                subject=col("actor"),
                action=col("tool"),
                outcome=outcome,
                thread_id=col("thread_id"),
                trace_id=col("trace_id"),
                node=col("node"),
                detail=detail,
            )
        )
    return events


def query_events(
    audit: AuditLog,
    *,
    shop: Path | str | None = None,
    thread_id: str | None = None,
    user_id: str | None = None,
    tenant: str | None = None,
    kind: str | None = None,
    limit: int = 1000,
) -> list[AuditEvent]:
    """Events from the audit log plus the shop's committed write journal rows it does not have yet, by time."""
    events = audit.query(thread_id=thread_id, user_id=user_id, tenant=tenant, kind=kind, limit=limit)
    if shop is not None:
        seen = {e.id for e in events}
        extra = [
            e for e in shop_events(shop) if e.id not in seen and _matches(e, thread_id, user_id, tenant, kind)
        ]
        if extra:
            events = sorted(events + extra, key=lambda e: e.ts)[:limit]
    return events
