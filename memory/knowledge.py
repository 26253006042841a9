"""Long-term memory in Chroma: knowledge-base chunks and resolved cases, one collection per namespace.

No Chroma embedding function: the project's embedder computes every vector and Chroma only stores and searches
them (cosine space). Collections (`memory.namespaces`): a tenant's knowledge base (``user_id="*"``), the cases a
tenant shares, and one user's own cases (problem, cause, fix, outcome, intent).

Every record carries ``tenant_id`` and ``user_id``; a retrieval opens only the caller's collections and checks
both ids again on the way out, so a user never sees another user's records and a tenant never sees another
tenant's. Results are ranked by
``relevance_weight * (1 - cosine distance) + recency_weight * 0.5 ** (age_days / half_life_days)``; knowledge-base
relevance also blends a lexical score (`memory.lexical`). Articles are parsed and chunked in `memory.articles`.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import urlsplit

import numpy as np
from chromadb.errors import NotFoundError

from memory.articles import Article, _as_list, chunk_ids, chunk_markdown, digest, load_articles, parse_markdown
from memory.embedder import Embedder
from memory.lexical import LexicalIndex
from memory.namespaces import (
    CASES,
    HNSW,
    KB,
    PREFS,
    SHARED,
    SHARED_USER,
    check_prefix,
    collection_name,
    count_key,
)

__all__ = [
    "Article",
    "ChromaMemory",
    "Embedder",
    "Hit",
    "LongTermMemory",
    "ResolvedCase",
    "UpsertReport",
    "chunk_markdown",
    "load_articles",
    "parse_markdown",
]

_DAY = 86400.0


@dataclass
class ResolvedCase:
    """A support case that was resolved: what went wrong, why, what fixed it, how it ended."""

    problem: str
    cause: str
    fix: str
    outcome: str = "resolved"
    intent: str | None = None
    id: str | None = None


@dataclass
class Hit:
    """One retrieved record with its blended score and the two parts of it."""

    id: str
    article_id: str | None
    title: str
    text: str
    metadata: dict[str, Any]
    score: float
    relevance: float
    recency: float


@dataclass
class UpsertReport:
    """What `upsert_articles` changed."""

    articles: int = 0
    chunks_added: int = 0
    chunks_unchanged: int = 0
    chunks_removed: int = 0


@runtime_checkable
class LongTermMemory(Protocol):
    """The long-term memory the graph and the CLI depend on (Chroma in production, fakes in tests)."""

    def upsert_articles(self, articles: list[Article]) -> UpsertReport: ...

    def article_text(self, article_id: str, *, tenant_id: str = "default") -> str: ...

    def known_issues(self, *, tenant_id: str = "default") -> list[dict[str, Any]]: ...

    def search_knowledge(
        self,
        query: str,
        *,
        tenant_id: str = "default",
        k: int | None = None,
        intents: list[str] | None = None,
    ) -> list[Hit]: ...

    def add_case(self, case: ResolvedCase, *, tenant_id: str, user_id: str, shared: bool) -> str: ...

    def search_cases(self, query: str, *, tenant_id: str, user_id: str, k: int = 3) -> list[Hit]: ...

    def count(self) -> dict[str, int]: ...

    def forget_user(self, tenant_id: str, user_id: str) -> int: ...


T = TypeVar("T")


class ChromaMemory:
    """`LongTermMemory` on Chroma with one collection per namespace and relevance + recency ranking.

    Layout (each name is ``{prefix}_{code}_{hash}``, the hash a 128-bit BLAKE2b of the tenant id, or of
    the tenant and user ids):

    - ``kb``: one per tenant, its knowledge-base chunks;
    - ``sc``: one per tenant, the cases it shares tenant-wide (``add_case(..., shared=True)``);
    - ``uc``: one per (tenant, user), the user's own cases;
    - ``up``: one per (tenant, user), preferences written before they moved to the LangGraph store; no longer
      read or written, only counted and dropped by `forget_user`.

    A retrieval for (tenant, user) opens only that user's collections and the tenant's, so no metadata
    filter separates namespaces (Chroma's local engine filters metadata slowly at scale) and isolation is
    structural; every result is still checked against its ``tenant_id`` / ``user_id`` on the way out.
    Collection handles are cached per instance (thread-safe); reads never create a collection.
    """

    def __init__(
        self,
        client: Any,
        embedder: Embedder,
        *,
        top_k: int = 5,
        relevance_weight: float = 0.7,
        recency_weight: float = 0.3,
        half_life_days: float = 30,
        min_relevance: float = 0.25,
        clock: Callable[[], float] = time.time,
        prefix: str = "switchboard",
        lexical_weight: float = 0.4,
        lexical_cache: Path | None = None,
    ) -> None:
        check_prefix(prefix)
        self.client = client
        self.embedder = embedder
        self.top_k = top_k
        self.relevance_weight = relevance_weight
        self.recency_weight = recency_weight
        self.half_life_days = half_life_days
        self.min_relevance = min_relevance
        self.clock = clock
        self.prefix = prefix
        self._handles: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._batch = int(getattr(client, "get_max_batch_size", lambda: 5000)())
        # Knowledge-base relevance = (1 - w) * MiniLM cosine + w * character n-gram TF-IDF cosine; w was chosen on
        # Bitext questions outside the benchmark's held-out split (recall@5 0.933 -> 0.951 there).
        self.lexical_weight = lexical_weight
        self._lexical = LexicalIndex(lexical_cache)  # fitted indexes kept on disk there, when given
        self._articles: dict[tuple[str, str], str] = {}  # whole-article texts, cleared on every write

    @classmethod
    def persistent(cls, path: Path | str, embedder: Embedder, **kwargs: Any) -> ChromaMemory:
        """Open (or create) a Chroma store on disk at `path`."""
        import chromadb
        from chromadb.config import Settings

        Path(path).mkdir(parents=True, exist_ok=True)
        client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
        return cls(client, embedder, **kwargs)

    @classmethod
    def http(cls, url: str, embedder: Embedder, **kwargs: Any) -> ChromaMemory:
        """A Chroma server (`chroma run`) at ``http(s)://host:port``, shared by every instance that names it.

        Vectors are still computed here by `embedder` (collections carry no embedding function), so the server
        never runs an embedding model of its own.
        """
        import chromadb
        from chromadb.config import Settings

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"Chroma server URL must look like http://HOST:PORT, not {url!r}")
        client = chromadb.HttpClient(
            host=parts.hostname,
            port=parts.port or (443 if parts.scheme == "https" else 8000),
            ssl=parts.scheme == "https",
            settings=Settings(anonymized_telemetry=False),
        )
        return cls(client, embedder, **kwargs)

    @classmethod
    def open(cls, target: Path | str, embedder: Embedder, **kwargs: Any) -> ChromaMemory:
        """A Chroma server when `target` is an http(s) URL (settings.chroma_url), else the embedded store there."""
        text = str(target)
        if text.startswith(("http://", "https://")):
            return cls.http(text, embedder, **kwargs)
        return cls.persistent(text, embedder, **kwargs)

    @classmethod
    def ephemeral(cls, embedder: Embedder, **kwargs: Any) -> ChromaMemory:
        """An in-memory store (Chroma shares ephemeral clients in a process, so each gets its own prefix)."""
        import chromadb
        from chromadb.config import Settings

        client = chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False))
        kwargs.setdefault("prefix", f"eph{uuid.uuid4().hex[:12]}")
        return cls(client, embedder, **kwargs)

    # ------------------------------------------------------------------------------- collections
    def collection_name(self, kind: str, tenant_id: str, user_id: str | None = None) -> str:
        """Chroma name of a namespace's collection; `kind` is kb, shared_cases, cases or prefs."""
        return collection_name(self.prefix, kind, tenant_id, user_id)

    def collection(
        self, kind: str, tenant_id: str, user_id: str | None = None, *, create: bool = False
    ) -> Any:
        """The cached handle of a namespace's collection; None if it does not exist and `create` is false."""
        name = self.collection_name(kind, tenant_id, user_id)
        handle = self._handles.get(name)
        if handle is not None:
            return handle
        with self._lock:
            handle = self._handles.get(name)
            if handle is not None:
                return handle
            if create:
                # embedding_function=None: Chroma's default function downloads a model and must never run.
                handle = self.client.get_or_create_collection(
                    name,
                    embedding_function=None,
                    configuration={"hnsw": dict(HNSW)},
                    metadata={"kind": kind, "tenant_id": tenant_id, "user_id": user_id or SHARED_USER},
                )
            else:
                try:
                    handle = self.client.get_collection(name, embedding_function=None)
                except NotFoundError:
                    return None  # not cached: another writer may create it later
            self._handles[name] = handle
            return handle

    def _drop_handle(self, name: str) -> None:
        with self._lock:
            self._handles.pop(name, None)

    def _on(
        self,
        kind: str,
        tenant_id: str,
        user_id: str | None,
        action: Callable[[Any], T],
        default: T,
        *,
        create: bool = False,
    ) -> T:
        """Run `action` on a namespace's collection (`default` if it is absent), re-resolving the handle once
        if the collection was deleted behind the cache (e.g. `forget_user` in another process)."""
        for attempt in range(2):
            handle = self.collection(kind, tenant_id, user_id, create=create)
            if handle is None:
                return default
            try:
                return action(handle)
            except NotFoundError:
                self._drop_handle(handle.name)
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def collection_names(self) -> list[str]:
        """Names of every collection of this store (this prefix), sorted."""
        return sorted(c.name for c in self.client.list_collections() if c.name.startswith(f"{self.prefix}_"))

    # ---------------------------------------------------------------------------------- helpers
    def _embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self.embedder.embed(texts), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise ValueError(f"embedder returned shape {vectors.shape} for {len(texts)} texts")
        return vectors

    def _write(
        self,
        kind: str,
        tenant_id: str,
        user_id: str | None,
        ids: list[str],
        docs: list[str],
        metas: list[dict[str, Any]],
        vectors: np.ndarray,
    ) -> None:
        def write(collection: Any) -> None:
            for start in range(0, len(ids), self._batch):
                end = start + self._batch
                collection.upsert(
                    ids=ids[start:end],
                    documents=docs[start:end],
                    metadatas=metas[start:end],
                    embeddings=vectors[start:end],
                )

        self._on(kind, tenant_id, user_id, write, None, create=True)

    def recency(self, ts: float | None) -> float:
        """exp(-ln 2 * age_days / half_life): 1.0 for now, 0.5 one half-life ago."""
        if ts is None:
            return 0.0
        age_days = max(0.0, self.clock() - float(ts)) / _DAY
        return math.exp(-math.log(2) * age_days / self.half_life_days) if self.half_life_days > 0 else 1.0

    def _query(
        self,
        kind: str,
        tenant_id: str,
        user_id: str | None,
        vector: np.ndarray,
        n: int,
        allowed: Callable[[dict[str, Any]], bool],
        where: dict[str, Any] | None = None,
    ) -> list[Hit]:
        result = self._on(
            kind,
            tenant_id,
            user_id,
            lambda c: c.query(
                query_embeddings=vector,
                n_results=max(1, n),
                where=where,
                include=["documents", "metadatas", "distances"],
            ),
            None,
        )
        if result is None:
            return []
        hits: list[Hit] = []
        for rid, doc, meta, dist in zip(
            result["ids"][0],
            result["documents"][0],
            result["metadatas"][0],
            result["distances"][0],
            strict=True,
        ):
            meta = dict(meta or {})
            if not allowed(meta):  # defence in depth: never trust the layout alone
                continue
            relevance = 1.0 - float(dist)
            if relevance < self.min_relevance:
                continue
            recency = self.recency(meta.get("ts"))
            score = self.relevance_weight * relevance + self.recency_weight * recency
            hits.append(
                Hit(
                    rid,
                    meta.get("article_id"),
                    str(meta.get("title", "")),
                    doc or "",
                    meta,
                    score,
                    relevance,
                    recency,
                )
            )
        hits.sort(key=lambda h: (-h.score, h.id))
        return hits

    # ----------------------------------------------------------------------------------- articles
    def upsert_articles(self, articles: list[Article]) -> UpsertReport:
        """Chunk and store articles; unchanged chunks are kept, changed or vanished ones replaced."""
        self._lexical.clear()
        self._articles.clear()
        report = UpsertReport(articles=len(articles))
        by_tenant: dict[str, list[Article]] = {}
        for article in articles:
            by_tenant.setdefault(article.tenant_id, []).append(article)
        for tenant_id, group in by_tenant.items():
            kb = self.collection(KB, tenant_id, create=True)
            ids: list[str] = []
            docs: list[str] = []
            metas: list[dict[str, Any]] = []
            embed_texts: list[str] = []
            stale: list[str] = []
            for article in group:
                existing = set(kb.get(where={"article_id": article.id}, include=[])["ids"])
                wanted = chunk_ids(article)
                stale += sorted(existing - wanted.keys())
                report.chunks_removed += len(existing - wanted.keys())
                report.chunks_unchanged += len(existing & wanted.keys())
                for cid, (index, chunk) in wanted.items():
                    if cid in existing:
                        continue
                    ids.append(cid)
                    docs.append(chunk)
                    metas.append(self._chunk_meta(article, index))
                    embed_texts.append(f"{article.title}\n{chunk}")
            if ids:
                self._write(KB, tenant_id, None, ids, docs, metas, self._embed(embed_texts))
            if stale:
                kb.delete(ids=stale)
            report.chunks_added += len(ids)
        return report

    def _chunk_meta(self, article: Article, index: int) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "tenant_id": article.tenant_id,
            "user_id": SHARED_USER,
            "article_id": article.id,
            "title": article.title,
            "kind": article.kind,
            "chunk": index,
            "ts": article.updated if article.updated is not None else self.clock(),
        }
        if article.source:
            meta["source"] = article.source
        for key in ("intents", "error_codes", "exceptions", "http_status"):
            if getattr(article, key):
                meta[key] = list(getattr(article, key))
        return meta

    def delete_article(self, article_id: str, *, tenant_id: str = "default") -> int:
        """Remove every chunk of one article; returns how many chunks went."""
        self._lexical.clear()
        self._articles.clear()

        def delete(kb: Any) -> int:
            ids = kb.get(where={"article_id": article_id}, include=[])["ids"]
            if ids:
                kb.delete(ids=ids)
            return len(ids)

        return self._on(KB, tenant_id, None, delete, 0)

    def article_text(self, article_id: str, *, tenant_id: str = "default") -> str:
        """The whole article, its chunks joined in order ("" when the tenant has no such article)."""
        key = (tenant_id, article_id)
        if key not in self._articles:

            def read(kb: Any) -> str:
                got = kb.get(where={"article_id": article_id}, include=["documents", "metadatas"])
                parts = sorted(zip(got["metadatas"], got["documents"], strict=True), key=lambda p: p[0].get("chunk", 0))
                return "\n\n".join(doc for _, doc in parts)

            self._articles[key] = self._on(KB, tenant_id, None, read, "")
        return self._articles[key]

    def known_issues(self, *, tenant_id: str = "default") -> list[dict[str, Any]]:
        """The tenant's known-issue articles (`kind: known_issue`) as stored now, whoever wrote them (seed, `app.py
        ingest`): id, title, kind, intents, error_codes, exceptions, http_status and the whole body, sorted by id."""

        def read(kb: Any) -> list[dict[str, Any]]:
            got = kb.get(where={"kind": "known_issue"}, include=["documents", "metadatas"])
            chunks: dict[str, list[tuple[int, str]]] = {}
            metas: dict[str, dict[str, Any]] = {}
            for meta, doc in zip(got["metadatas"], got["documents"], strict=True):
                article_id = str(meta.get("article_id") or "")
                chunks.setdefault(article_id, []).append((int(meta.get("chunk", 0)), doc))
                metas.setdefault(article_id, meta)
            return [
                {
                    "id": article_id,
                    "title": str(metas[article_id].get("title", "")),
                    "kind": "known_issue",
                    **{
                        key: [str(v) for v in _as_list(metas[article_id].get(key))]
                        for key in ("intents", "error_codes", "exceptions")
                    },
                    "http_status": [int(c) for c in _as_list(metas[article_id].get("http_status"))],
                    "body": "\n\n".join(doc for _, doc in sorted(parts)),
                }
                for article_id, parts in sorted(chunks.items())
            ]

        return self._on(KB, tenant_id, None, read, [])

    def search_knowledge(
        self,
        query: str,
        *,
        tenant_id: str = "default",
        k: int | None = None,
        intents: list[str] | None = None,
    ) -> list[Hit]:
        """Best chunk per article for `query` in the tenant's knowledge base, optionally by intents."""
        k = k or self.top_k
        if self.collection(KB, tenant_id) is None:
            return []
        where: dict[str, Any] | None = None
        if intents:
            ors = [{"intents": {"$contains": i}} for i in intents]
            where = ors[0] if len(ors) == 1 else {"$or": ors}
        hits = self._query(
            KB,
            tenant_id,
            None,
            self._embed([query]),
            max(k * 10, 50),
            lambda m: m.get("tenant_id") == tenant_id,
            where,
        )
        if self.lexical_weight > 0 and hits:
            hits = self._blend_lexical(tenant_id, query, hits)
        best: dict[str, Hit] = {}
        for hit in hits:
            key = hit.article_id or hit.id
            if key not in best:
                best[key] = hit
        return list(best.values())[:k]

    def prepare_lexical(self, tenant_id: str = "default") -> bool:
        """Fit (or load) the tenant's lexical index now, so a first search does not; kept on disk when this memory
        has a `lexical_cache`. False when the tenant has no knowledge base."""
        coll = self.collection(KB, tenant_id)
        return coll is not None and self._lexical.similarities(tenant_id, coll, "", []) is not None

    def _blend_lexical(self, tenant_id: str, query: str, hits: list[Hit]) -> list[Hit]:
        coll = self.collection(KB, tenant_id)
        sims = self._lexical.similarities(tenant_id, coll, query, [h.id for h in hits]) if coll is not None else None
        if sims is None:
            return hits
        w = self.lexical_weight
        for hit, lexical in zip(hits, sims, strict=True):
            hit.relevance = (1 - w) * hit.relevance + w * lexical
            hit.score = self.relevance_weight * hit.relevance + self.recency_weight * hit.recency
        hits.sort(key=lambda h: (-h.score, h.id))
        return hits

    # -------------------------------------------------------------------------------------- cases
    def add_case(self, case: ResolvedCase, *, tenant_id: str, user_id: str, shared: bool) -> str:
        """Store a resolved case of (tenant, user); `shared` makes it visible tenant-wide. Returns its id."""
        return self.add_cases([case], tenant_id=tenant_id, user_id=user_id, shared=shared)[0]

    def add_cases(
        self, cases: list[ResolvedCase], *, tenant_id: str, user_id: str, shared: bool
    ) -> list[str]:
        """Store several resolved cases of (tenant, user) with one embedding batch; returns their ids.

        Private cases go to the user's collection, shared ones to the tenant's shared collection; a case
        stored again with the other `shared` value moves (same id, as before the split layout).
        """
        if not tenant_id or not user_id or user_id == SHARED_USER:
            raise ValueError("a case needs a tenant_id and a real user_id")
        if not cases:
            return []
        now = self.clock()
        ids: list[str] = []
        docs: list[str] = []
        metas: list[dict[str, Any]] = []
        for case in cases:
            ids.append(case.id or "case-" + digest(tenant_id, user_id, case.problem, case.cause, case.fix)[:20])
            docs.append(
                f"Problem: {case.problem}\nCause: {case.cause}\nFix: {case.fix}\nOutcome: {case.outcome}"
            )
            metas.append(
                {
                    "tenant_id": tenant_id,
                    "user_id": user_id,
                    "shared": bool(shared),
                    "ts": now,
                    "title": case.problem[:120],
                    **{k: v for k, v in asdict(case).items() if v is not None and k != "id"},
                }
            )
        vectors = self._embed([f"{c.problem}\n{c.cause}\n{c.fix}" for c in cases])
        kind, other, owner = (SHARED, CASES, None) if shared else (CASES, SHARED, user_id)
        self._write(kind, tenant_id, owner, ids, docs, metas, vectors)

        def unlink(collection: Any) -> None:  # the same case stored before with the other `shared` value
            got = collection.get(ids=ids, include=["metadatas"])
            metas = got["metadatas"] or []
            mine = [i for i, m in zip(got["ids"], metas, strict=True) if m and m.get("user_id") == user_id]
            if mine:
                collection.delete(ids=mine)

        self._on(other, tenant_id, user_id if other == CASES else None, unlink, None)
        return ids

    def search_cases(self, query: str, *, tenant_id: str, user_id: str, k: int = 3) -> list[Hit]:
        """The user's own cases plus cases their tenant shared, best first; never another tenant's."""
        namespaces: list[tuple[str, str | None, Callable[[dict[str, Any]], bool]]] = [
            (CASES, user_id, lambda m: m.get("tenant_id") == tenant_id and m.get("user_id") == user_id),
            (SHARED, None, lambda m: m.get("tenant_id") == tenant_id and m.get("shared") is True),
        ]
        present = [ns for ns in namespaces if self.collection(ns[0], tenant_id, ns[1]) is not None]
        if not present:
            return []
        vector = self._embed([query])
        n = max(k * 4, 12)
        hits = [hit for kind, owner, ok in present for hit in self._query(kind, tenant_id, owner, vector, n, ok)]
        best: dict[str, Hit] = {}
        for hit in sorted(hits, key=lambda h: (-h.score, h.id)):
            best.setdefault(hit.id, hit)
        return list(best.values())[:k]

    # ------------------------------------------------------------------------------------- people
    def forget_user(self, tenant_id: str, user_id: str) -> int:
        """Delete every case of (tenant, user), shared cases they authored included (right to be forgotten): their
        own collections are dropped, a preference collection from before preferences moved to the LangGraph store
        (memory.user_store, which has its own `forget_user`) too. Returns how many records went."""
        removed = 0
        for kind in (CASES, PREFS):
            name = self.collection_name(kind, tenant_id, user_id)
            removed += self._on(kind, tenant_id, user_id, lambda c: int(c.count()), 0)
            with self._lock:
                self._handles.pop(name, None)
                try:
                    self.client.delete_collection(name)
                except NotFoundError:
                    pass

        def drop_authored(collection: Any) -> int:
            ids = collection.get(where={"user_id": user_id}, include=[])["ids"]
            if ids:
                collection.delete(ids=ids)
            return len(ids)

        return removed + self._on(SHARED, tenant_id, None, drop_authored, 0)

    def count(self) -> dict[str, int]:
        """Records per kind (``kb``, ``cases`` private and shared, ``prefs``: left in collections from before
        preferences moved to the LangGraph store), summed over collections."""
        totals = {"kb": 0, "cases": 0, "prefs": 0}
        # list_collections() attaches Chroma's default embedding function: only count() is called on these.
        for collection in self.client.list_collections():
            key = count_key(self.prefix, collection.name)
            if key is not None:
                totals[key] += int(collection.count())
        return totals
