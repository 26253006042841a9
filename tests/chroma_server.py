"""Start a real Chroma server (`chroma run`, from the chromadb package) on a free loopback port for a test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.devserver import free_port, serving


def chroma_cli() -> Path:
    cli = Path(sys.executable).parent / "chroma"
    if not cli.exists():
        pytest.skip("the chroma CLI is not installed (it comes with the chromadb package)")
    return cli


@contextmanager
def chroma_server(path: Path, logs: Path) -> Iterator[str]:
    """Serve a Chroma store at `path` on 127.0.0.1; yields its URL once the heartbeat answers."""
    port = free_port()
    argv = [str(chroma_cli()), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)]
    with serving(argv, port, "/api/v2/heartbeat", logs, what="chroma run", timeout_s=60, poll_s=0.2) as url:
        yield url
