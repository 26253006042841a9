"""Checkpointer factory: memory, SQLite (persists across opens), Postgres when a server is reachable."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path
from typing import TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from memory.checkpointer import CheckpointerUnavailable, open_checkpointer, sqlite_path
from tests.conftest import require_service


class Counter(TypedDict):
    n: int


def build() -> StateGraph:
    graph = StateGraph(Counter)
    graph.add_node("inc", lambda state: {"n": state["n"] + 1})
    graph.add_edge(START, "inc")
    graph.add_edge("inc", END)
    return graph


def run_twice_across_opens(target: str) -> None:
    """Write a checkpoint in one open, read it back in a fresh open of the same target."""
    config = {"configurable": {"thread_id": f"t-{uuid.uuid4().hex}"}}
    with open_checkpointer(target) as saver:
        assert build().compile(checkpointer=saver).invoke({"n": 1}, config) == {"n": 2}
    with open_checkpointer(target) as saver:
        graph = build().compile(checkpointer=saver)
        assert graph.get_state(config).values == {"n": 2}
        assert len(list(saver.list(config))) >= 2


def test_sqlite_path_persists_across_opens_and_creates_parents(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "dir" / "checkpoints.sqlite"
    run_twice_across_opens(str(target))
    assert target.exists()


def test_sqlite_url_forms(tmp_path: Path) -> None:
    absolute = tmp_path / "c.sqlite"
    assert sqlite_path(f"sqlite:///{absolute}") == absolute
    assert sqlite_path("sqlite:///rel/c.sqlite") == Path("rel/c.sqlite")
    run_twice_across_opens(f"sqlite:///{absolute}")
    with pytest.raises(ValueError):
        sqlite_path("sqlite://host/c.sqlite")


def test_memory_saver_does_not_persist() -> None:
    config = {"configurable": {"thread_id": "t"}}
    with open_checkpointer("memory") as saver:
        build().compile(checkpointer=saver).invoke({"n": 1}, config)
    with open_checkpointer("memory") as saver:
        assert build().compile(checkpointer=saver).get_state(config).values == {}


def test_unknown_scheme_is_rejected() -> None:
    with pytest.raises(ValueError):
        with open_checkpointer("redis://localhost:6379"):
            pass


def test_postgres_checkpointer_persists_across_opens(pg_url: str) -> None:
    """In a database of this test's own (tests/conftest.py `pg_url`: skipped, or failed under CI, without Postgres)."""
    if importlib.util.find_spec("langgraph.checkpoint.postgres") is None:
        require_service("langgraph-checkpoint-postgres not installed (pip install 'switchboard[postgres]')")
    run_twice_across_opens(pg_url)


def test_missing_postgres_package_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("langgraph.checkpoint.postgres"):
            raise ImportError("No module named 'langgraph.checkpoint.postgres'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(CheckpointerUnavailable, match="switchboard\\[postgres\\]"):
        with open_checkpointer("postgresql://u@127.0.0.1/db"):
            pass
