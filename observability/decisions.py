"""The decision log: one structured record per decision point, in a searchable store.

    store = open_decision_store(settings)          # SQLite + FTS5 under the data dir, or Postgres by URL
    store.record(DecisionRecord(trace_id=..., node="classify_intent", action="classify", ...))
    store.by_trace(trace_id)                       # a ticket's decisions, in order
    store.search("refund approved")                # full-text over reasoning, action, tool, intent, outcome, ...

Records are written by `observability.metrics.instrument` around every node (see `observability.decision_points`
for what each node's record says), so a ticket's whole trail is there: input accepted or refused, intent and
confidence, each routing hop, what was retrieved, the action planned, the human's answer, the tool's result,
the review decision, the final status. A store is anything with the `DecisionStore` methods; `SqlDecisionStore`
writes one SQL to SQLite (FTS5) or Postgres (tsvector + GIN), with the same queries and results on both
(`open_decision_store` picks by target: `Settings.decisions_target`).

Alerts (observability.alerts) live in the same store, in their own table.
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import re
import threading
import time
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from storage.sql import connect, create_schema, is_postgres, redact, sqlite_file, transaction

FIELDS = (
    "ts",
    "trace_id",
    "thread_id",
    "tenant_id",
    "user_id",
    "node",
    "action",
    "tool",
    "intent",
    "confidence",
    "reasoning",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "model",
    "outcome",
)


@dataclass
class DecisionRecord:
    """One decision: who (node) decided what (action, tool) about which ticket (trace id), why (reasoning, a
    short summary in words), how sure (confidence), at what cost (latency, tokens, model) and with what outcome.
    `details` holds what is particular to the node (route, flags, approver, candidates, ...)."""

    trace_id: str
    node: str
    action: str
    outcome: str
    ts: float = field(default_factory=time.time)
    thread_id: str = ""
    tenant_id: str = ""
    user_id: str = ""
    tool: str | None = None
    intent: str | None = None
    confidence: float | None = None
    reasoning: str = ""
    latency_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    model: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AlertRecord:
    """An alert firing (or resolving): which rule, the value seen, the threshold, over which window."""

    rule: str
    state: str  # "firing" | "resolved"
    value: float
    threshold: float
    message: str
    ts: float = field(default_factory=time.time)
    window_s: float = 0.0
    delivered: str = ""  # webhook delivery: "", "ok", "error: ..."
    id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class DecisionStore(Protocol):
    """What the graph, the CLI and the dashboard need from a decision store."""

    def record(self, rec: DecisionRecord) -> None: ...

    def flush(self) -> None: ...

    def by_trace(self, trace_id: str) -> list[DecisionRecord]: ...

    def search(self, text: str, *, limit: int = 50, tenant_id: str | None = None) -> list[DecisionRecord]: ...

    def add_alert(self, alert: AlertRecord) -> int: ...

    def set_delivery(self, alert_id: int, delivered: str) -> None: ...

    def alerts(self, *, limit: int = 50) -> list[AlertRecord]: ...

    def close(self) -> None: ...


# ------------------------------------------------------------------ SQLite + FTS5, Postgres + tsvector

SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    trace_id TEXT NOT NULL,
    thread_id TEXT NOT NULL DEFAULT '',
    tenant_id TEXT NOT NULL DEFAULT '',
    user_id TEXT NOT NULL DEFAULT '',
    node TEXT NOT NULL,
    action TEXT NOT NULL,
    tool TEXT,
    intent TEXT,
    confidence REAL,
    reasoning TEXT NOT NULL DEFAULT '',
    latency_ms REAL NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    model TEXT,
    outcome TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS decisions_trace ON decisions (trace_id, id);
CREATE INDEX IF NOT EXISTS decisions_ts ON decisions (ts);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    rule TEXT NOT NULL,
    state TEXT NOT NULL,
    value REAL NOT NULL,
    threshold REAL NOT NULL,
    window_s REAL NOT NULL DEFAULT 0,
    message TEXT NOT NULL,
    delivered TEXT NOT NULL DEFAULT ''
);
"""
# The searched text, one engine each: an FTS5 index kept by a trigger, or a generated tsvector with a GIN index.
# Both split on everything that is not a letter or digit and fold case (FTS5's unicode61; the regexp here).
SQLITE_SEARCH = """
CREATE VIRTUAL TABLE IF NOT EXISTS decisions_fts USING fts5 (
    node, action, tool, intent, reasoning, outcome, details,
    content='decisions', content_rowid='id', tokenize='unicode61'
);
CREATE TRIGGER IF NOT EXISTS decisions_ai AFTER INSERT ON decisions BEGIN
    INSERT INTO decisions_fts (rowid, node, action, tool, intent, reasoning, outcome, details)
    VALUES (new.id, new.node, new.action, coalesce(new.tool, ''), coalesce(new.intent, ''), new.reasoning,
            new.outcome, new.details);
END;
"""
POSTGRES_SEARCH = """
ALTER TABLE decisions ADD COLUMN IF NOT EXISTS search tsvector GENERATED ALWAYS AS (to_tsvector('simple',
    regexp_replace(lower(node || ' ' || action || ' ' || coalesce(tool, '') || ' ' || coalesce(intent, '') || ' '
                         || reasoning || ' ' || outcome || ' ' || details), '[^[:alnum:]]+', ' ', 'g'))) STORED;
CREATE INDEX IF NOT EXISTS decisions_search ON decisions USING GIN (search);
"""
_MATCH = {
    "sqlite": "id IN (SELECT rowid FROM decisions_fts WHERE decisions_fts MATCH ?)",
    "postgres": "search @@ to_tsquery('simple', ?)",
}
_COLUMNS = ", ".join(("id", *FIELDS, "details"))

