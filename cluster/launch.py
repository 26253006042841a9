"""Starting the pieces of a cluster on this machine: Aegra instances, a Chroma server, Aegra's migrations.

Used by `make cluster` (cluster/up.py) and by the cluster tests. Nothing here imports Aegra: the instances run in
their own virtualenv (Aegra needs Python >= 3.12 and its own pins), named by `venv`. Every server binds loopback.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
QUIET_ENV = {
    "ANONYMIZED_TELEMETRY": "False",
    "LANGSMITH_TRACING": "false",
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "1",
    "PYTHONUNBUFFERED": "1",
}


# Aegra's own switches for the paths that build runs without the project's `threads.create_run` handler: the
# Agent Protocol v2 routes (`POST /threads/{thread_id}/commands`, `.../stream/events`: 503 when off) and the cron
# scheduler. Not the only guard: cluster/aegra_http.py refuses the command and cron-creating routes itself.
AEGRA_GATES_OFF = {"FF_V2_EVENT_STREAMING": "false", "CRON_ENABLED": "false"}


class ClusterError(RuntimeError):
    """Something the cluster needs is missing or did not start; the message says what."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def venv_bin(venv: Path, name: str) -> Path:
    path = Path(venv) / "bin" / name
    if not path.exists():
        raise ClusterError(f"{path} is missing: create the Aegra virtualenv with `make aegra-venv`")
    return path


@dataclass
class Server:
    """A server process this module started, with where it answers and where it logs."""

    name: str
    url: str
    proc: subprocess.Popen[Any]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, timeout_s: float = 30) -> None:
        if not self.alive():
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def _spawn(name: str, cmd: list[str], env: Mapping[str, str], log: Path, url: str, cwd: Path = REPO) -> Server:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Server(name, url, proc, log)


def wait_ready(server: Server, path: str, *, timeout_s: float = 180, headers: Mapping[str, str] | None = None) -> None:
    """Poll `server.url + path` until it answers 200; raises ClusterError with the log's tail otherwise."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        if not server.alive():
            raise ClusterError(f"{server.name} exited with {server.proc.returncode}:\n{server.tail()}")
        try:
            if httpx.get(server.url + path, timeout=3, headers=dict(headers or {})).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise ClusterError(
                f"{server.name} did not answer on {server.url}{path} in {timeout_s:.0f} s:\n{server.tail()}"
            )
        time.sleep(0.5)  # polling a subprocess's readiness


def start_chroma(venv: Path, path: Path, log: Path, *, host: str = "127.0.0.1", port: int = 0) -> Server:
    """`chroma run` (from the chromadb package) serving the store at `path`."""
    port = port or free_port(host)
    path.mkdir(parents=True, exist_ok=True)
    cmd = [str(venv_bin(venv, "chroma")), "run", "--path", str(path), "--host", host, "--port", str(port)]
    server = _spawn("chroma", cmd, {**os.environ, **QUIET_ENV}, log, f"http://{host}:{port}")
    wait_ready(server, "/api/v2/heartbeat", timeout_s=60)
    return server


def aegra_env(
    *,
    database_url: str,
    redis_url: str,
    switchboard_env: Mapping[str, str],
    config: Path = REPO / "aegra.json",
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of one Aegra instance: Aegra's own settings, then Switchboard's (SWITCHBOARD_*)."""
    env = {
        **os.environ,
        **QUIET_ENV,
        "AEGRA_CONFIG": str(config),
        "DATABASE_URL": database_url,
        "REDIS_BROKER_ENABLED": "true",
        "REDIS_URL": redis_url,
        "RUN_MIGRATIONS_ON_STARTUP": "false",  # `aegra db upgrade` runs once, before the instances start
        "LOG_LEVEL": "WARNING",
        "ENV_MODE": "PRODUCTION",
        # Off: what starts runs past the project's create_run handler (v2 thread commands; the cron scheduler).
        # cluster/aegra_http.py refuses those routes anyway, whatever these say.
        **AEGRA_GATES_OFF,
        **switchboard_env,
        **(extra or {}),
    }
    for var in ("OPENAI_API_KEY", "VIRTUAL_ENV", "PYTHONPATH"):
        if var not in switchboard_env and var not in (extra or {}):
            env.pop(var, None)
    return env


def aegra_migrate(venv: Path, env: Mapping[str, str], log: Path) -> None:
    """Aegra's schema migrations (`aegra db upgrade`) on the database in env DATABASE_URL."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        done = subprocess.run(
            [str(venv_bin(venv, "aegra")), "db", "upgrade"], cwd=REPO, env=dict(env), stdout=out, stderr=out
        )
    if done.returncode != 0:
        raise ClusterError(f"aegra db upgrade failed ({done.returncode}); see {log}")


def start_aegra(
    venv: Path, env: Mapping[str, str], log: Path, *, name: str, host: str = "127.0.0.1", port: int = 0
) -> Server:
    """One Aegra instance (uvicorn running aegra_api.main:app directly, so `pid` is the server itself)."""
    port = port or free_port(host)
    cmd = [str(venv_bin(venv, "python")), "-m", "uvicorn", "aegra_api.main:app", "--host", host, "--port", str(port),
           "--no-access-log"]  # fmt: skip
    return _spawn(name, cmd, env, log, f"http://{host}:{port}")
