"""Checkpointer factory: SQLite by default, Postgres by URL for scale, in-memory for tests.

with open_checkpointer(".switchboard/checkpoints.sqlite") as saver:
    graph = build_supervisor(services).compile(checkpointer=saver)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

__all__ = ["CheckpointerUnavailable", "open_checkpointer", "sqlite_path"]

_POSTGRES = ("postgres://", "postgresql://")


class CheckpointerUnavailable(RuntimeError):
    """The requested checkpointer backend is not installed."""


def sqlite_path(url_or_path: str | Path) -> Path:
    """The file behind a filesystem path or a ``sqlite:///relative`` / ``sqlite:////absolute`` URL."""
    text = str(url_or_path)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif text.startswith("sqlite:"):
        raise ValueError(f"use sqlite:///path (three slashes), not {text!r}")
    if not text:
        raise ValueError("empty checkpointer path")
    return Path(text).expanduser()


@contextmanager
def open_checkpointer(url_or_path: str | Path) -> Iterator[BaseCheckpointSaver]:
    """Open a checkpointer for the life of the `with` block.

    - ``"memory"``: `InMemorySaver` (nothing survives the process);
    - ``postgres://...``: `PostgresSaver` (needs the ``postgres`` extra; tables are created on open);
    - a path or ``sqlite:///path``: `SqliteSaver` on that file (parent directories created).
    """
    target = str(url_or_path)
    if target in ("memory", ":memory:"):
        yield InMemorySaver()
        return
    if target.startswith(_POSTGRES):
        try:
            from langgraph.checkpoint.postgres import PostgresSaver
        except ImportError as exc:
            raise CheckpointerUnavailable(
                "a postgres:// checkpointer needs langgraph-checkpoint-postgres and psycopg: "
                "pip install 'switchboard[postgres]'"
            ) from exc
        with PostgresSaver.from_conn_string(target) as pg_saver:
            pg_saver.setup()
            yield pg_saver
        return
    if "://" in target and not target.startswith("sqlite:"):
        raise ValueError(
            f"unsupported checkpointer URL {target!r} (use a path, sqlite:///, postgres:// or memory)"
        )

    from langgraph.checkpoint.sqlite import SqliteSaver

    path = sqlite_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False)
    try:
        saver = SqliteSaver(conn)
        saver.setup()
        yield saver
    finally:
        conn.close()
