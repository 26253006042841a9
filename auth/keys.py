"""API keys: `sb_<key id>_<secret>`, stored as a sha256 hash (SQLite, or Postgres by URL), never in clear.

The key id (12 hex digits) is public: it names the key in `apikey list` and `apikey revoke`. The secret is
32 random bytes (urlsafe base64), so one sha256 is enough (no password stretching needed); the comparison
is constant-time. A revoked key stops working on the next request (nothing is cached).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from auth.identity import Identity, Role, parse_role
from storage.sql import connect, is_postgres, sqlite_file, table_exists, transaction

PREFIX = "sb_"
KEY_RE = re.compile(r"^sb_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id     TEXT PRIMARY KEY,
    key_hash   TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    tenant_id  TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('customer', 'agent', 'admin')),
    created_at TEXT NOT NULL,
    revoked_at TEXT
)
"""


class KeyRecord(BaseModel):
    """One stored key, without its secret."""

    model_config = ConfigDict(frozen=True)
    key_id: str
    user: str
    tenant: str
    role: Role
    created_at: str
    revoked_at: str | None = None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> tuple[str, str]:
    """(key id, full key)."""
    key_id = secrets.token_hex(6)
    return key_id, f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(key: str) -> str | None:
    """The key id of a well-formed key, else None (no database access for garbage)."""
    match = KEY_RE.match(key or "")
    return match.group(1) if match else None


class KeyStore:
    """API keys in one SQLite file or in Postgres (`target`: a path or a ``postgresql://`` URL, storage.sql), so
    every instance of a cluster accepts the same keys. One connection per store, serialised by a lock: safe from
    any thread. Reading creates nothing: a lookup before the first key was made finds no file and no table."""

    def __init__(self, target: Path | str) -> None:
        self.target = str(target)
        self.path = None if is_postgres(target) else sqlite_file(target)
        self._lock = threading.RLock()  # held for every statement: a revoke's transaction is its own
        self._conn: Any = None

    def _db(self, *, create: bool) -> Any:
        """The connection (schema created on first use), or None when nothing exists yet and `create` is False
        (typed Any: with `create` it is never None)."""
        with self._lock:
            if self._conn is None:
                if self.path is not None and not self.path.exists():
                    if not create:
                        return None
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self.path.touch(mode=0o600)
                conn = connect(self.target, lock="api_keys")
                try:
                    if not create and not table_exists(conn, "api_keys"):
                        conn.close()
                        return None
                    conn.executescript(SCHEMA)
                except BaseException:
                    conn.close()
                    raise
                self._conn = conn
            return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def create(self, user: str, tenant: str = "default", role: str = "customer") -> tuple[str, KeyRecord]:
        """A new key for `user`; returns (the key, shown once, and its record). ValueError on bad input."""
        identity = Identity(user_id=user, tenant_id=tenant, role=parse_role(role))
        key_id, key = new_key()
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._lock:
            self._db(create=True).execute(
                "INSERT INTO api_keys (key_id, key_hash, user_id, tenant_id, role, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, hash_key(key), identity.user_id, identity.tenant_id, identity.role, now),
            )
        return key, KeyRecord(
            key_id=key_id, user=identity.user_id, tenant=identity.tenant_id, role=identity.role, created_at=now
        )

    def lookup(self, key: str) -> Identity | None:
        """The identity of a valid, unrevoked key; None for anything else."""
        key_id = key_id_of(key)
        if key_id is None:
            return None
        with self._lock:
            conn = self._db(create=False)
            found = None if conn is None else conn.execute("SELECT * FROM api_keys WHERE key_id = ?", (key_id,))
            row = None if found is None else found.fetchone()
        if row is None or row["revoked_at"] is not None:
            return None
        if not hmac.compare_digest(row["key_hash"], hash_key(key)):
            return None
        return Identity(user_id=row["user_id"], tenant_id=row["tenant_id"], role=row["role"], key_id=key_id)

    def list(self) -> list[KeyRecord]:
        with self._lock:
            conn = self._db(create=False)
            rows = [] if conn is None else conn.execute("SELECT * FROM api_keys ORDER BY created_at, key_id").fetchall()
        return [_record(r) for r in rows]

    def revoke(self, key_id: str) -> KeyRecord:
        """Revoke a key by id. KeyError if unknown, ValueError if already revoked."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._lock, transaction(self._db(create=True)) as conn:
            row = conn.execute("SELECT * FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
            if row is None:
                raise KeyError(key_id)
            if row["revoked_at"] is not None:
                raise ValueError(f"key {key_id} was already revoked at {row['revoked_at']}")
            conn.execute("UPDATE api_keys SET revoked_at = ? WHERE key_id = ?", (now, key_id))
            row = conn.execute("SELECT * FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        return _record(row)


def _record(row: Any) -> KeyRecord:
    return KeyRecord(
        key_id=row["key_id"],
        user=row["user_id"],
        tenant=row["tenant_id"],
        role=row["role"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )
