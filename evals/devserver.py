"""Start a real `langgraph dev` for this project on a free loopback port, and stop it afterwards.

Used by the red-team eval (`app.py eval redteam` without `--url`) and, through tests/devserver.py, by the server
tests. The server runs from the repository with its own data directory; logs go outside the watched folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
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
    # The in-memory server keeps its threads and store in `.langgraph_api/` under its working directory and loads
    # them on the next start. Each server runs in a fresh directory of its own (the project's files linked in, as
    # langgraph.json names them relative to it), so no server sees another's threads or store items: from the
    # repo's folder, a second run of the suite met the first one's stored preferences.
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-devserver-"))
    for entry in REPO.iterdir():
        if entry.name not in (".langgraph_api", ".git"):
            (workdir / entry.name).symlink_to(entry)
    argv = [str(cli), "dev", "--port", str(port), "--host", "127.0.0.1", "--no-browser", "--no-reload",
            "--config", str(workdir / "langgraph.json")]  # fmt: skip
    try:
        with serving(argv, port, "/ok", logs, what="langgraph dev", timeout_s=timeout_s, poll_s=0.5, env=child,
                     cwd=workdir) as url:  # fmt: skip
            yield url
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        text = logs.read_text() if logs.exists() else ""
        if "BlockingError" in text:
            raise DevServerFailed(f"blocking I/O inside an async node:\n{text[-3000:]}")


@contextmanager
def serving(
    argv: list[str], port: int, health: str, logs: Path, *, what: str, timeout_s: float, poll_s: float,
    env: Mapping[str, str] | None = None, cwd: Path = REPO,
) -> Iterator[str]:
    """Run server `argv` (output to `logs`, in `cwd`) on 127.0.0.1:`port`; yields its URL once GET `health` answers
    200, and stops it afterwards. Raises DevServerFailed (with the log's tail) if it exits or does not answer in
    time."""
    import httpx

    with logs.open("w") as log:
        proc = subprocess.Popen(argv, cwd=cwd, env=dict(env) if env is not None else None, stdout=log,
                                stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise DevServerFailed(f"{what} exited with {proc.returncode}:\n{logs.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}{health}", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise DevServerFailed(f"{what} did not answer on {url}:\n{logs.read_text()[-3000:]}")
            time.sleep(poll_s)  # polling a subprocess's readiness, not waiting on our own state
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
