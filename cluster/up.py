"""`make cluster` / `make cluster-down`: two Aegra instances on Postgres + Redis + a Chroma server, on loopback.

    python -m cluster.up up        # start (or reuse) everything, print each instance's URL, return once they answer
    python -m cluster.up status    # what runs, from the state file
    python -m cluster.up down      # stop what `up` started (data and databases are kept)

Run it with the Aegra virtualenv's Python (`make cluster` does): the instances, `aegra db upgrade` and `chroma run`
come from that virtualenv. Settings come from config/cluster.yaml (CLUSTER_POSTGRES_URL, CLUSTER_REDIS_URL and
CLUSTER_INSTANCES override it); the state file, logs, the Chroma store and the data directory live under `.cluster/`
(CLUSTER_DIR).

`up` goes: Postgres and Redis reachable (else, with Docker, `docker compose -f cluster/docker-compose.yml up`; else it
says exactly what is missing and exits 1) -> the two databases created if missing -> Aegra's migrations -> a Chroma
server -> the demo seeded into them (`app.py seed`: shop in Postgres, knowledge base in Chroma; idempotent) -> the
instances, each on a free port, with the same auth (aegra.json) and the same SWITCHBOARD_* settings.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cluster.launch import (
    REPO,
    ClusterError,
    Server,
    aegra_env,
    aegra_migrate,
    start_aegra,
    start_chroma,
    wait_ready,
)

CONFIG = REPO / "config" / "cluster.yaml"
COMPOSE = REPO / "cluster" / "docker-compose.yml"
COMPOSE_PROJECT = "switchboard-cluster"


class AegraWorkers(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    worker_count: int = Field(3, ge=1)
    jobs_per_worker: int = Field(10, ge=1)
    lease_s: int = Field(30, ge=3)
    heartbeat_s: int = Field(10, ge=1)
    reaper_s: int = Field(15, ge=1)
    # Checkpoint durability of every run (AEGRA_CHECKPOINT_DURABILITY, over aegra.json's "sync"): "sync" writes a
    # checkpoint after every step, so a run re-queued from a dead instance resumes at its last step; "exit" writes
    # one when the run stops (answer, interrupt, error): about 30% less CPU per ticket (bench/reports/load.md), and a
    # re-queued run starts again from its input or the interrupt it resumed (side effects replay through the ledger).
    durability: Literal["sync", "async", "exit"] = "sync"


class ClusterConfig(BaseModel):
    """config/cluster.yaml, validated."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    version: int = 1
    host: str = "127.0.0.1"
    instances: int = Field(2, ge=1, le=8)
    postgres_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    aegra_database: str = Field("switchboard_aegra", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    switchboard_database: str = Field("switchboard", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    redis_url: str = "redis://127.0.0.1:6379/0"
    aegra: AegraWorkers = AegraWorkers()

    @field_validator("host")
    @classmethod
    def _loopback(cls, host: str) -> str:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the local cluster binds loopback only (127.0.0.1); see README, Scale-out, for more hosts")
        return host

    def database(self, name: str) -> str:
        parts = urlsplit(self.postgres_url)
        return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def load_config(path: Path = CONFIG, env: dict[str, str] | None = None) -> ClusterConfig:
    e = os.environ if env is None else env
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ClusterError(f"cannot read {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ClusterError(f"{path} must hold a mapping")
    for key, var in (("postgres_url", "CLUSTER_POSTGRES_URL"), ("redis_url", "CLUSTER_REDIS_URL"),
                     ("instances", "CLUSTER_INSTANCES")):  # fmt: skip
        if e.get(var):
            raw[key] = e[var]
    try:
        return ClusterConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in exc.errors())
        raise ClusterError(f"{path}: {problems}") from None


def state_dir() -> Path:
    return Path(os.environ.get("CLUSTER_DIR", REPO / ".cluster")).expanduser().resolve()


# ------------------------------------------------------------------ services the cluster needs
def postgres_problem(url: str) -> str | None:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def redis_problem(url: str) -> str | None:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        try:
            client.ping()
        finally:
            client.close()
        return None
    except redis.RedisError as exc:
        return str(exc) or type(exc).__name__


def docker_compose() -> list[str] | None:
    """The `docker compose` command when Docker (with the compose plugin) answers here, else None."""
    docker = shutil.which("docker")
    if not docker:
        return None
    ok = subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    alive = subprocess.run([docker, "info"], capture_output=True).returncode == 0
    return [docker, "compose", "-f", str(COMPOSE), "-p", COMPOSE_PROJECT] if ok and alive else None


def ensure_backends(cfg: ClusterConfig, say: Any) -> bool:
    """Postgres and Redis reachable; started with Docker Compose when they are not and Docker is here.

    Returns True when this call started them with Docker (so `down` stops them too)."""
    problems = {"PostgreSQL": postgres_problem(cfg.postgres_url), "Redis": redis_problem(cfg.redis_url)}
    if not any(problems.values()):
        say(f"reusing PostgreSQL at {cfg.postgres_url} and Redis at {cfg.redis_url}")
        return False
    compose = docker_compose()
    if compose is None:
        lines = ["make cluster needs PostgreSQL and Redis running, and found:"]
        if problems["PostgreSQL"]:
            lines.append(
                f"  - PostgreSQL at {cfg.postgres_url} (an account allowed to CREATE DATABASE): not reachable "
                f"({problems['PostgreSQL']})"
            )
        if problems["Redis"]:
            lines.append(f"  - Redis at {cfg.redis_url}: not reachable ({problems['Redis']})")
        lines += [
            "Start them (e.g. Debian/Ubuntu: apt-get install postgresql redis-server; PostgreSQL >= 12, Redis >= 6),",
            "or point CLUSTER_POSTGRES_URL / CLUSTER_REDIS_URL at yours, or install Docker with the compose plugin",
            f"and run make cluster again: it starts {COMPOSE.relative_to(REPO)} (postgres:16, redis:7, loopback).",
        ]
        raise ClusterError("\n".join(lines))
    say("PostgreSQL/Redis not reachable: starting them with docker compose")
    subprocess.run([*compose, "up", "-d", "--wait"], check=True)
    deadline = time.monotonic() + 90
    while postgres_problem(cfg.postgres_url) or redis_problem(cfg.redis_url):
        if time.monotonic() > deadline:
            raise ClusterError("docker compose started, but PostgreSQL/Redis still do not answer")
        time.sleep(1)  # waiting on the containers
    return True


def ensure_database(admin_url: str, name: str) -> bool:
    """Create database `name` when it is missing; True when created."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        conn.execute(f'CREATE DATABASE "{name}"')
        return True


# ------------------------------------------------------------------ state
def read_state(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / "state.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def write_state(root: Path, state: dict[str, Any]) -> None:
    tmp = root / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(root / "state.json")


def _ours(pid: int, marker: str) -> bool:
    """True when `pid` still runs the program we started (a recycled pid is left alone)."""
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def running(state: dict[str, Any]) -> bool:
    """Every process of the recorded cluster is ours, alive, and answering."""
    procs = [state["chroma"], *state["instances"]]
    return all(_ours(p["pid"], p["marker"]) and _answers(p["url"] + p["ready"]) for p in procs)


def _stop(pid: int, marker: str, timeout_s: float = 30) -> bool:
    if not _ours(pid, marker):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _ours(pid, marker) and time.monotonic() < deadline:
        time.sleep(0.2)  # waiting for the process to exit
    if _ours(pid, marker):
        os.kill(pid, signal.SIGKILL)
    return True


# ------------------------------------------------------------------ commands
def key_command(switchboard_env: Mapping[str, str]) -> str:
    """The `app.py apikey create` line to print: with every SWITCHBOARD_* variable the instances run with, so the key
    lands in the store they read (the database, once SWITCHBOARD_DATABASE_URL is set, not data_dir/auth.sqlite)."""
    env = sorted((k, v) for k, v in switchboard_env.items() if k.startswith("SWITCHBOARD_"))
    assigned = " ".join(f"{k}={shlex.quote(v)}" for k, v in env)
    return f"{assigned} {shlex.quote(sys.executable)} app.py apikey create --user demo --json"


def up(cfg: ClusterConfig, root: Path, say: Any = print) -> dict[str, Any]:
    venv = Path(sys.prefix)
    state = read_state(root)
    if state and running(state):
        say("cluster already running (reused):")
        _print_urls(state, say)
        return state
    if state:
        down(root, say=lambda *_: None, keep_backends=True)
    root.mkdir(parents=True, exist_ok=True)
    logs, data = root / "logs", root / "data"
    docker = ensure_backends(cfg, say)
    for name in (cfg.aegra_database, cfg.switchboard_database):
        if ensure_database(cfg.postgres_url, name):
            say(f"created database {name}")
    aegra_url, shop_url = cfg.database(cfg.aegra_database), cfg.database(cfg.switchboard_database)
    switchboard = {
        "SWITCHBOARD_DATA_DIR": str(data),
        "SWITCHBOARD_DATABASE_URL": shop_url,
        "SWITCHBOARD_REDIS_URL": cfg.redis_url,
    }
    env = aegra_env(database_url=aegra_url, redis_url=cfg.redis_url, switchboard_env=switchboard)
    aegra_migrate(venv, env, logs / "migrate.log")
    say("Aegra migrations applied (aegra db upgrade)")
    chroma = start_chroma(venv, root / "chroma", logs / "chroma.log", host=cfg.host)
    state = {
        "config": cfg.model_dump(),
        "docker": docker,
        "data_dir": str(data),
        "chroma": _record(chroma, "chroma", "/api/v2/heartbeat"),
        "instances": [],
    }
    write_state(root, state)
    switchboard["SWITCHBOARD_CHROMA_URL"] = chroma.url
    say(f"Chroma server at {chroma.url}; seeding the demo (first time: builds the encoder and trains the classifier)")
    seeded = subprocess.run(
        [sys.executable, "app.py", "seed", "--json"],
        cwd=REPO,
        env={**env, **switchboard},
        stdout=subprocess.DEVNULL,
        stderr=(logs / "seed.log").open("ab"),
    )
    if seeded.returncode != 0:
        raise ClusterError(f"seeding failed; see {logs / 'seed.log'}")
    env = aegra_env(
        database_url=aegra_url,
        redis_url=cfg.redis_url,
        switchboard_env=switchboard,
        extra={
            "WORKER_COUNT": str(cfg.aegra.worker_count),
            "N_JOBS_PER_WORKER": str(cfg.aegra.jobs_per_worker),
            "LEASE_DURATION_SECONDS": str(cfg.aegra.lease_s),
            "HEARTBEAT_INTERVAL_SECONDS": str(cfg.aegra.heartbeat_s),
            "REAPER_INTERVAL_SECONDS": str(cfg.aegra.reaper_s),
            "AEGRA_CHECKPOINT_DURABILITY": cfg.aegra.durability,
        },
    )
    # The first instance creates the store's and checkpointer's tables on start-up; instances starting at once on a
    # fresh database race on those CREATE statements, so the others start once the first answers.
    servers: list[Server] = []
    for i in range(cfg.instances):
        servers.append(start_aegra(venv, env, logs / f"aegra-{i + 1}.log", name=f"aegra-{i + 1}", host=cfg.host))
        state["instances"] = [_record(s, "aegra_api.main:app", "/health") for s in servers]
        write_state(root, state)
        if i == 0:
            wait_ready(servers[0], "/health")
    for server in servers[1:]:
        wait_ready(server, "/health")
    say("cluster up:")
    _print_urls(state, say)
    say(f"API keys: {key_command(switchboard)} (every instance reads the same key store)")
    say(f"logs: {logs}   stop: make cluster-down")
    return state


def _record(server: Server, marker: str, ready: str) -> dict[str, Any]:
    return {"name": server.name, "pid": server.pid, "url": server.url, "log": str(server.log), "marker": marker,
            "ready": ready}  # fmt: skip


def _print_urls(state: dict[str, Any], say: Any) -> None:
    for p in state["instances"]:
        say(f"  {p['name']}: {p['url']}")
    say(f"  chroma: {state['chroma']['url']}")


def down(root: Path, say: Any = print, *, keep_backends: bool = False) -> int:
    state = read_state(root)
    if not state:
        say("no cluster state here; nothing to stop")
        return 0
    stopped = [p["name"] for p in [*state["instances"], state["chroma"]] if p and _stop(p["pid"], p["marker"])]
    say(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
    if state.get("docker") and not keep_backends and (compose := docker_compose()):
        subprocess.run([*compose, "down"], check=False)
        say("stopped the docker compose PostgreSQL and Redis (their volume is kept)")
    (root / "state.json").unlink(missing_ok=True)
    return 0


def status(root: Path, say: Any = print) -> int:
    state = read_state(root)
    if not state:
        say("no cluster (make cluster starts one)")
        return 1
    for p in [*state["instances"], state["chroma"]]:
        alive = _ours(p["pid"], p["marker"])
        say(f"  {p['name']}: {p['url']} pid {p['pid']} {'up' if alive and _answers(p['url'] + p['ready']) else 'down'}")
    return 0 if running(state) else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cluster.up", description=__doc__.splitlines()[0])
    p.add_argument("command", choices=("up", "down", "status"))
    a = p.parse_args(argv)
    root = state_dir()
    try:
        if a.command == "up":
            up(load_config(), root)
            return 0
        if a.command == "down":
            return down(root)
        return status(root)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
