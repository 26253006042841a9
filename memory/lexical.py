"""Lexical relevance for knowledge-base search: character n-gram TF-IDF cosine over a tenant's chunks.

`ChromaMemory.search_knowledge` blends it with the embedding cosine (`lexical_weight`); the index of a tenant is
built from its Chroma collection and rebuilt when the collection's record count changes or `clear()` is called
(every write to the knowledge base calls it). Fitted with numpy (classifier.tfidf: scikit-learn's TF-IDF, same
features and weights), so searching imports no scikit-learn.

With a `cache_dir` a fitted index is also kept on disk (`lexical-<tenant>-<content>.npz`), keyed by the hash of the
chunks it was fitted on (ids, titles and texts, read from Chroma either way): a new process, or another instance on
the same knowledge base, loads it instead of fitting again (0.3-0.5 s of a cold start here), and an index of other
content is never used. A tenant's older files are removed when a new one is written; an unreadable file is refit.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LexicalIndex"]

log = logging.getLogger(__name__)
FORMAT = "1"  # bump when what is fitted (features, weights) changes


class LexicalIndex:
    """TF-IDF (char_wb 2-5 grams, sublinear tf) per tenant, cached until the tenant's chunk count changes."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        self._by_tenant: dict[str, tuple[int, Any, Any, dict[str, int]]] = {}
        self._lock = threading.Lock()
        self.cache_dir = cache_dir

    def clear(self) -> None:
        with self._lock:
            self._by_tenant.clear()

    def _index(self, tenant_id: str, collection: Any) -> tuple[Any, Any, dict[str, int]] | None:
        count = collection.count()
        with self._lock:
            cached = self._by_tenant.get(tenant_id)
        if cached is not None and cached[0] == count:
            return cached[1], cached[2], cached[3]
        got = collection.get(include=["documents", "metadatas"])
        pairs = zip(got["documents"], got["metadatas"], strict=True)
        texts = [f"{(m or {}).get('title', '')}\n{d or ''}" for d, m in pairs]
        if not texts:
            return None
        vectorizer, matrix = self._fitted(tenant_id, list(got["ids"]), texts)
        rows = {rid: n for n, rid in enumerate(got["ids"])}
        with self._lock:
            self._by_tenant[tenant_id] = (count, vectorizer, matrix, rows)
        return vectorizer, matrix, rows

    def _fitted(self, tenant_id: str, ids: list[str], texts: list[str]) -> tuple[Any, Any]:
        """The vectoriser and the chunks' rows: from the disk cache when it holds this very content, else fitted
        (and kept there)."""
        from classifier.tfidf import NgramTfidf, Rows

        path = self._path(tenant_id, ids, texts)
        if path is not None and path.is_file():
            try:
                with np.load(path, allow_pickle=False) as arrays:
                    loaded = {k: arrays[k] for k in arrays.files}
                vectorizer = NgramTfidf.from_arrays(loaded, "tfidf")
                matrix = Rows(loaded["rows.indptr"], loaded["rows.indices"], loaded["rows.data"], len(vectorizer.idf))
                if len(matrix) == len(texts):
                    return vectorizer, matrix
            except Exception as exc:  # a damaged or foreign file: fit again and replace it
                log.warning("lexical index %s unreadable (%s): refitting", path.name, exc)
        vectorizer = NgramTfidf.fit(texts, "char_wb", (2, 5))  # as classifier.features.ngram_tfidf("char_wb", (2, 5))
        matrix = vectorizer.transform(texts)
        if path is not None:
            self._save(path, vectorizer, matrix)
        return vectorizer, matrix

    def _path(self, tenant_id: str, ids: list[str], texts: list[str]) -> Path | None:
        if self.cache_dir is None:
            return None
        content = hashlib.sha256(FORMAT.encode())
        for rid, text in zip(ids, texts, strict=True):
            for part in (rid, text):
                data = part.encode("utf-8", "surrogatepass")
                content.update(len(data).to_bytes(8, "little") + data)
        return self.cache_dir / f"lexical-{_tenant_key(tenant_id)}-{content.hexdigest()[:24]}.npz"

    def _save(self, path: Path, vectorizer: Any, matrix: Any) -> None:
        """Write atomically (temp file, then rename), then drop the tenant's older files. A cache: a failure to
        write is logged and the search goes on."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            arrays = {**vectorizer.to_arrays("tfidf"), "rows.indptr": matrix.indptr, "rows.indices": matrix.indices,
                      "rows.data": matrix.data}  # fmt: skip
            fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.savez(fh, **arrays)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            prefix = path.name.rsplit("-", 1)[0] + "-"
            for old in path.parent.glob(prefix + "*.npz"):
                if old != path:
                    old.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("lexical index not cached at %s: %s", path, exc)

    def similarities(self, tenant_id: str, collection: Any, query: str, ids: list[str]) -> list[float] | None:
        """TF-IDF cosine of `query` with each chunk of `ids` (0.0 for an id the index lacks); None when the
        tenant's knowledge base is empty."""
        index = self._index(tenant_id, collection)
        if index is None:
            return None
        vectorizer, matrix, rows = index
        sims = matrix.dot(vectorizer.transform([query]).dense_row(0))
        return [float(sims[rows[i]]) if i in rows else 0.0 for i in ids]


def _tenant_key(tenant_id: str) -> str:
    """A file-name-safe key of a tenant id (any string)."""
    return hashlib.sha256(tenant_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
