"""On-disk cache of sentence embeddings, keyed by a hash of the texts (for evals and experiments)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    """Anything that turns texts into an (n, d) float32 array of L2-normalised vectors."""

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray: ...  # pragma: no cover


def default_cache_dir() -> Path:
    """`.switchboard/cache` (git ignores it); callers with settings pass `settings.embedding_cache_dir`."""
    from config.settings import DEFAULT_DATA_DIR

    return DEFAULT_DATA_DIR / "cache"


def texts_key(texts: Sequence[str], namespace: str = "") -> str:
    """A stable sha256 over the texts (length-prefixed, so joins cannot collide)."""
    h = hashlib.sha256(namespace.encode("utf-8"))
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()[:32]


class CachedEmbedder:
    """Wraps an embedder; a whole `embed(texts)` call is cached in one npz file named by the texts' hash.

    Intended for whole dataset splits (the evals call it once per split). Single queries go straight through.
    """

    def __init__(self, inner: Embedder, cache_dir: Path | None = None, namespace: str = "minilm") -> None:
        self.inner = inner
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.namespace = namespace

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embed `texts`, reading/writing `<cache_dir>/emb-<hash>.npz` when more than one text is given."""
        texts = list(texts)
        if len(texts) <= 1:
            return np.asarray(self.inner.embed(texts), dtype=np.float32)
        path = self.cache_dir / f"emb-{texts_key(texts, self.namespace)}.npz"
        if path.exists():
            with np.load(path) as data:
                vecs = data["vectors"]
            if vecs.shape[0] == len(texts):
                return vecs
        vecs = np.asarray(self.inner.embed(texts), dtype=np.float32)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.cache_dir, suffix=".npz")
        os.close(fd)
        np.savez(tmp, vectors=vecs)
        os.replace(tmp, path)
        return vecs
