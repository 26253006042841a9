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

`CountingCache` refuses to store a result the node itself marked as failed (a specialist failure), so a failure
is never replayed, and counts lookups per node in `switchboard_cache_lookups_total`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from langgraph.cache.base import BaseCache, FullKey, Namespace
from langgraph.types import CachePolicy

from observability.metrics import record_cache


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def _files_fingerprint(paths: Sequence[Path]) -> str:
    parts = []
    for p in paths:
        try:
            st = p.stat()
            parts.append(f"{p}:{st.st_mtime_ns}:{st.st_size}")
        except OSError:
            parts.append(f"{p}:missing")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


class _Memo:
    """A value recomputed at most every `max_age_s` seconds (cheap fingerprints read per key)."""

    def __init__(self, fn: Callable[[], Any], max_age_s: float) -> None:
        self.fn, self.max_age_s = fn, max_age_s
        self._value: Any = None
        self._at = -1e18
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        now = time.monotonic()
        with self._lock:
            if now - self._at > self.max_age_s:
                self._value = self.fn()
                self._at = now
            return self._value


def _services_fingerprint(svc: Any) -> str:
    settings = svc.settings
    from graphs.services import classifier_dir

    cdir = classifier_dir(settings)
    files = [cdir / "manifest.json", settings.config_dir / "policy.yaml", settings.config_dir / "workflows.yaml"]
    return _files_fingerprint(files) + (":llm" if getattr(svc, "llm", None) is not None else "")


def classification_policy(services: Callable[[], Any], ttl: int | None) -> CachePolicy:
    fingerprints: dict[int, _Memo] = {}

    def key(state: Mapping[str, Any]) -> str:
        svc = services()
        memo = fingerprints.setdefault(id(svc), _Memo(lambda: _services_fingerprint(svc), 5.0))
        return _dump({
            "v": 1,
            "ticket": state.get("ticket", ""),
            "entities": state.get("entities") or {},
            "task": state.get("task") or {},
            "fingerprint": memo(),
        })

    return CachePolicy(key_func=key, ttl=ttl)


def shop_generation(shop: Any) -> str:
    """Changes with every write the shop's tools make (each is audited in the same transaction)."""
    row = shop.query(
        "SELECT (SELECT coalesce(max(rowid), 0) FROM audit_log) AS audit, "
        "(SELECT coalesce(max(rowid), 0) FROM action_ledger) AS ledger"
    )[0]
    return f"{row['audit']}:{row['ledger']}"


def retrieval_policy(services: Callable[[], Any], ttl: int | None) -> CachePolicy:
    kb_sizes: dict[int, _Memo] = {}

    def key(state: Mapping[str, Any]) -> str:
        owner = state.get("owner") or {}
        if not owner.get("tenant_id") or not owner.get("user_id"):
            return f"uncacheable:{uuid.uuid4()}"  # no owner, no sharing: a key nobody else can hit
        svc = services()
        memo = kb_sizes.setdefault(id(svc), _Memo(lambda: _dump(svc.knowledge.count()), 1.0))
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
            "shop": shop_generation(svc.shop),
            "today": svc.shop.now().date().isoformat(),
            "kb": memo(),
            "fingerprint": _services_fingerprint(svc),
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
    cache = SqliteCache(path=str(path))
    try:
        with cache._lock, cache._conn:
            cache._conn.execute("DELETE FROM cache WHERE expiry IS NOT NULL AND expiry < ?", (time.time(),))
    except sqlite3.Error:
        pass  # a busy file: pruned next time
    return CountingCache(cache)
