"""Response caching for the deterministic, expensive steps: LangGraph `CachePolicy` with keys that hold
everything the step's result depends on, and a cache wrapper that counts hits and misses.

    g.add_node("classify_intent", fn, cache_policy=classification_policy(provider, ttl))
    graph = builder.compile(cache=CountingCache(InMemoryCache()))     # or SqliteCache under the data dir

- classification depends on the ticket text, the slots and the active task it is read against, and on the
  classifier and thresholds (their files' fingerprint); it does not depend on who asks.
- retrieval depends on who asks (`owner`: tenant and customer, set at the ticket's start; their cases and orders
  are theirs), on the ticket, intent, slots and task, on the shop's data (its write generation: any write tool's
  audit row changes the key) and the knowledge base (its size), and on today's date (relative dates resolve
  against it). A state without an owner is never served from the cache.
- keys never do I/O (they run on the server's event loop): what lies outside the state is read from
  `Fingerprints`, refreshed in the background (see there).

`CountingCache` refuses to store a result the node itself marked as failed (a specialist failure), so a failure
is never replayed, and counts lookups per node in `switchboard_cache_lookups_total`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from langgraph.cache.base import BaseCache, FullKey, Namespace
from langgraph.types import CachePolicy

from observability.metrics import record_cache

log = logging.getLogger("switchboard.cache")


def _dump(value: Any) -> str:
    # ASCII escapes: a key is encoded to bytes for hashing, and a lone surrogate in a ticket must not crash the run
    return json.dumps(value, sort_keys=True, default=str)


def _files_fingerprint(paths: Sequence[Path]) -> str:
    parts = []
    for p in paths:
        try:
            st = p.stat()
            parts.append(f"{p}:{st.st_mtime_ns}:{st.st_size}")
        except OSError:
            parts.append(f"{p}:missing")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


_CODE_FINGERPRINT: str | None = None


def code_fingerprint() -> str:
    """The project's Python sources (path, mtime, size), once per process: a persistent cache (SqliteCache under
    the data dir) must not answer with what an earlier version of the code computed."""
    global _CODE_FINGERPRINT
    if _CODE_FINGERPRINT is None:
        root = Path(__file__).resolve().parent.parent
        packages = ("auth", "classifier", "config", "dialogue", "graphs", "guards", "llm", "memory", "nodes",
                    "observability", "storage", "tools")
        _CODE_FINGERPRINT = _files_fingerprint(sorted(p for d in packages for p in (root / d).glob("*.py")))
    return _CODE_FINGERPRINT


def shop_generation(shop: Any) -> str:
    """Changes with every write the shop's tools make (each is audited in the same transaction)."""
    row = shop.query(
        "SELECT (SELECT coalesce(max(rowid), 0) FROM audit_log) AS audit, "
        "(SELECT coalesce(max(rowid), 0) FROM action_ledger) AS ledger"
    )[0]
    return f"{row['audit']}:{row['ledger']}"


class Fingerprints:
    """What cached results depend on outside the state, read without I/O.

    Cache keys are computed on the graph's own loop (under the served API: the event loop, where no blocking
    call may run), so the shop's write generation, the knowledge base's size and the classifier's and config
    files' fingerprint are refreshed by a daemon thread every `interval_s` and only read by the keys. A write
    made in this process through `execute_action` bumps `local_writes` at once (`note_write`); one made by
    another process is seen within `interval_s`. Until the first refresh, keys are uncacheable.
    """

    def __init__(self, svc: Any, interval_s: float = 1.0) -> None:
        # Weak: the refresher of a Services object nobody holds any more stops (tests build hundreds of them).
        self._svc, self.interval_s = weakref.ref(svc), interval_s
        self.values: dict[str, Any] | None = None
        self.local_writes = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def refresh(self) -> dict[str, Any]:
        """Recompute now (the refresher thread; tests)."""
        svc = self.svc
        if svc is None:
            raise LookupError("the services this refresher served are gone")
        settings = svc.settings
        files = [settings.intent_model_dir / "manifest.json", settings.config_dir / "policy.yaml",
                 settings.config_dir / "workflows.yaml"]
        values = {
            "files": _files_fingerprint(files) + (":llm" if getattr(svc, "llm", None) is not None else "")
            + ":" + code_fingerprint(),
            "shop": shop_generation(svc.shop),
            "kb": _dump(svc.knowledge.count()),
        }
        self.values = values
        return values

    @property
    def svc(self) -> Any:
        return self._svc()

    def _run(self) -> None:
        while self.svc is not None:
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - a failed refresh keeps the last values; the next one retries
                log.debug("fingerprint refresh failed", exc_info=True)
            time.sleep(self.interval_s)  # a background poll, never on a request path

    def get(self) -> dict[str, Any] | None:
        """The latest values, or None before the first refresh (starts the refresher). Never blocks on an event
        loop; a caller without one (the CLI, a sync invoke) gets the first values computed at once."""
        if self.values is None and not _on_event_loop():
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - uncacheable until the refresher succeeds
                log.debug("fingerprint refresh failed", exc_info=True)
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="switchboard-cache-fingerprints", daemon=True
                    )
                    self._thread.start()
        return self.values


def _on_event_loop() -> bool:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


_fingerprints: dict[int, Fingerprints] = {}
_fp_lock = threading.Lock()


def fingerprints(svc: Any) -> Fingerprints:
    """The refresher of one Services object (one per object per process)."""
    with _fp_lock:
        fp = _fingerprints.get(id(svc))
        if fp is None or fp.svc is not svc:
            fp = _fingerprints[id(svc)] = Fingerprints(svc)
        return fp


def note_write(svc: Any) -> None:
    """A write tool ran in this process: cached retrievals made before it are not served again."""
    fp = fingerprints(svc)
    with fp._lock:
        fp.local_writes += 1


