"""Start a real Chroma server (`chroma run`, from the chromadb package) on a free loopback port for a test."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.devserver import free_port


def chroma_cli() -> Path:
    cli = Path(sys.executable).parent / "chroma"
    if not cli.exists():
        pytest.skip("the chroma CLI is not installed (it comes with the chromadb package)")
    return cli


@contextmanager
def chroma_server(path: Path, logs: Path) -> Iterator[str]:
    """Serve a Chroma store at `path` on 127.0.0.1; yields its URL once the heartbeat answers."""
    import httpx

    port = free_port()
    with logs.open("w") as log:
        proc = subprocess.Popen(
            [str(chroma_cli()), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"chroma run exited with {proc.returncode}:\n{logs.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"chroma run did not answer on {url}:\n{logs.read_text()[-3000:]}")
            time.sleep(0.2)  # polling a subprocess's readiness
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