_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = object()
IDLE_S = 5.0  # a writer thread with nothing to write for this long ends
_live: weakref.WeakSet[SqlDecisionStore] = weakref.WeakSet()
log = logging.getLogger("switchboard.decisions")


@atexit.register
def _flush_all() -> None:
    for store in list(_live):
        try:
            store.flush(5.0)
        except Exception:  # noqa: BLE001 - exiting anyway
            pass


def fts_query(text: str) -> str:
    """A safe FTS5 query from free text: every word must occur (prefix match on the last one). FTS5's own
    syntax (quotes, AND/OR/NEAR, column filters) is never interpreted, so no input can make the query fail."""
    words = _WORD.findall(text or "")
    if not words:
        return ""
    quoted = [f'"{w}"' for w in words]
    quoted[-1] += "*"
    return " ".join(quoted)


def ts_query(text: str) -> str:
    """The same query for Postgres' `to_tsquery`: every word must occur (a word of several parts, like
    `issue_refund`, as a phrase), prefix match on the last one; every lexeme is quoted, so no input is syntax."""
    groups = [parts for w in _WORD.findall(text or "") if (parts := re.findall(r"[^\W_]+", w.lower()))]
    if not groups:
        return ""
    phrases = [" <-> ".join(f"'{p}'" for p in parts) for parts in groups]
    phrases[-1] += ":*"
    return " & ".join(f"({p})" for p in phrases)


_INSERT = f"INSERT INTO decisions ({', '.join(FIELDS)}, details) VALUES ({', '.join('?' * (len(FIELDS) + 1))})"


