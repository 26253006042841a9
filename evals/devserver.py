"""Start a real `langgraph dev` for this project on a free loopback port, and stop it afterwards.

Used by the red-team eval (`app.py eval redteam` without `--url`) and, through tests/devserver.py, by the server
tests. The server runs from the repository with its own data directory; logs go outside the watched folder.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class DevServerUnavailable(RuntimeError):
    """langgraph-cli is not installed: the server cannot be started here."""


class DevServerFailed(RuntimeError):
    """The server exited or did not answer in time; the message carries the tail of its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def langgraph_cli() -> Path:
    cli = Path(sys.executable).parent / "langgraph"
    if not cli.exists():
        raise DevServerUnavailable("langgraph-cli is not installed (make test installs it)")
    return cli


@contextmanager
def dev_server(
    data: Path, model_cache: Path, logs: Path, *, drop_env: Iterable[str] = (), env: Mapping[str, str] | None = None,
    timeout_s: float = 120.0,
) -> Iterator[str]:
    """Serve this project from `data`; yields the base URL once /ok answers. `env` adds variables for the server."""
    import httpx

    cli = langgraph_cli()
    port = free_port()
    child = {
        **os.environ,
        "SWITCHBOARD_DATA_DIR": str(data),
        "SWITCHBOARD_MODEL_CACHE": str(model_cache),
        "LANGSMITH_TRACING": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "1",
        "ANONYMIZED_TELEMETRY": "False",
        **(env or {}),
    }
    for var in ("OPENAI_API_KEY", *drop_env):
        child.pop(var, None)
    with logs.open("w") as log:
        proc = subprocess.Popen(
            [str(cli), "dev", "--port", str(port), "--host", "127.0.0.1", "--no-browser", "--no-reload"],
            cwd=REPO,
            env=child,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise DevServerFailed(f"langgraph dev exited with {proc.returncode}:\n{logs.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise DevServerFailed(f"langgraph dev did not answer on {url}:\n{logs.read_text()[-3000:]}")
            time.sleep(0.5)  # polling a subprocess's readiness, not waiting on our own state
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        text = logs.read_text()
        if "BlockingError" in text:
            raise DevServerFailed(f"blocking I/O inside an async node:\n{text[-3000:]}")
