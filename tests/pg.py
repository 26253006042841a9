"""Postgres and Redis for the tests: reachability, and a fresh database per test (as libs/langgraph's fixtures do).

`SWITCHBOARD_TEST_POSTGRES_URL` names a database to connect to for creating and dropping the per-test databases
(default: the `postgres` database at 127.0.0.1:5432, trust auth); `SWITCHBOARD_TEST_REDIS_URL` a Redis server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

ADMIN_URL = os.environ.get("SWITCHBOARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SWITCHBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def postgres_problem(url: str = ADMIN_URL) -> str | None:
    """Why Postgres cannot be used for the tests, or None when it can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'switchboard[postgres]')"
    try:
        with psycopg.connect(url, connect_timeout=2):
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"PostgreSQL not reachable at {url}: {type(exc).__name__}: {str(exc).strip()[:200]}"


def redis_problem(url: str = REDIS_URL) -> str | None:
    """Why Redis cannot be used for the tests, or None when it can."""
    try:
        import redis
    except ImportError:
        return "the redis client is not installed (pip install redis)"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
        return None
    except Exception as exc:  # noqa: BLE001
        return f"Redis not reachable at {url}: {type(exc).__name__}: {exc}"


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@contextmanager
def fresh_database(prefix: str = "sbtest", admin_url: str = ADMIN_URL) -> Iterator[str]:
    """Create an empty database, yield its URL, and drop it afterwards (closing whatever still uses it)."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
