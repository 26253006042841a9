"""Each `langgraph dev` a test starts is a new server: its threads and store start empty, whatever an earlier one
(in this run or an earlier run of the suite) kept. The in-memory server persists both in `.langgraph_api/` under
its working directory and reloads them on start, so evals.devserver gives each server a fresh directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from config.settings import Settings
from tests.devserver import dev_server, langgraph_cli

pytestmark = pytest.mark.server
REPO = Path(__file__).resolve().parents[1]


def test_a_second_server_sees_nothing_the_first_one_kept(
    seeded_settings: Settings, model_cache: Path, tmp_path: Path
) -> None:
    from langgraph_sdk import get_sync_client

    from auth.keys import KeyStore

    langgraph_cli()
    data = tmp_path / "data"
    shutil.copytree(seeded_settings.data_dir, data)
    key, _ = KeyStore(data / "auth.sqlite").create("iso-demo")
    before = sorted(p.name for p in REPO.iterdir())
    kept = {}
    for n in (1, 2):
        with dev_server(data, model_cache, tmp_path / f"server-{n}.log") as url:
            client = get_sync_client(url=url, api_key=key)
            found = client.store.search_items(("default", "iso-demo", "prefs"), limit=10)["items"]
            threads = client.threads.search(limit=10)
            kept[n] = (found, threads)
            client.store.put_item(["default", "iso-demo", "prefs"], "tone", {"value": "brief"})
            client.threads.create()
    assert kept[1] == ([], [])
    assert kept[2] == ([], [])  # the first server's store item and thread are not the second's
    assert sorted(p.name for p in REPO.iterdir()) == before  # nothing written into the project folder
