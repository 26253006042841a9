"""Checkpointer factory: SQLite by default, Postgres by URL for scale, in-memory for tests.

Every one writes through `memory.serde.checkpoint_serde`: customer text redacted, everything encrypted with the
PII key (SWITCHBOARD_PII_KEY, else data_dir/pii.key).

with open_checkpointer(".switchboard/checkpoints.sqlite") as saver:
    graph = build_supervisor(services).compile(checkpointer=saver)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.base import SerializerProtocol

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


def _postgres_saver(base: type[Any]) -> type[Any]:
    """PostgresSaver that stores string channel values as (encrypted) blobs, not inline in plain JSONB."""
    from memory.serde import Boxed

    class EncryptedPostgresSaver(base):  # base is the PostgresSaver class, passed in
        def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
            values = {
                k: Boxed(v) if isinstance(v, str) else v for k, v in checkpoint["channel_values"].items()
            }
            return super().put(config, {**checkpoint, "channel_values": values}, metadata, new_versions)

    return EncryptedPostgresSaver


@contextmanager
def open_checkpointer(
    url_or_path: str | Path, *, serde: SerializerProtocol | None = None
) -> Iterator[BaseCheckpointSaver]:
    """Open a checkpointer for the life of the `with` block.

    `serde` defaults to `checkpoint_serde(Settings.from_env())` (redacting, encrypted).

    - ``"memory"``: `InMemorySaver` (nothing survives the process);
    - ``postgres://...``: `PostgresSaver` (needs the ``postgres`` extra; tables are created on open);
    - a path or ``sqlite:///path``: `SqliteSaver` on that file (parent directories created).
    """
    target = str(url_or_path)
    if serde is None:
        from config.settings import Settings
        from memory.serde import checkpoint_serde

        serde = checkpoint_serde(Settings.from_env())
    if target in ("memory", ":memory:"):
        yield InMemorySaver(serde=serde)
        return
    if target.startswith(_POSTGRES):
        try:
            from langgraph.checkpoint.postgres import PostgresSaver
        except ImportError as exc:
            raise CheckpointerUnavailable(
                "a postgres:// checkpointer needs langgraph-checkpoint-postgres and psycopg: "
                "pip install 'switchboard[postgres]'"
            ) from exc
        from psycopg import Connection
        from psycopg.rows import dict_row

        # PostgresSaver.from_conn_string takes no serde; the same connection settings, with ours.
        with Connection.connect(target, autocommit=True, prepare_threshold=0, row_factory=dict_row) as pg_conn:
            saver = _postgres_saver(PostgresSaver)(pg_conn, serde=serde)
            saver.setup()
            yield saver
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
        saver = SqliteSaver(conn, serde=serde)
        saver.setup()
        yield saver
    finally:
        conn.close()
