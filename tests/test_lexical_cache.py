"""The knowledge base's lexical index kept on disk (memory.lexical): loaded, not refit, by a new process when the
content is the same; refit when the content changed (even at the same chunk count) or the file is damaged."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from classifier import tfidf
from memory.lexical import LexicalIndex


class FakeCollection:
    """What LexicalIndex reads of a Chroma collection: count() and get(include=[documents, metadatas])."""

    def __init__(self, chunks: dict[str, tuple[str, str]]) -> None:
        self.chunks = dict(chunks)
        self.gets = 0

    def count(self) -> int:
        return len(self.chunks)

    def get(self, include: list[str]) -> dict[str, Any]:
        self.gets += 1
        ids = list(self.chunks)
        return {"ids": ids, "documents": [self.chunks[i][1] for i in ids],
                "metadatas": [{"title": self.chunks[i][0]} for i in ids]}  # fmt: skip


CHUNKS = {
    "kb-returns#0": ("Returns", "You can return an item within 30 days of delivery for a full refund."),
    "kb-shipping#0": ("Shipping", "Standard delivery takes 3 to 5 working days; express takes one day."),
    "kb-payment#0": ("Payment methods", "We accept cards, PayPal and bank transfer. Cash on delivery is not offered."),
}
QUERY = "how long does express delivery take"


def _sims(index: LexicalIndex, collection: FakeCollection, tenant: str = "acme") -> list[float]:
    return index.similarities(tenant, collection, QUERY, list(CHUNKS)) or []


def _no_fit(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    fits: list[int] = []
    real = tfidf.NgramTfidf.fit.__func__  # type: ignore[attr-defined]

    def counting(cls: type, *args: Any, **kwargs: Any) -> Any:
        fits.append(1)
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(tfidf.NgramTfidf, "fit", classmethod(counting))
    return fits


def test_a_new_process_loads_the_fitted_index_instead_of_fitting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uncached = _sims(LexicalIndex(), FakeCollection(CHUNKS))
    first = _sims(LexicalIndex(tmp_path), FakeCollection(CHUNKS))
    assert first == uncached and max(first) == first[1]  # the shipping chunk answers the query
    files = list(tmp_path.glob("lexical-*.npz"))
    assert len(files) == 1
    fits = _no_fit(monkeypatch)
    again = _sims(LexicalIndex(tmp_path), FakeCollection(CHUNKS))  # a new index object: as a new process
    assert fits == [] and again == uncached  # loaded from disk, the same numbers to the last bit
    other_tenant = _sims(LexicalIndex(tmp_path), FakeCollection(CHUNKS), tenant="globex")
    assert fits == [1] and other_tenant == uncached  # each tenant's index is its own file
    assert len(list(tmp_path.glob("lexical-*.npz"))) == 2


def test_changed_content_at_the_same_count_is_refit_and_the_old_file_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sims(LexicalIndex(tmp_path), FakeCollection(CHUNKS))
    (old,) = tmp_path.glob("lexical-*.npz")
    edited = {**CHUNKS, "kb-shipping#0": ("Shipping", "Parcels are handed to the carrier within a day.")}
    fits = _no_fit(monkeypatch)
    sims = _sims(LexicalIndex(tmp_path), FakeCollection(edited))
    assert fits == [1]  # same chunk count, other text: not served the old index
    assert sims == _sims(LexicalIndex(), FakeCollection(edited))
    (new,) = tmp_path.glob("lexical-*.npz")
    assert new != old and not old.exists()


def test_a_damaged_file_is_refit_and_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _sims(LexicalIndex(tmp_path), FakeCollection(CHUNKS))
    (path,) = tmp_path.glob("lexical-*.npz")
    path.write_bytes(b"half a file")
    fits = _no_fit(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="memory.lexical"):
        sims = _sims(LexicalIndex(tmp_path), FakeCollection(CHUNKS))
    assert fits == [1] and "unreadable" in caplog.text
    assert sims == _sims(LexicalIndex(), FakeCollection(CHUNKS))
    with np.load(path) as arrays:  # written again, whole
        assert "rows.data" in arrays.files


def test_without_a_cache_dir_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _sims(LexicalIndex(), FakeCollection(CHUNKS))
    assert list(tmp_path.iterdir()) == []
