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
    argv = [str(cli), "dev", "--port", str(port), "--host", "127.0.0.1", "--no-browser", "--no-reload"]
    try:
        with serving(argv, port, "/ok", logs, what="langgraph dev", timeout_s=120, poll_s=0.5, env=env) as url:
            yield url
    finally:
        text = logs.read_text()
        assert "BlockingError" not in text, text[-3000:]


@contextmanager
def serving(
    argv: list[str],
    port: int,
    health: str,
    logs: Path,
    *,
    what: str,
    timeout_s: float,
    poll_s: float,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Run server `argv` (output to `logs`) on 127.0.0.1:`port`; yields its URL once GET `health` answers 200,
    and stops it afterwards. Fails the test (with the log's tail) if it exits or does not answer in time."""
    import httpx

    with logs.open("w") as log:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{what} exited with {proc.returncode}:\n{logs.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}{health}", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{what} did not answer on {url}:\n{logs.read_text()[-3000:]}")
            time.sleep(poll_s)  # polling a subprocess's readiness, not waiting on our own state
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
