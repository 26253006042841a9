"""Per-thread leases: at most one run works on a conversation thread at a time, never two forked from one checkpoint.

A lease is a row in `thread_leases` next to the checkpoints (the same SQLite file by default, the same Postgres
database when the checkpointer URL is postgres; a process-local table for the in-memory checkpointer):

    thread_id (primary key) | holder | host | pid | expires_at (epoch s)

`hold(target, thread_id, ttl_s)` takes it for the life of a `with` block and gives it back; a second taker gets
`ThreadBusy`. A lease is free again when released, when it expires (`limits.lease_ttl_s`: a crashed holder on
another machine), or at once when its holder ran on this host and that process is gone (`kill -9`, a crash), so a
restarted run never waits out the expiry of its own dead predecessor. Taking a lease is one atomic statement
(SQLite `BEGIN IMMEDIATE`; Postgres `INSERT ... ON CONFLICT DO UPDATE ... WHERE`), so two takers racing for a free
lease cannot both win.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from memory.checkpointer import sqlite_path
from storage.sql import transaction

__all__ = ["Lease", "Leases", "ThreadBusy", "hold", "holder_id", "open_leases"]

_POSTGRES = ("postgres://", "postgresql://")
HOST = socket.gethostname()


@dataclass(frozen=True)
class Lease:
    thread_id: str
    holder: str
    host: str
    pid: int
    expires_at: float


class ThreadBusy(RuntimeError):
    """Another live run holds the thread's lease."""

    def __init__(self, lease: Lease) -> None:
        until = datetime.fromtimestamp(lease.expires_at, UTC).strftime("%H:%M:%S UTC")
        super().__init__(
            f"thread {lease.thread_id} is busy: another run (pid {lease.pid} on {lease.host}) is working on it "
            f"(lease until {until}); try again when it has finished"
        )
        self.lease = lease


