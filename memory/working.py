"""Working memory: per-thread task state (JSON values) in SQLite (or Postgres by URL) with a time-to-live.

Each `set()` (re)starts the entry's TTL. Expired entries are never returned: reads filter on the
expiry time and purge lazily, and `purge_expired()` removes them in bulk. The clock is injectable
so tests prove expiry without sleeping. The target is a SQLite file or a ``postgresql://`` URL (storage.sql), so
several server instances share one working memory.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from storage.sql import connect, is_postgres, sqlite_file, transaction

__all__ = ["WorkingMemory"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS working_memory (
    thread_id  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (thread_id, key)
);
CREATE INDEX IF NOT EXISTS working_memory_expiry ON working_memory (expires_at);
"""


class WorkingMemory:
    """Task state per conversation thread, each entry living `ttl_seconds` after its last write."""

    def __init__(
        self, path: Path | str, ttl_seconds: int = 86400, clock: Callable[[], float] = time.time
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self.target = str(path)
        self.path = None if is_postgres(path) else Path(path) if str(path) == ":memory:" else sqlite_file(path)
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._conn = connect(path, lock="working_memory")
        self._conn.executescript(_SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._lock, transaction(self._conn) as conn:
            yield conn

    def set(self, thread_id: str, key: str, value: Any) -> None:
        """Store a JSON-serialisable `value` under (thread, key), restarting its TTL."""
        encoded = json.dumps(value, sort_keys=True)  # raises TypeError for non-JSON values, before writing
        now = self._clock()
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO working_memory (thread_id, key, value, updated_at, expires_at) "
                "VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (thread_id, key) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at, expires_at = excluded.expires_at",
                (thread_id, key, encoded, now, now + self.ttl_seconds),
            )

    def get(self, thread_id: str, key: str, default: Any = None) -> Any:
        """The live value of (thread, key), or `default` if it is missing or expired."""
        self.purge_expired()
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM working_memory WHERE thread_id = ? AND key = ? AND expires_at > ?",
                (thread_id, key, self._clock()),
            ).fetchone()
        return json.loads(row[0]) if row else default

    def all(self, thread_id: str) -> dict[str, Any]:
        """Every live entry of a thread as a dict."""
        self.purge_expired()
        with self._lock:
            rows = self._conn.execute(
                "SELECT key, value FROM working_memory WHERE thread_id = ? AND expires_at > ? ORDER BY key",
                (thread_id, self._clock()),
            ).fetchall()
        return {key: json.loads(value) for key, value in rows}

    def delete(self, thread_id: str, key: str) -> bool:
        """Remove one entry; True if it existed."""
        with self._tx() as conn:
            cur = conn.execute("DELETE FROM working_memory WHERE thread_id = ? AND key = ?", (thread_id, key))
        return cur.rowcount > 0

    def clear(self, thread_id: str) -> int:
        """Remove every entry of a thread; returns how many were removed."""
        with self._tx() as conn:
            cur = conn.execute("DELETE FROM working_memory WHERE thread_id = ?", (thread_id,))
        return cur.rowcount

    def purge_expired(self) -> int:
        """Delete expired entries everywhere; returns how many were removed."""
        with self._tx() as conn:
            cur = conn.execute("DELETE FROM working_memory WHERE expires_at <= ?", (self._clock(),))
        return cur.rowcount

    def list_threads(self) -> list[dict[str, Any]]:
        """Live threads for the CLI inspector: thread_id, keys, updated_at and expires_at (epoch seconds)."""
        self.purge_expired()
        with self._lock:
            rows = self._conn.execute(
                "SELECT thread_id, COUNT(*), MAX(updated_at), MAX(expires_at) FROM working_memory "
                "WHERE expires_at > ? GROUP BY thread_id ORDER BY MAX(updated_at) DESC",
                (self._clock(),),
            ).fetchall()
        return [{"thread_id": t, "keys": n, "updated_at": u, "expires_at": e} for t, n, u, e in rows]

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> WorkingMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
