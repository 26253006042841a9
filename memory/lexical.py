"""Lexical relevance for knowledge-base search: character n-gram TF-IDF cosine over a tenant's chunks.

`ChromaMemory.search_knowledge` blends it with the embedding cosine (`lexical_weight`); the index of a tenant is
built from its Chroma collection and rebuilt when the collection's record count changes or `clear()` is called
(every write to the knowledge base calls it). Fitted with numpy (classifier.tfidf: scikit-learn's TF-IDF, same
features and weights), so searching imports no scikit-learn.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["LexicalIndex"]


class LexicalIndex:
    """TF-IDF (char_wb 2-5 grams, sublinear tf) per tenant, cached until the tenant's chunk count changes."""

    def __init__(self) -> None:
        self._by_tenant: dict[str, tuple[int, Any, Any, dict[str, int]]] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._by_tenant.clear()

    def _index(self, tenant_id: str, collection: Any) -> tuple[Any, Any, dict[str, int]] | None:
        from classifier.tfidf import NgramTfidf

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
        vectorizer = NgramTfidf.fit(texts, "char_wb", (2, 5))  # as classifier.features.ngram_tfidf("char_wb", (2, 5))
        matrix = vectorizer.transform(texts)
        rows = {rid: n for n, rid in enumerate(got["ids"])}
        with self._lock:
            self._by_tenant[tenant_id] = (count, vectorizer, matrix, rows)
        return vectorizer, matrix, rows

    def similarities(self, tenant_id: str, collection: Any, query: str, ids: list[str]) -> list[float] | None:
        """TF-IDF cosine of `query` with each chunk of `ids` (0.0 for an id the index lacks); None when the
        tenant's knowledge base is empty."""
        index = self._index(tenant_id, collection)
        if index is None:
            return None
        vectorizer, matrix, rows = index
        sims = matrix.dot(vectorizer.transform([query]).dense_row(0))
        return [float(sims[rows[i]]) if i in rows else 0.0 for i in ids]
