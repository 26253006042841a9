"""The server tests' `langgraph dev` (evals/devserver.py) with pytest's skip and fail, and `serving` for other
loopback servers the tests start (chroma run)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from evals import devserver
from evals.devserver import REPO, free_port

__all__ = ["REPO", "dev_server", "free_port", "langgraph_cli", "serving"]


def langgraph_cli() -> Path:
    try:
        return devserver.langgraph_cli()
    except devserver.DevServerUnavailable as exc:
        pytest.skip(str(exc))


@contextmanager
def dev_server(
    data: Path, model_cache: Path, logs: Path, *, drop_env: Iterable[str] = (), env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Serve this project from `data` (logs outside the watched folder); yields the base URL once /ok answers."""
    langgraph_cli()
    try:
        with devserver.dev_server(data, model_cache, logs, drop_env=drop_env, env=env) as url:
            yield url
    except devserver.DevServerFailed as exc:
        pytest.fail(str(exc))


@contextmanager
def serving(
    argv: list[str], port: int, health: str, logs: Path, *, what: str, timeout_s: float, poll_s: float,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """evals.devserver.serving for a test: a server that exits or does not answer fails the test."""
    try:
        with devserver.serving(argv, port, health, logs, what=what, timeout_s=timeout_s, poll_s=poll_s, env=env) as url:
            yield url
    except devserver.DevServerFailed as exc:
        pytest.fail(str(exc))
