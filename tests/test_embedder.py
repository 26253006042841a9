"""memory.embedder.CachedEmbedder: the one embedding cache (in memory per text, on disk per batched call)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from memory.embedder import CachedEmbedder
from tests.embedders import HashingEmbedder


class CountingEmbedder:
    """HashingEmbedder that records every batch it is asked to embed."""

    def __init__(self) -> None:
        self.inner = HashingEmbedder(dim=16)
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        self.calls.append(list(texts))
        return self.inner.embed(list(texts))


def test_memory_serves_kept_texts_and_embeds_only_the_missing_ones_once() -> None:
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner)
    first = cached.embed(["a b", "c d"])
    mixed = cached.embed(["c d", "e f", "e f", "a b"])
    assert inner.calls == [["a b", "c d"], ["e f"]]
    np.testing.assert_array_equal(mixed, inner.inner.embed(["c d", "e f", "e f", "a b"]))
    np.testing.assert_array_equal(first, inner.inner.embed(["a b", "c d"]))
    assert mixed.dtype == np.float32


def test_memory_drops_the_least_recently_used_past_max_texts() -> None:
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, max_texts=2)
    for text in ("one", "two", "one", "three"):  # "two" is the least recently used when "three" arrives
        cached.embed([text])
    assert len(cached) == 2
    cached.embed(["one"])
    cached.embed(["two"])
    assert inner.calls == [["one"], ["two"], ["three"], ["two"]]


def test_a_callers_copy_never_changes_what_is_kept() -> None:
    cached = CachedEmbedder(CountingEmbedder())
    out = cached.embed(["where is my order"])
    out[:] = 0.0
    assert float(np.linalg.norm(cached.embed(["where is my order"])[0])) == pytest.approx(1.0, abs=1e-5)


def test_disk_cache_serves_a_batched_call_to_a_new_process(tmp_path: Path) -> None:
    texts = ["refund my order", "where is my parcel", "change my address"]
    first = CountingEmbedder()
    CachedEmbedder(first, max_texts=0, cache_dir=tmp_path, namespace="test").embed(texts)
    assert len(list(tmp_path.glob("emb-*.npz"))) == 1
    second = CountingEmbedder()
    again = CachedEmbedder(second, max_texts=0, cache_dir=tmp_path, namespace="test").embed(texts)
    assert second.calls == []
    np.testing.assert_array_equal(again, first.inner.embed(texts))
    other = CountingEmbedder()
    CachedEmbedder(other, max_texts=0, cache_dir=tmp_path, namespace="another encoder").embed(texts)
    assert other.calls == [texts]  # another namespace never shares vectors


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="max_texts"):
        CachedEmbedder(CountingEmbedder(), max_texts=-1)
    with pytest.raises(TypeError, match="sequence of strings"):
        CachedEmbedder(CountingEmbedder()).embed("one string")
