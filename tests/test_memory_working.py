"""Working memory: per-thread JSON state in SQLite with a TTL, proven with a fake clock (no sleeps)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from memory.working import WorkingMemory
from tests.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def wm(tmp_path: Path, clock: FakeClock) -> Iterator[WorkingMemory]:
    memory = WorkingMemory(tmp_path / "nested" / "working.sqlite", ttl_seconds=3600, clock=clock)
    yield memory
    memory.close()


def test_set_get_all_roundtrip_json_values(wm: WorkingMemory) -> None:
    wm.set("t1", "plan", {"steps": ["lookup", "refund"], "done": False})
    wm.set("t1", "order_id", 1004)
    wm.set("t2", "order_id", 2000)
    assert wm.get("t1", "plan") == {"steps": ["lookup", "refund"], "done": False}
    assert wm.get("t1", "missing", default="x") == "x"
    assert wm.all("t1") == {"order_id": 1004, "plan": {"steps": ["lookup", "refund"], "done": False}}
    wm.set("t1", "order_id", 1005)  # overwrite
    assert wm.get("t1", "order_id") == 1005
    assert wm.get("t2", "order_id") == 2000  # threads are separate


def test_non_json_value_is_rejected_without_writing(wm: WorkingMemory) -> None:
    with pytest.raises(TypeError):
        wm.set("t1", "bad", object())
    assert wm.all("t1") == {}


def test_entries_expire_after_ttl_and_are_never_returned(wm: WorkingMemory, clock: FakeClock) -> None:
    wm.set("t1", "a", 1)
    clock.now += 1800
    wm.set("t1", "b", 2)  # written later, lives longer
    clock.now += 1799
    assert wm.get("t1", "a") == 1  # 3599 s old: still alive
    clock.now += 1
    assert wm.get("t1", "a") is None  # exactly ttl: expired
    assert wm.all("t1") == {"b": 2}
    clock.now += 1800
    assert wm.all("t1") == {}
    assert wm.list_threads() == []


def test_set_restarts_ttl(wm: WorkingMemory, clock: FakeClock) -> None:
    wm.set("t1", "a", 1)
    clock.now += 3000
    wm.set("t1", "a", 2)
    clock.now += 3000
    assert wm.get("t1", "a") == 2


def test_purge_expired_counts_and_removes_rows(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "w.sqlite"
    wm = WorkingMemory(path, ttl_seconds=10, clock=clock)
    for i in range(5):
        wm.set("t1", f"k{i}", i)
    wm.set("t2", "k", "v")
    clock.now += 10
    assert wm.purge_expired() == 6
    assert wm.purge_expired() == 0
    wm.close()
    import sqlite3

    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM working_memory").fetchone()[0] == 0


def test_clear_and_list_threads(wm: WorkingMemory, clock: FakeClock) -> None:
    wm.set("t1", "a", 1)
    wm.set("t1", "b", 2)
    clock.now += 5
    wm.set("t2", "a", 1)
    threads = wm.list_threads()
    assert [t["thread_id"] for t in threads] == ["t2", "t1"]  # most recent first
    assert threads[1]["keys"] == 2 and threads[1]["expires_at"] == clock.now - 5 + 3600
    assert wm.clear("t1") == 2
    assert wm.all("t1") == {}
    assert [t["thread_id"] for t in wm.list_threads()] == ["t2"]
    assert wm.delete("t2", "a") is True and wm.delete("t2", "a") is False


def test_state_survives_reopen(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "w.sqlite"
    with WorkingMemory(path, ttl_seconds=100, clock=clock) as first:
        first.set("t1", "plan", ["a", "b"])
    with WorkingMemory(path, ttl_seconds=100, clock=clock) as second:
        assert second.get("t1", "plan") == ["a", "b"]
        clock.now += 100
        assert second.get("t1", "plan") is None


def test_ttl_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        WorkingMemory(tmp_path / "w.sqlite", ttl_seconds=0)
