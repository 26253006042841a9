"""The one `Embedder` protocol and the one embedding cache.

Everything that needs sentence vectors types against `Embedder`: the intent classifier, the injection screen,
long-term memory, the evals and the benchmarks. `memory.embeddings.MiniLMEmbedder` is the production embedder,
`tests.embedders.HashingEmbedder` the dependency-free one for tests.

`CachedEmbedder` wraps any embedder and keeps what it computed:

- in memory, one vector per text, the least recently used dropped past `max_texts` (None: no bound, 0: none kept):
  the recent single queries of a ticket (`MiniLMEmbedder`), the texts of a training run embedded once
  (`guards.injection_model`), a benchmark's query set;
- on disk with `cache_dir`, each batched call of several texts in one ``emb-<hash>.npz`` named by the texts and
  `namespace` (the evals' dataset splits, embedded again on every run otherwise).

`wordpiece(path)` is the one parsed copy of a ``tokenizer.json`` per process, shared by the encoder and the token
counter (memory.session), untruncated: parsing the file costs ~17 ms (idle machine).

This module imports numpy only (tokenizers when `wordpiece` is first called), so a protocol import costs nothing.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["CachedEmbedder", "Embedder", "texts_key"]


class Embedder(Protocol):
    """Anything that turns texts into an ``(n, d)`` float32 array of L2-normalised sentence vectors."""

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray: ...  # pragma: no cover


def texts_key(texts: Sequence[str], namespace: str = "") -> str:
    """A stable sha256 over the texts (length-prefixed, so joins cannot collide)."""
    h = hashlib.sha256(namespace.encode("utf-8"))
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()[:32]


class CachedEmbedder:
    """`inner` with its vectors kept in memory (per text, LRU past `max_texts`) and, with `cache_dir`, on disk
    (per batched call). Thread-safe; the arrays it returns are the caller's own."""

    def __init__(
        self,
        inner: Embedder,
        *,
        max_texts: int | None = None,
        cache_dir: Path | None = None,
        namespace: str = "",
    ) -> None:
        if max_texts is not None and max_texts < 0:
            raise ValueError("max_texts must be >= 0 (or None for no bound)")
        self.inner = inner
        self.max_texts = max_texts
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.namespace = namespace
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many texts' vectors are kept in memory."""
        return len(self._memo)

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Vectors of `texts` in order: kept ones from memory, the others from disk or `inner` (one call)."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings, not one string")
        texts = list(texts)
        found: dict[str, np.ndarray] = {}
        if self.max_texts != 0:
            with self._lock:
                for text in texts:
                    vector = self._memo.get(text)
                    if vector is not None:
                        self._memo.move_to_end(text)
                        found[text] = vector
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if not found and len(missing) == len(texts):  # nothing kept and no repeats: the computed array as it is
            vectors = self._compute(texts, batch_size)
            self._keep(texts, vectors)
            return vectors
        if missing:
            vectors = self._compute(missing, batch_size)
            self._keep(missing, vectors)
            found.update(zip(missing, vectors, strict=True))
        return np.stack([found[t] for t in texts]).astype(np.float32, copy=False)

    def _keep(self, texts: list[str], vectors: np.ndarray) -> None:
        if self.max_texts == 0:
            return
        with self._lock:
            for text, vector in zip(texts, vectors, strict=True):
                self._memo[text] = vector.copy()
                self._memo.move_to_end(text)
            while self.max_texts is not None and len(self._memo) > self.max_texts:
                self._memo.popitem(last=False)

    def _compute(self, texts: list[str], batch_size: int) -> np.ndarray:
        if self.cache_dir is None or len(texts) <= 1:
            return np.asarray(self.inner.embed(texts, batch_size=batch_size), dtype=np.float32)
        path = self.cache_dir / f"emb-{texts_key(texts, self.namespace)}.npz"
        if path.exists():
            with np.load(path) as data:
                vectors = data["vectors"]
            if vectors.shape[0] == len(texts):
                return np.asarray(vectors, dtype=np.float32)
        vectors = np.asarray(self.inner.embed(texts, batch_size=batch_size), dtype=np.float32)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.cache_dir, suffix=".npz")
        os.close(fd)
        np.savez(tmp, vectors=vectors)
        os.replace(tmp, path)
        return vectors


def wordpiece(path: Path) -> Tokenizer:
    """The tokenizer at `path` (a ``tokenizer.json``), parsed once per process and shared: no truncation and no
    padding, so it counts every token; a caller that needs a length limit cuts the ids itself (see
    `memory.embeddings.MiniLMEmbedder`). Encoding is thread-safe."""
    return _wordpiece(str(Path(path).resolve()))


@lru_cache(maxsize=4)
def _wordpiece(path: str) -> Tokenizer:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(path)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer
