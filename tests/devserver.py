"""Start a real `langgraph dev` on a free loopback port for the server tests, and stop it afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def langgraph_cli() -> Path:
    cli = Path(sys.executable).parent / "langgraph"
    if not cli.exists():
        pytest.skip("langgraph-cli is not installed (make test installs it)")
    return cli


@contextmanager
def dev_server(data: Path, model_cache: Path, logs: Path, *, drop_env: Iterable[str] = ()) -> Iterator[str]:
    """Serve this project from `data` (logs outside the watched folder); yields the base URL once /ok answers."""
    import httpx

    cli = langgraph_cli()
    port = free_port()
    env = {
        **os.environ,
        "SWITCHBOARD_DATA_DIR": str(data),
        "SWITCHBOARD_MODEL_CACHE": str(model_cache),
        "LANGSMITH_TRACING": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "1",
        "ANONYMIZED_TELEMETRY": "False",
    }
    for var in ("OPENAI_API_KEY", *drop_env):
        env.pop(var, None)
    with logs.open("w") as log:
        proc = subprocess.Popen(
            [str(cli), "dev", "--port", str(port), "--host", "127.0.0.1", "--no-browser", "--no-reload"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"langgraph dev exited with {proc.returncode}:\n{logs.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"langgraph dev did not answer on {url}:\n{logs.read_text()[-3000:]}")
            time.sleep(0.5)  # polling a subprocess's readiness, not waiting on our own state
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        text = logs.read_text()
        assert "BlockingError" not in text, text[-3000:]