class SqlDecisionStore:
    """Decisions and alerts in one SQLite file (WAL; full-text search with FTS5) or in Postgres (`target`: a path,
    ``sqlite:///path`` or a ``postgresql://`` URL, storage.sql; full-text search on a generated tsvector with a GIN
    index), where every instance of a cluster writes one log. Append-only: triggers refuse UPDATE and DELETE of
    decisions. Thread-safe (one connection behind a lock).

    `record()` only queues the record: a writer thread inserts whatever is queued in one transaction, so a node
    never waits for the disk. Every read flushes the queue first (a query always sees what was recorded before
    it), and so do `flush()`, `close()` and process exit. A crash loses at most the records of the last few
    milliseconds, never a half-written one."""

    def __init__(self, target: Path | str) -> None:
        self.target = str(target)
        self.engine = "postgres" if is_postgres(target) else "sqlite"
        self.path = None if self.engine == "postgres" else sqlite_file(target)
        self._lock = threading.Lock()
        self._conn = connect(target, lock="decisions")
        search = POSTGRES_SEARCH if self.engine == "postgres" else SQLITE_SEARCH
        with self._lock:
            create_schema(self._conn, SCHEMA + search, append_only_tables=("decisions",))
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self._closed = False
        _live.add(self)

    @property
    def where(self) -> str:
        """The store, for messages (a URL without its password)."""
        return redact(self.target)

    def record(self, rec: DecisionRecord) -> None:
        if self._closed:
            raise ValueError(f"decision store {self.where} is closed")
        from guards.text import well_formed

        row = [well_formed(v) if isinstance(v, str) else v for v in (getattr(rec, f) for f in FIELDS)]
        row.append(json.dumps(rec.details, default=str, sort_keys=True))  # ASCII: a lone surrogate cannot fail it
        self._queue.put(row)
        self._start()

    def _start(self) -> None:
        with self._writer_lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="switchboard-decisions", daemon=True)
                self._writer.start()

    def _write_loop(self) -> None:
        while True:
            try:
                batch = [self._queue.get(timeout=IDLE_S)]
            except queue.Empty:
                with self._writer_lock:  # idle: the thread ends; the next record() starts another
                    if self._queue.empty():
                        self._writer = None
                        return
                continue
            while len(batch) < 1000:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            rows = [b for b in batch if isinstance(b, list)]
            if rows:
                try:
                    with self._lock, transaction(self._conn, begin="BEGIN") as conn:
                        conn.executemany(_INSERT, rows)
                except Exception:  # noqa: BLE001 - logged loudly; a full disk must not stop the graph
                    log.error("%d decision record(s) not written to %s", len(rows), self.where, exc_info=True)
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()
            if any(item is _STOP for item in batch):
                with self._writer_lock:
                    self._writer = None
                return

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every record queued so far is written."""
        done = threading.Event()
        with self._writer_lock:  # queued under the lock, so an idle writer cannot end before it sees it
            if self._writer is None:
                return
            self._queue.put(done)
        done.wait(timeout)

    def by_trace(self, trace_id: str) -> list[DecisionRecord]:
        self.flush()
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM decisions WHERE trace_id = ? ORDER BY id", (trace_id,)
            ).fetchall()
        return [_decision(r) for r in rows]

    def search(self, text: str, *, limit: int = 50, tenant_id: str | None = None) -> list[DecisionRecord]:
        """Newest first; every word of `text` must occur in the record (any indexed field)."""
        query = ts_query(text) if self.engine == "postgres" else fts_query(text)
        if not query:
            return []
        sql = (
            f"SELECT {_COLUMNS} FROM decisions WHERE {_MATCH[self.engine]}"
            + (" AND tenant_id = ?" if tenant_id else "")
            + " ORDER BY id DESC LIMIT ?"
        )
        params: list[Any] = [query, *([tenant_id] if tenant_id else []), int(limit)]
        self.flush()
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [_decision(r) for r in rows]

    def recent(self, *, since: float = 0.0, limit: int = 1000) -> list[DecisionRecord]:
        self.flush()
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM decisions WHERE ts >= ? ORDER BY id DESC LIMIT ?", (since, int(limit))
            ).fetchall()
        return [_decision(r) for r in rows]

    def add_alert(self, alert: AlertRecord) -> int:
        with self._lock:
            row = self._conn.execute(
                "INSERT INTO alerts (ts, rule, state, value, threshold, window_s, message, delivered) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (alert.ts, alert.rule, alert.state, alert.value, alert.threshold, alert.window_s, alert.message,
                 alert.delivered),
            ).fetchone()
        alert.id = int(row[0])
        return alert.id

    def set_delivery(self, alert_id: int, delivered: str) -> None:
        with self._lock:
            self._conn.execute("UPDATE alerts SET delivered = ? WHERE id = ?", (delivered[:300], alert_id))

    def alerts(self, *, limit: int = 50) -> list[AlertRecord]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM alerts ORDER BY id DESC LIMIT ?", (int(limit),)).fetchall()
        return [AlertRecord(**dict(r)) for r in rows]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._writer_lock:
            writer = self._writer
        if writer is not None:
            self._queue.put(_STOP)
            writer.join(30)
        with self._lock:
            self._conn.close()


def _decision(row: Any) -> DecisionRecord:
    data = dict(row)
    data["details"] = json.loads(data.get("details") or "{}")
    return DecisionRecord(**data)


# ------------------------------------------------------------------ opening

_open: dict[str, DecisionStore] = {}
_open_lock = threading.Lock()


def decision_target(settings: Any) -> str:
    """Where a settings' decision log lives (`Settings.decisions_target`: SWITCHBOARD_DECISIONS_URL, else the
    database URL, else `<data_dir>/decisions.sqlite`)."""
    return str(settings.decisions_target)


def open_decision_store(target: Any) -> DecisionStore:
    """The store for a target (a Settings, a path, ``sqlite:///path`` or a ``postgresql://`` URL); one per target
    per process, shared by threads. Any other URL is a ValueError, never a silent fallback to another store."""
    where = target if isinstance(target, (str, Path)) else decision_target(target)
    key = str(where)
    with _open_lock:
        if key in _open:
            return _open[key]
        if "://" in key and not is_postgres(key) and not key.startswith("sqlite:///"):
            raise ValueError(
                f"decision log URL {redact(key)!r} is not supported: use a file path, sqlite:///path or postgresql://..."
            )
        store = SqlDecisionStore(key)
        _open[key] = store
        return store