def _uncacheable() -> str:
    return f"uncacheable:{uuid.uuid4()}"  # a key nobody can hit again


def _built(services: Callable[[], Any], peek: Callable[[], Any] | None) -> Any:
    """The Services a key is computed from, or None. On an event loop (the server's run loop, or the server drawing
    the graph for Studio's `/assistants/{id}/graph`, which computes every node's key on placeholder input) a key
    must not build them (file, model and database I/O): `peek` returns them only once built, else the key is
    uncacheable. Off the loop (a sync invoke, the CLI) they are built as usual."""
    if peek is not None and _on_event_loop():
        return peek()
    return services()


def classification_policy(
    services: Callable[[], Any], ttl: int | None, *, peek: Callable[[], Any] | None = None
) -> CachePolicy:
    def key(state: Mapping[str, Any]) -> str:
        svc = _built(services, peek)
        values = fingerprints(svc).get() if svc is not None else None
        if values is None:
            return _uncacheable()
        return _dump({
            "v": 1,
            "ticket": state.get("ticket", ""),
            "entities": state.get("entities") or {},
            "task": state.get("task") or {},
            "files": values["files"],
        })

    return CachePolicy(key_func=key, ttl=ttl)


def retrieval_policy(
    services: Callable[[], Any], ttl: int | None, *, peek: Callable[[], Any] | None = None
) -> CachePolicy:
    def key(state: Mapping[str, Any]) -> str:
        owner = state.get("owner") or {}
        if not owner.get("tenant_id") or not owner.get("user_id"):
            return _uncacheable()  # no owner, no sharing
        svc = _built(services, peek)
        if svc is None:
            return _uncacheable()
        fp = fingerprints(svc)
        values = fp.get()
        if values is None:
            return _uncacheable()
        pinned = (state.get("pinned") or {}).get("order_ids") or []
        return _dump({
            "v": 1,
            "owner": [owner["tenant_id"], owner["user_id"]],
            "ticket": state.get("ticket", ""),
            "intent": state.get("intent"),
            "decision": state.get("decision"),
            "entities": state.get("entities") or {},
            "task": state.get("task") or {},
            "pinned": pinned[-1:],
            "lookups": state.get("lookups") or {},
            "failures": ((state.get("failures") or {}).get("retrieve_knowledge") or {}).get("count", 0),
            "today": svc.shop.now().date().isoformat(),
            "local_writes": fp.local_writes,
            **values,
        })

    return CachePolicy(key_func=key, ttl=ttl)


def _failed(writes: Any) -> bool:
    """True when a node's cached writes record a specialist failure (never replay those)."""
    try:
        for channel, value in writes or ():
            if channel == "failures" and isinstance(value, Mapping):
                if any(isinstance(v, Mapping) and v.get("count") for v in value.values()):
                    return True
    except (TypeError, ValueError):
        return True
    return False


class CountingCache(BaseCache):
    """Wraps a LangGraph cache: counts hits and misses per node, and never stores a failed result."""

    def __init__(self, inner: BaseCache) -> None:
        super().__init__(serde=inner.serde)
        self.inner = inner

    @staticmethod
    def _count(keys: Sequence[FullKey], found: Mapping[FullKey, Any]) -> None:
        by_node: dict[str, list[int]] = {}
        for key in keys:
            node = str(key[0][-1]) if key[0] else "none"
            tally = by_node.setdefault(node, [0, 0])
            tally[0 if key in found else 1] += 1
        for node, (hits, misses) in by_node.items():
            record_cache(node, hits, misses)

    def get(self, keys: Sequence[FullKey]) -> dict[FullKey, Any]:
        found = self.inner.get(keys)
        self._count(keys, found)
        return found

    async def aget(self, keys: Sequence[FullKey]) -> dict[FullKey, Any]:
        found = await self.inner.aget(keys)
        self._count(keys, found)
        return found

    def set(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> None:
        kept = {k: v for k, v in pairs.items() if not _failed(v[0])}
        if kept:
            self.inner.set(kept)

    async def aset(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> None:
        kept = {k: v for k, v in pairs.items() if not _failed(v[0])}
        if kept:
            await self.inner.aset(kept)

    def clear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        self.inner.clear(namespaces)

    async def aclear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        await self.inner.aclear(namespaces)


def memory_cache(max_entries: int = 2000) -> CountingCache:
    """A per-process cache (the server): expired entries are pruned and at most `max_entries` are kept."""
    from langgraph.cache.memory import InMemoryCache

    class BoundedMemoryCache(InMemoryCache):
        def set(self, keys: Mapping[FullKey, tuple[Any, int | None]]) -> None:
            super().set(keys)
            with self._lock:
                now = time.time()
                for ns in list(self._cache):
                    entries = self._cache[ns]
                    for key in [k for k, (_, _, exp) in entries.items() if exp is not None and exp <= now]:
                        del entries[key]
                    while len(entries) > max_entries:
                        del entries[next(iter(entries))]  # oldest first (insertion order)

    return CountingCache(BoundedMemoryCache())


def sqlite_cache(path: Path) -> CountingCache:
    """A cache file that outlives the process (the CLI runs one ticket per process); expired rows are removed
    when it is opened."""
    import sqlite3

    from langgraph.cache.sqlite import SqliteCache

    path.parent.mkdir(parents=True, exist_ok=True)
    cache: SqliteCache[Any] = SqliteCache(path=str(path))
    try:
        with cache._lock, cache._conn:
            cache._conn.execute("DELETE FROM cache WHERE expiry IS NOT NULL AND expiry < ?", (time.time(),))
    except sqlite3.Error:
        pass  # a busy file: pruned next time
    return CountingCache(cache)
