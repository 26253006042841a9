"""`make cluster`'s recipe (cluster/up.py) without starting anything: its config is validated at start-up, and a
machine without Postgres or Redis (and without Docker) is told exactly what is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster import up
from cluster.launch import ClusterError


def test_the_shipped_config_is_valid_and_env_overrides_the_urls() -> None:
    cfg = up.load_config(env={})
    assert cfg.instances == 2 and cfg.host == "127.0.0.1"
    assert cfg.database(cfg.aegra_database).endswith(f"/{cfg.aegra_database}")
    over = up.load_config(env={"CLUSTER_POSTGRES_URL": "postgresql://sb@127.0.0.1:6543/admin",
                               "CLUSTER_REDIS_URL": "redis://127.0.0.1:6380/2", "CLUSTER_INSTANCES": "1"})  # fmt: skip
    assert over.database("x") == "postgresql://sb@127.0.0.1:6543/x" and over.redis_url.endswith(":6380/2")
    assert over.instances == 1
    assert cfg.aegra.durability == "sync"  # a checkpoint after every step unless the operator chooses otherwise


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("host: 0.0.0.0\n", "binds loopback only"),
        ("instances: 0\n", "instances"),
        ("aegra_database: 'drop table'\n", "aegra_database"),
        ("postgress_url: x\n", "postgress_url"),
        ("aegra: {durability: never}\n", "durability"),
        ("- just a list\n", "must hold a mapping"),
    ],
)
def test_a_bad_config_is_refused_with_its_key(tmp_path: Path, text: str, phrase: str) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    with pytest.raises(ClusterError, match=phrase):
        up.load_config(path, env={})


def test_missing_postgres_and_redis_without_docker_say_what_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.devserver import free_port

    monkeypatch.setattr(up, "docker_compose", lambda: None)
    port = free_port()  # nothing listens there
    cfg = up.ClusterConfig(postgres_url=f"postgresql://postgres@127.0.0.1:{port}/postgres",
                           redis_url=f"redis://127.0.0.1:{port}/0")  # fmt: skip
    with pytest.raises(ClusterError) as exc:
        up.ensure_backends(cfg, say=lambda *_: None)
    text = str(exc.value)
    assert f"PostgreSQL at postgresql://postgres@127.0.0.1:{port}/postgres" in text and "CREATE DATABASE" in text
    assert f"Redis at redis://127.0.0.1:{port}/0: not reachable" in text
    assert "CLUSTER_POSTGRES_URL" in text and "docker-compose.yml" in text


def test_instances_start_with_aegras_run_paths_past_the_handlers_off() -> None:
    from cluster.launch import aegra_env

    env = aegra_env(database_url="postgresql://x", redis_url="redis://x", switchboard_env={})
    assert (env["FF_V2_EVENT_STREAMING"], env["CRON_ENABLED"]) == ("false", "false")
    on = aegra_env(database_url="postgresql://x", redis_url="redis://x", switchboard_env={},
                   extra={"FF_V2_EVENT_STREAMING": "true"})  # fmt: skip
    assert on["FF_V2_EVENT_STREAMING"] == "true"  # tests/test_cluster.py turns it on: the app layer refuses anyway


def test_down_without_a_cluster_stops_nothing(tmp_path: Path) -> None:
    said: list[str] = []
    assert up.down(tmp_path, say=said.append) == 0 and said == ["no cluster state here; nothing to stop"]
    assert up.status(tmp_path, say=said.append) == 1


def test_a_recycled_pid_is_never_taken_for_ours(tmp_path: Path) -> None:
    import os

    assert not up._ours(os.getpid(), "aegra_api.main:app")  # this pytest process is not an Aegra instance
    assert not up._stop(os.getpid(), "aegra_api.main:app")


def test_the_printed_key_command_writes_to_the_key_store_the_instances_read(tmp_path: Path) -> None:
    """`make cluster` prints how to make an API key; the instances keep keys in the database, so a line without
    SWITCHBOARD_DATABASE_URL made a key in data_dir/auth.sqlite that every instance refused (401)."""
    import shlex

    from cluster.up import key_command
    from config.settings import Settings

    instances = {"SWITCHBOARD_DATA_DIR": str(tmp_path / "data dir"), "SWITCHBOARD_REDIS_URL": "redis://127.0.0.1:6379/0",
                 "SWITCHBOARD_DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/switchboard",
                 "SWITCHBOARD_CHROMA_URL": "http://127.0.0.1:8000"}  # fmt: skip
    words = shlex.split(key_command(instances))
    assigned = dict(w.split("=", 1) for w in words if "=" in w and w.split("=", 1)[0].startswith("SWITCHBOARD_"))
    assert words[len(assigned) + 1 :] == ["app.py", "apikey", "create", "--user", "demo", "--json"]
    assert Settings.from_env(assigned).auth_target == Settings.from_env(instances).auth_target
    assert Settings.from_env(assigned).auth_target == instances["SWITCHBOARD_DATABASE_URL"]
