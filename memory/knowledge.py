"""Long-term memory in Chroma: knowledge-base chunks, resolved cases and per-user preferences.

Three collections (cosine space, no Chroma embedding function: the project's embedder computes every
vector and Chroma only stores and searches them):

- ``kb``: knowledge-base article chunks, shared within a tenant (``user_id="*"``);
- ``cases``: resolved cases (problem, cause, fix, outcome, intent) owned by one user, optionally
  marked ``shared`` by the tenant once a human verified the answer;
- ``prefs``: per-user preferences.

Every record carries ``tenant_id`` and ``user_id``. Retrieval filters on them in Chroma's ``where``
clause and checks them again on the way out, so a user never sees another user's records and a
tenant never sees another tenant's. Results are ranked by
``relevance_weight * (1 - cosine distance) + recency_weight * 0.5 ** (age_days / half_life_days)``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import urlsplit

import numpy as np
import yaml
from chromadb.errors import NotFoundError

from classifier.features import ngram_tfidf
from memory.embedder import Embedder

__all__ = [
    "Article",
    "ChromaMemory",
    "HashingEmbedder",
    "Hit",
    "LongTermMemory",
    "ResolvedCase",
    "UpsertReport",
    "chunk_markdown",
    "load_articles",
    "parse_markdown",
]

SHARED_USER = "*"
_DAY = 86400.0
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.S)
_HEADING = re.compile(r"^#{1,6}\s+\S")


@dataclass
class Article:
    """One knowledge-base article (markdown body without front matter)."""

    id: str
    title: str
    text: str
    intents: list[str] = field(default_factory=list)
    kind: str = "article"
    error_codes: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    http_status: list[int] = field(default_factory=list)
    updated: float | None = None  # epoch seconds; drives recency when set
    tenant_id: str = "default"
    source: str | None = None


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

    def set_preference(self, tenant_id: str, user_id: str, key: str, value: Any) -> None: ...

    def get_preferences(self, tenant_id: str, user_id: str) -> dict[str, Any]: ...

    def count(self) -> dict[str, int]: ...

    def forget_user(self, tenant_id: str, user_id: str) -> int: ...


# ------------------------------------------------------------------------------------------ articles


def _as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _to_epoch(value: Any) -> float | None:
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp()
    if isinstance(value, str) and value.strip():
        try:
            return _to_epoch(dt.datetime.fromisoformat(value.strip()))
        except ValueError:
            return None
    return None


def parse_markdown(
    text: str, default_id: str, *, source: str | None = None, tenant_id: str = "default"
) -> Article:
    """Parse a markdown document with optional YAML front matter into an `Article`.

    Missing ``id`` falls back to `default_id`; missing ``title`` to the first heading or line.
    Raises ValueError on malformed front matter.
    """
    meta: dict[str, Any] = {}
    body = text
    match = _FRONT_MATTER.match(text)
    if match:
        try:
            loaded = yaml.safe_load(match.group(1)) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"bad front matter: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ValueError("front matter is not a mapping")
        meta, body = loaded, text[match.end() :]
    body = body.strip()
    title = str(meta.get("title") or "").strip()
    if not title:
        first = next((ln for ln in body.splitlines() if ln.strip()), default_id)
        title = first.lstrip("#").strip()[:120]
    return Article(
        id=str(meta.get("id") or default_id),
        title=title,
        text=body,
        intents=[str(i) for i in _as_list(meta.get("intents"))],
        kind=str(meta.get("kind") or "article"),
        error_codes=[str(c) for c in _as_list(meta.get("error_codes"))],
        exceptions=[str(c) for c in _as_list(meta.get("exceptions"))],
        http_status=[int(c) for c in _as_list(meta.get("http_status"))],
        updated=_to_epoch(meta.get("updated")),
        tenant_id=str(meta.get("tenant_id") or tenant_id),
        source=source,
    )


def load_articles(kb_dir: Path) -> list[Article]:
    """Load every ``*.md`` article under `kb_dir` (sorted by path; id defaults to the file stem)."""
    return [
        parse_markdown(path.read_text(encoding="utf-8"), path.stem, source=str(path))
        for path in sorted(Path(kb_dir).glob("*.md"))
    ]


def _words(text: str) -> int:
    return len(text.split())


def _split_long(paragraph: str, max_words: int) -> list[str]:
    sentences = re.split(r"(?<=[.!?])\s+", paragraph)
    out: list[str] = []
    current: list[str] = []
    for sentence in sentences:
        words = sentence.split()
        while len(words) > max_words:  # one giant sentence: hard split on words
            if current:
                out.append(" ".join(current))
                current = []
            out.append(" ".join(words[:max_words]))
            words = words[max_words:]
        if current and _words(" ".join(current)) + len(words) > max_words:
            out.append(" ".join(current))
            current = []
        if words:
            current.append(" ".join(words))
    if current:
        out.append(" ".join(current))
    return out


def chunk_markdown(text: str, *, min_words: int = 120, max_words: int = 200) -> list[str]:
    """Split markdown into chunks of about `min_words`..`max_words` words along headings and paragraphs.

    A heading stays with the paragraph after it; a new heading starts a new chunk once the current one
    has `min_words`; a paragraph longer than `max_words` is split on sentences.
    """
    blocks: list[tuple[bool, str]] = []  # (starts with heading, text)
    pending_heading = ""
    for raw in re.split(r"\n\s*\n", text.strip()):
        block = raw.strip()
        if not block:
            continue
        lines = block.splitlines()
        if _HEADING.match(lines[0]) and len(lines) == 1:
            pending_heading = (pending_heading + "\n\n" + block).strip()
            continue
        heading = bool(pending_heading) or bool(_HEADING.match(lines[0]))
        block = (pending_heading + "\n\n" + block).strip() if pending_heading else block
        pending_heading = ""
        for i, piece in enumerate(_split_long(block, max_words) if _words(block) > max_words else [block]):
            blocks.append((heading and i == 0, piece))
    if pending_heading:
        blocks.append((True, pending_heading))

    chunks: list[str] = []
    current: list[str] = []
    for heading, block in blocks:
        size = _words("\n\n".join(current))
        if current and (size + _words(block) > max_words or (heading and size >= min_words)):
            chunks.append("\n\n".join(current))
            current = []
        current.append(block)
    if current:
        if chunks and _words("\n\n".join(current)) < min_words // 3 and _words(chunks[-1]) < max_words:
            chunks[-1] = chunks[-1] + "\n\n" + "\n\n".join(current)  # no orphan tail
        else:
            chunks.append("\n\n".join(current))
    return chunks


def _sha(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()


# -------------------------------------------------------------------------------------------- chroma

_KB, _SHARED, _CASES, _PREFS = "kb", "shared_cases", "cases", "prefs"
# Short codes keep names within Chroma's 63 characters: `{prefix}_{code}_{32 hex digits}`.
_CODES = {_KB: "kb", _SHARED: "sc", _CASES: "uc", _PREFS: "up"}
_COUNT_KEY = {_KB: "kb", _SHARED: "cases", _CASES: "cases", _PREFS: "prefs"}
_PREFIX = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9_-]|\.(?!\.)){0,26}")
# Chroma's local engine keeps writes in one write-ahead log (a SQLite table shared by every collection and
# not indexed by collection) until a collection's HNSW index is persisted, and it scans that log whenever
# it loads a collection. With the default sync threshold (1,000) a collection of a hundred records never
# persists, the log is never purged, and loading one user's collection scans every record of every user
# (~140 ms at 100k records). Persisting every two writes keeps the log at a few rows per collection.
_HNSW: dict[str, Any] = {"space": "cosine", "batch_size": 2, "sync_threshold": 2}

T = TypeVar("T")
log = logging.getLogger(__name__)


def _legacy_namespace(legacy: str, meta: dict[str, Any]) -> tuple[str, str, str | None] | None:
    """Where a record of the old single-collection layout goes: (kind, tenant, user) or None."""
    tenant_id, user_id = meta.get("tenant_id"), meta.get("user_id")
    if not isinstance(tenant_id, str) or not tenant_id:
        return None
    if legacy == "kb":
        return (_KB, tenant_id, None)
    if legacy == "cases" and meta.get("shared") is True:
        return (_SHARED, tenant_id, None)
    if not isinstance(user_id, str) or not user_id or user_id == SHARED_USER:
        return None
    return (_CASES if legacy == "cases" else _PREFS, tenant_id, user_id)


class ChromaMemory:
    """`LongTermMemory` on Chroma with one collection per namespace and relevance + recency ranking.

    Layout (each name is ``{prefix}_{code}_{hash}``, the hash a 128-bit BLAKE2b of the tenant id, or of
    the tenant and user ids):

    - ``kb``: one per tenant, its knowledge-base chunks;
    - ``sc``: one per tenant, the cases it shares tenant-wide (``add_case(..., shared=True)``);
    - ``uc``: one per (tenant, user), the user's own cases;
    - ``up``: one per (tenant, user), the user's preferences.

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
    ) -> None:
        if not _PREFIX.fullmatch(prefix):
            raise ValueError(f"prefix must be 1-27 chars of [a-zA-Z0-9._-], alphanumeric first: {prefix!r}")
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
        self._lexical: dict[str, tuple[int, Any, Any, dict[str, int]]] = {}
        self._articles: dict[tuple[str, str], str] = {}  # whole-article texts, cleared on every write

    @classmethod
    def persistent(cls, path: Path | str, embedder: Embedder, **kwargs: Any) -> ChromaMemory:
        """Open (or create) a Chroma store on disk at `path`, moving a store of the old layout over."""
        import chromadb
        from chromadb.config import Settings

        Path(path).mkdir(parents=True, exist_ok=True)
        client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
        memory = cls(client, embedder, **kwargs)
        memory.migrate_legacy()
        return memory

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
        memory = cls(client, embedder, **kwargs)
        memory.migrate_legacy()
        return memory

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
        key = json.dumps([tenant_id] if user_id is None else [tenant_id, user_id])  # unambiguous
        digest = hashlib.blake2b(key.encode("utf-8"), digest_size=16).hexdigest()
        return f"{self.prefix}_{_CODES[kind]}_{digest}"

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
                    configuration={"hnsw": dict(_HNSW)},
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

    def migrate_legacy(self) -> int:
        """Move the old single-collection layout (``{prefix}_kb``, ``_cases``, ``_prefs``, namespaced by
        metadata) into the per-namespace collections, embeddings as stored, and drop the old collections.

        Idempotent and cheap when there is nothing to move; a record without a usable ``tenant_id`` /
        ``user_id`` is left behind (its old collection is then kept and a warning logged). Returns the
        number of records moved.
        """
        moved = 0
        for legacy in ("kb", "cases", "prefs"):
            name = f"{self.prefix}_{legacy}"
            try:
                old = self.client.get_collection(name, embedding_function=None)
            except NotFoundError:
                continue
            stranded = 0
            for offset in range(0, int(old.count()), self._batch):
                got = old.get(
                    include=["embeddings", "documents", "metadatas"], limit=self._batch, offset=offset
                )
                groups: dict[tuple[str, str, str | None], list[int]] = {}
                for row, meta in enumerate(got["metadatas"] or []):
                    key = _legacy_namespace(legacy, dict(meta or {}))
                    if key is None:
                        stranded += 1
                    else:
                        groups.setdefault(key, []).append(row)
                vectors = np.asarray(got["embeddings"], dtype=np.float32)
                for (kind, tenant_id, user_id), rows in groups.items():
                    self._write(
                        kind,
                        tenant_id,
                        user_id,
                        [got["ids"][r] for r in rows],
                        [(got["documents"] or [])[r] or "" for r in rows],
                        [dict(got["metadatas"][r] or {}) for r in rows],
                        vectors[rows],
                    )
                    moved += len(rows)
            if stranded:
                log.warning("kept %s: %d records without tenant_id/user_id", name, stranded)
                continue
            try:
                self.client.delete_collection(name)
            except NotFoundError:  # another process migrated it at the same time
                pass
        if moved:
            log.info("moved %d records from the single-collection layout", moved)
        return moved

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
            kb = self.collection(_KB, tenant_id, create=True)
            ids: list[str] = []
            docs: list[str] = []
            metas: list[dict[str, Any]] = []
            embed_texts: list[str] = []
            stale: list[str] = []
            for article in group:
                existing = set(kb.get(where={"article_id": article.id}, include=[])["ids"])
                wanted = self._chunks(article)
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
                self._write(_KB, tenant_id, None, ids, docs, metas, self._embed(embed_texts))
            if stale:
                kb.delete(ids=stale)
            report.chunks_added += len(ids)
        return report

    @staticmethod
    def _chunks(article: Article) -> dict[str, tuple[int, str]]:
        """Chunk id -> (index, text); ids hash the chunk and the article's metadata, so edits re-embed."""
        fingerprint = json.dumps(
            [
                article.title,
                article.intents,
                article.kind,
                article.error_codes,
                article.exceptions,
                article.http_status,
                article.updated,
            ],
            sort_keys=True,
        )
        wanted: dict[str, tuple[int, str]] = {}
        for index, chunk in enumerate(chunk_markdown(article.text) or [article.title]):
            cid = f"{article.tenant_id}/{article.id}#{_sha(fingerprint, chunk)[:16]}"
            wanted.setdefault(cid, (index, chunk))
        return wanted

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

        return self._on(_KB, tenant_id, None, delete, 0)

    def article_text(self, article_id: str, *, tenant_id: str = "default") -> str:
        """The whole article, its chunks joined in order ("" when the tenant has no such article)."""
        key = (tenant_id, article_id)
        if key not in self._articles:

            def read(kb: Any) -> str:
                got = kb.get(where={"article_id": article_id}, include=["documents", "metadatas"])
                parts = sorted(zip(got["metadatas"], got["documents"], strict=True), key=lambda p: p[0].get("chunk", 0))
                return "\n\n".join(doc for _, doc in parts)

            self._articles[key] = self._on(_KB, tenant_id, None, read, "")
        return self._articles[key]

    def known_issues(self, *, tenant_id: str = "default") -> list[dict[str, Any]]:
        """The tenant's known-issue articles (`kind: known_issue`) as stored now, whoever wrote them (seed, `app.py
        ingest`): id, title, kind, error_codes, exceptions, http_status and the whole body, sorted by id."""

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
                    **{key: list(_as_list(metas[article_id].get(key))) for key in ("error_codes", "exceptions")},
                    "http_status": [int(c) for c in _as_list(metas[article_id].get("http_status"))],
                    "body": "\n\n".join(doc for _, doc in sorted(parts)),
                }
                for article_id, parts in sorted(chunks.items())
            ]

        return self._on(_KB, tenant_id, None, read, [])

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
        if self.collection(_KB, tenant_id) is None:
            return []
        where: dict[str, Any] | None = None
        if intents:
            ors = [{"intents": {"$contains": i}} for i in intents]
            where = ors[0] if len(ors) == 1 else {"$or": ors}
        hits = self._query(
            _KB,
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

    def _lexical_index(self, tenant_id: str) -> tuple[Any, Any, dict[str, int]] | None:
        """TF-IDF (char n-grams) over the tenant's knowledge-base chunks, rebuilt when the chunk count changes."""
        coll = self.collection(_KB, tenant_id)
        if coll is None:
            return None
        count = coll.count()
        with self._lock:
            cached = self._lexical.get(tenant_id)
        if cached is not None and cached[0] == count:
            return cached[1], cached[2], cached[3]
        got = coll.get(include=["documents", "metadatas"])
        pairs = zip(got["documents"], got["metadatas"], strict=True)
        texts = [f"{(m or {}).get('title', '')}\n{d or ''}" for d, m in pairs]
        if not texts:
            return None
        vectorizer = ngram_tfidf("char_wb", (2, 5))
        matrix = vectorizer.fit_transform(texts)
        rows = {rid: n for n, rid in enumerate(got["ids"])}
        with self._lock:
            self._lexical[tenant_id] = (count, vectorizer, matrix, rows)
        return vectorizer, matrix, rows

    def _blend_lexical(self, tenant_id: str, query: str, hits: list[Hit]) -> list[Hit]:
        index = self._lexical_index(tenant_id)
        if index is None:
            return hits
        vectorizer, matrix, rows = index
        sims = (matrix @ vectorizer.transform([query]).T).toarray().ravel()
        w = self.lexical_weight
        for hit in hits:
            lexical = float(sims[rows[hit.id]]) if hit.id in rows else 0.0
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
            ids.append(case.id or "case-" + _sha(tenant_id, user_id, case.problem, case.cause, case.fix)[:20])
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
        kind, other, owner = (_SHARED, _CASES, None) if shared else (_CASES, _SHARED, user_id)
        self._write(kind, tenant_id, owner, ids, docs, metas, vectors)

        def unlink(collection: Any) -> None:  # the same case stored before with the other `shared` value
            got = collection.get(ids=ids, include=["metadatas"])
            metas = got["metadatas"] or []
            mine = [i for i, m in zip(got["ids"], metas, strict=True) if m and m.get("user_id") == user_id]
            if mine:
                collection.delete(ids=mine)

        self._on(other, tenant_id, user_id if other == _CASES else None, unlink, None)
        return ids

    def search_cases(self, query: str, *, tenant_id: str, user_id: str, k: int = 3) -> list[Hit]:
        """The user's own cases plus cases their tenant shared, best first; never another tenant's."""
        namespaces: list[tuple[str, str | None, Callable[[dict[str, Any]], bool]]] = [
            (_CASES, user_id, lambda m: m.get("tenant_id") == tenant_id and m.get("user_id") == user_id),
            (_SHARED, None, lambda m: m.get("tenant_id") == tenant_id and m.get("shared") is True),
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

    # -------------------------------------------------------------------------------- preferences
    def set_preference(self, tenant_id: str, user_id: str, key: str, value: Any) -> None:
        """Remember one preference of (tenant, user); a later value for the same key replaces it."""
        if not tenant_id or not user_id or user_id == SHARED_USER:
            raise ValueError("a preference needs a tenant_id and a real user_id")
        pid = "pref-" + _sha(tenant_id, user_id, key)[:24]
        encoded = json.dumps(value, sort_keys=True)
        meta = {"tenant_id": tenant_id, "user_id": user_id, "key": key, "value": encoded, "ts": self.clock()}
        doc = f"{key}: {value}"
        self._write(_PREFS, tenant_id, user_id, [pid], [doc], [meta], self._embed([doc]))

    def get_preferences(self, tenant_id: str, user_id: str) -> dict[str, Any]:
        """All preferences of (tenant, user) as a dict."""
        got = self._on(_PREFS, tenant_id, user_id, lambda c: c.get(include=["metadatas"]), None)
        prefs: dict[str, Any] = {}
        for meta in (got or {}).get("metadatas") or []:
            if meta and meta.get("tenant_id") == tenant_id and meta.get("user_id") == user_id:
                prefs[str(meta["key"])] = json.loads(str(meta["value"]))
        return prefs

    def forget_user(self, tenant_id: str, user_id: str) -> int:
        """Delete every case and preference of (tenant, user), shared cases they authored included
        (right to be forgotten): their own collections are dropped. Returns how many records went."""
        removed = 0
        for kind in (_CASES, _PREFS):
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

        return removed + self._on(_SHARED, tenant_id, None, drop_authored, 0)

    def count(self) -> dict[str, int]:
        """Records per kind (``kb``, ``cases`` private and shared, ``prefs``), summed over collections."""
        totals = {"kb": 0, "cases": 0, "prefs": 0}
        by_code = {code: _COUNT_KEY[kind] for kind, code in _CODES.items()}
        # list_collections() attaches Chroma's default embedding function: only count() is called on these.
        for collection in self.client.list_collections():
            if not collection.name.startswith(f"{self.prefix}_"):
                continue
            code = collection.name[len(self.prefix) + 1 :].split("_", 1)[0]
            if code in by_code:
                totals[by_code[code]] += int(collection.count())
        return totals


class HashingEmbedder:
    """Deterministic, dependency-free embedder (hashed word and bigram features, L2-normalised).

    For unit tests and as a last-resort offline fallback; it captures word overlap, not meaning.
    """

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embed `texts` into an (n, dim) float32 array of unit vectors."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = re.findall(r"[a-z0-9]+", text.lower())
            for feature in words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]:
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                index = int.from_bytes(digest[:4], "little") % self.dim
                out[row, index] += 1.0 if digest[4] & 1 else -1.0
            norm = float(np.linalg.norm(out[row]))
            if norm > 0:
                out[row] /= norm
            else:
                out[row, 0] = 1.0
        return out