def holder_id() -> str:
    """A holder id unique to this process and call: host, pid and a random part."""
    return f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _alive(lease: Lease) -> bool:
    """False only when the holder ran on this host and its process is gone; elsewhere only expiry frees it."""
    if lease.host != HOST:
        return True
    try:
        os.kill(lease.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Leases(Protocol):
    def acquire(self, thread_id: str, holder: str, ttl_s: float) -> Lease: ...
    def release(self, thread_id: str, holder: str) -> None: ...
    def current(self, thread_id: str) -> Lease | None: ...
    def close(self) -> None: ...


class MemoryLeases:
    """Leases of one process (the in-memory checkpointer); every instance shares the process's table."""

    _rows: dict[str, Lease] = {}
    _lock = threading.Lock()

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def acquire(self, thread_id: str, holder: str, ttl_s: float) -> Lease:
        with self._lock:
            now = self.clock()
            held = self._rows.get(thread_id)
            if held and held.holder != holder and held.expires_at > now and _alive(held):
                raise ThreadBusy(held)
            lease = Lease(thread_id, holder, HOST, os.getpid(), now + ttl_s)
            self._rows[thread_id] = lease
            return lease

    def release(self, thread_id: str, holder: str) -> None:
        with self._lock:
            if (held := self._rows.get(thread_id)) and held.holder == holder:
                del self._rows[thread_id]

    def current(self, thread_id: str) -> Lease | None:
        return self._rows.get(thread_id)

    def close(self) -> None:
        pass


SQLITE_DDL = (
    "CREATE TABLE IF NOT EXISTS thread_leases (thread_id TEXT PRIMARY KEY, holder TEXT NOT NULL, "
    "host TEXT NOT NULL, pid INTEGER NOT NULL, expires_at REAL NOT NULL)"
)


class SqliteLeases:
    """Leases in a SQLite file (by default the checkpoints file)."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.conn = sqlite3.connect(str(path), timeout=10, isolation_level=None, check_same_thread=False)
        self.conn.execute(SQLITE_DDL)

    def acquire(self, thread_id: str, holder: str, ttl_s: float) -> Lease:
        with transaction(self.conn) as conn:  # one writer at a time: check and take are one step
            held = self._row(thread_id)
            now = self.clock()
            if held and held.holder != holder and held.expires_at > now and _alive(held):
                raise ThreadBusy(held)
            lease = Lease(thread_id, holder, HOST, os.getpid(), now + ttl_s)
            conn.execute(
                "INSERT OR REPLACE INTO thread_leases (thread_id, holder, host, pid, expires_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (lease.thread_id, lease.holder, lease.host, lease.pid, lease.expires_at),
            )
        return lease

    def release(self, thread_id: str, holder: str) -> None:
        self.conn.execute("DELETE FROM thread_leases WHERE thread_id = ? AND holder = ?", (thread_id, holder))

    def current(self, thread_id: str) -> Lease | None:
        return self._row(thread_id)

    def _row(self, thread_id: str) -> Lease | None:
        row = self.conn.execute(
            "SELECT thread_id, holder, host, pid, expires_at FROM thread_leases WHERE thread_id = ?", (thread_id,)
        ).fetchone()
        return Lease(*row) if row else None

    def close(self) -> None:
        self.conn.close()


class PostgresLeases:
    """Leases in the checkpointer's Postgres database (needs psycopg, the `postgres` extra)."""

    def __init__(self, url: str, clock: Callable[[], float] = time.time) -> None:
        import psycopg

        self.clock = clock
        self.conn: Any = psycopg.connect(url, autocommit=True)
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS thread_leases (thread_id TEXT PRIMARY KEY, holder TEXT NOT NULL, "
            "host TEXT NOT NULL, pid INTEGER NOT NULL, expires_at DOUBLE PRECISION NOT NULL)"
        )

    def acquire(self, thread_id: str, holder: str, ttl_s: float) -> Lease:
        held = self._row(thread_id)
        if held and held.holder != holder and not _alive(held):
            # Its process on this host is gone: free it now, but only if nobody took it over meanwhile.
            self.conn.execute(
                "DELETE FROM thread_leases WHERE thread_id = %s AND holder = %s", (thread_id, held.holder)
            )
        now = self.clock()
        lease = Lease(thread_id, holder, HOST, os.getpid(), now + ttl_s)
        row = self.conn.execute(
            "INSERT INTO thread_leases (thread_id, holder, host, pid, expires_at) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (thread_id) DO UPDATE SET holder = EXCLUDED.holder, host = EXCLUDED.host, "
            "pid = EXCLUDED.pid, expires_at = EXCLUDED.expires_at "
            "WHERE thread_leases.expires_at <= %s OR thread_leases.holder = EXCLUDED.holder RETURNING holder",
            (lease.thread_id, lease.holder, lease.host, lease.pid, lease.expires_at, now),
        ).fetchone()
        if row is None:
            raise ThreadBusy(self._row(thread_id) or lease)
        return lease

    def release(self, thread_id: str, holder: str) -> None:
        self.conn.execute("DELETE FROM thread_leases WHERE thread_id = %s AND holder = %s", (thread_id, holder))

    def current(self, thread_id: str) -> Lease | None:
        return self._row(thread_id)

    def _row(self, thread_id: str) -> Lease | None:
        row = self.conn.execute(
            "SELECT thread_id, holder, host, pid, expires_at FROM thread_leases WHERE thread_id = %s", (thread_id,)
        ).fetchone()
        return Lease(*row) if row else None

    def close(self) -> None:
        self.conn.close()


def open_leases(target: str | Path, clock: Callable[[], float] = time.time) -> Leases:
    """The lease table beside the checkpointer `target` (a path, sqlite:///path, postgres://..., or memory)."""
    text = str(target)
    if text in ("memory", ":memory:"):
        return MemoryLeases(clock)
    if text.startswith(_POSTGRES):
        return PostgresLeases(text, clock)
    return SqliteLeases(sqlite_path(text), clock)


@contextmanager
def hold(
    target: str | Path, thread_id: str, *, ttl_s: float, clock: Callable[[], float] = time.time
) -> Iterator[Lease]:
    """Hold `thread_id`'s lease for the `with` block; raises ThreadBusy when another live run holds it."""
    leases = open_leases(target, clock)
    holder = holder_id()
    try:
        lease = leases.acquire(thread_id, holder, ttl_s)
        try:
            yield lease
        finally:
            leases.release(thread_id, holder)
    finally:
        leases.close()
