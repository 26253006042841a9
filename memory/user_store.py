"""Per-user memory in the LangGraph store: a customer's preferences and their cross-thread working memory.

Nodes reach the store through `runtime.store`: under `langgraph dev` / the served API it is the server's store
(Studio's memory view shows it), in-process (`graphs.tickets.open_switchboard`) the store `open_store` opens at
`Settings.store_target`: embedded SQLite, or LangGraph's PostgresStore with the database URL (every instance sees the
same memory), both with TTL support. Namespaces are the caller's, from `runtime.context` (`Context.namespace`,
the prefix the served API's store auth allows a customer):

- ``(tenant, user, "prefs")``: one item per preference key, ``{"value": ...}``, kept until `forget_user`;
- ``(tenant, user, "working")``: what the user's latest tickets did (``last_action``: tool, ok, thread), with a
  time-to-live (policy.yaml `working_memory.ttl_seconds`), visible from every thread of that user.

Every read builds the namespace from the caller's context and drops an item whose namespace is not exactly it.
A store label cannot hold "." (LangGraph's rule), so ids are written with "." as "%2E" ("%" is not an id character).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langgraph.store.base import BaseStore

from graphs.context import Context
from storage.sql import connect, is_postgres

__all__ = [
    "PREFS",
    "WORKING",
    "forget_user",
    "load_preferences",
    "load_working",
    "namespace_of",
    "note_working",
    "open_store",
    "store_exists",
    "save_preferences",
]

PREFS, WORKING = "prefs", "working"
_LIMIT = 1000  # preferences / working entries one user has are a handful; search pages default to 10
log = logging.getLogger("switchboard.memory")


def store_label(value: str) -> str:
    """An id as a store namespace label (the auth handler scopes namespaces with the same labels)."""
    return value.replace(".", "%2E")


def namespace_of(ctx: Context, kind: str) -> tuple[str, ...]:
    """The store namespace of the context's customer for `kind` (prefs or working)."""
    if kind not in (PREFS, WORKING):
        raise ValueError(f"unknown user memory kind {kind!r}: use {PREFS!r} or {WORKING!r}")
    return tuple(store_label(part) for part in ctx.namespace(kind))


def _items(store: BaseStore, ctx: Context, kind: str) -> list[Any]:
    """The caller's items of `kind`; an item the store returns from any other namespace is dropped."""
    namespace = namespace_of(ctx, kind)
    items = store.search(namespace, limit=_LIMIT)
    mine = [item for item in items if tuple(item.namespace) == namespace]
    if len(mine) != len(items):
        log.warning("store returned %d item(s) outside %s: dropped", len(items) - len(mine), namespace)
    return mine


def save_preferences(store: BaseStore, ctx: Context, prefs: Mapping[str, Any]) -> int:
    """Remember preferences of the context's customer (a later value for a key replaces it); returns how many."""
    namespace = namespace_of(ctx, PREFS)
    for key, value in prefs.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"a preference key must be a non-empty string, not {key!r}")
        store.put(namespace, key, {"value": value}, index=False)
    return len(prefs)


def load_preferences(store: BaseStore | None, ctx: Context) -> dict[str, Any]:
    """Every preference of the context's customer ({} without a store)."""
    if store is None:
        return {}
    return {item.key: item.value.get("value") for item in _items(store, ctx, PREFS)}


def note_working(
    store: BaseStore,
    ctx: Context,
    key: str,
    value: Mapping[str, Any],
    *,
    ttl_seconds: float,
    clock: Callable[[], float] = time.time,
) -> None:
    """Write one entry of the customer's cross-thread working memory, living `ttl_seconds` from now.

    The expiry is kept in the item (reads skip an expired entry whatever the store) and, where the store supports
    TTLs, given to the store too, so its sweeper deletes the item."""
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    item = {**value, "expires_at": clock() + ttl_seconds}
    ttl = ttl_seconds / 60 if store.supports_ttl else None
    store.put(namespace_of(ctx, WORKING), key, item, index=False, ttl=ttl)


def load_working(
    store: BaseStore | None, ctx: Context, *, clock: Callable[[], float] = time.time
) -> dict[str, dict[str, Any]]:
    """The customer's live working-memory entries by key ({} without a store)."""
    if store is None:
        return {}
    now = clock()
    return {
        item.key: dict(item.value)
        for item in _items(store, ctx, WORKING)
        if float(item.value.get("expires_at", 0)) > now
    }


def forget_user(store: BaseStore, tenant_id: str, user_id: str) -> int:
    """Delete the customer's preferences and working memory (right to be forgotten); returns how many went."""
    ctx = Context(tenant_id=tenant_id, user_id=user_id)
    removed = 0
    for kind in (PREFS, WORKING):
        for item in _items(store, ctx, kind):
            store.delete(namespace_of(ctx, kind), item.key)
            removed += 1
    return removed


@contextmanager
def open_store(target: Path | str) -> Iterator[BaseStore]:
    """The store of in-process runs (`Settings.store_target`): LangGraph's PostgresStore for a ``postgresql://``
    URL, so every instance reads the same per-user memory, else SQLite at the path. Its tables are set up (migrations
    run once, idempotent) and expired items swept when it opens."""
    target = str(target)
    store: Any
    if is_postgres(target):
        from langgraph.store.postgres import PostgresStore

        with PostgresStore.from_conn_string(target, ttl={"refresh_on_read": False}) as store:
            _setup_once(store, target)
            store.sweep_ttl()
            yield store
        return
    from langgraph.store.sqlite import SqliteStore

    Path(target).parent.mkdir(parents=True, exist_ok=True)
    with SqliteStore.from_conn_string(target, ttl={"refresh_on_read": False}) as store:
        store.setup()
        store.sweep_ttl()
        yield store


def _setup_once(store: Any, url: str, timeout_s: float = 30.0) -> None:
    """`store.setup()` (migrations, idempotent) one instance at a time: instances starting at once would apply the
    same migration twice. The lock is a session advisory lock taken with `pg_try_advisory_lock` between short
    statements, never while a transaction is open: a migration's CREATE INDEX CONCURRENTLY waits for every open
    transaction, a waiting one included."""
    conn = connect(url, lock="langgraph_store")
    deadline = time.monotonic() + timeout_s
    try:
        while not conn.execute("SELECT pg_try_advisory_lock(?)", (conn.lock_key,)).fetchone()[0]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"another instance held the store's setup lock for {timeout_s:g} s")
            time.sleep(0.05)
        try:
            store.setup()
        finally:
            conn.execute("SELECT pg_advisory_unlock(?)", (conn.lock_key,))
    finally:
        conn.close()


def store_exists(target: Path | str) -> bool:
    """True when there is a store to read (reading a SQLite path that does not exist would create it)."""
    return is_postgres(target) or Path(target).exists()
