"""Issue 9, concurrent runs on one thread under a real `langgraph dev`: refused or queued, never forked.

The CLI guards a thread with its own lease (memory.locks; tests/test_durability.py). The served API guards it with
the LangGraph API's `multitask_strategy`: "reject" answers 409 while a run is in flight, and the default (verified
here: "enqueue" in langgraph-api 0.16) queues the second run until the first has finished. To keep the first run in
flight deterministically, the server's model points at bench.fault_server on loopback, which holds the answer of the
approved refund (after its write, before its reply) until the test releases it. Then the shop must hold one refund,
one ledger entry, and the thread one unforked line of checkpoints.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.fault_server import FaultServer
from config.settings import Settings
from tests.devserver import dev_server, langgraph_cli

pytestmark = pytest.mark.server

REFUND = "I want a refund for order 1004, the monitor is faulty."
MODEL = "served-primary"


@pytest.fixture(scope="module")
def served(
    seeded_settings: Settings, model_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path, FaultServer]]:
    langgraph_cli()
    from auth.keys import KeyStore

    data = tmp_path_factory.mktemp("concurrency-server") / "data"
    shutil.copytree(seeded_settings.data_dir, data)
    key, _ = KeyStore(data / "auth.sqlite").create("demo", "default", "admin")
    logs = tmp_path_factory.mktemp("concurrency-server-logs") / "server.log"  # outside the watched project folder
    with FaultServer() as models, pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWITCHBOARD_LLM_BASE_URL", models.url)  # every tier of the served chain talks to the fault server
        mp.setenv("SWITCHBOARD_LLM_MODEL", MODEL)
        mp.delenv("SWITCHBOARD_LLM_FALLBACK_MODEL", raising=False)
        mp.delenv("SWITCHBOARD_REDIS_URL", raising=False)
        with dev_server(data, model_cache, logs) as url:
            mp.setenv("LANGGRAPH_API_KEY", key)
            yield url, data, models


def ledger(data: Path) -> tuple[int, int]:
    """(ledger entries of issue_refund, refunds of order 1004 written since seeding)."""
    with sqlite3.connect(data / "shop.sqlite") as conn:
        entries = conn.execute("SELECT count(*) FROM action_ledger WHERE tool = 'issue_refund'").fetchone()[0]
        refunds = conn.execute("SELECT count(*) FROM refunds WHERE order_id = 1004").fetchone()[0]
    return entries, refunds


def test_a_second_run_on_a_busy_thread_is_refused_or_queued_never_forked(
    served: tuple[str, Path, FaultServer],
) -> None:
    from langgraph_sdk import get_sync_client
    from langgraph_sdk.errors import ConflictError

    url, data, models = served
    client = get_sync_client(url=url)
    thread = client.threads.create()["thread_id"]
    ctx: dict[str, Any] = {"user_id": "demo"}
    client.runs.wait(thread, "supervisor", input={"messages": [{"role": "user", "content": REFUND}]}, context=ctx)
    state = client.threads.get_state(thread)
    assert state["next"] == ["request_approval"], state["next"]
    _, refunds_before = ledger(data)

    # Every model the approved run may ask answers only when released: the run stays in flight after its write.
    for model in (MODEL, "gpt-4o"):
        models.script(model, ["hold"])
    asked = models.count()
    accept = {"resume": {"type": "accept"}}
    first = client.runs.create(thread, "supervisor", command=accept, context=ctx, multitask_strategy="reject")
    assert models.wait_for(None, asked + 1, timeout=60), "the approved run never reached its model"
    assert ledger(data) == (1, refunds_before + 1)  # the write is done; the run waits on its reply

    with pytest.raises(ConflictError) as refused:  # "reject": 409 while a run is in flight
        client.runs.create(thread, "supervisor", command=accept, context=ctx, multitask_strategy="reject")
    assert refused.value.response.status_code == 409
    queued = client.runs.create(thread, "supervisor", command=accept, context=ctx)  # the default strategy
    assert client.runs.get(thread, queued["run_id"])["status"] == "pending"  # queued behind the first, not running
    assert client.runs.get(thread, first["run_id"])["status"] == "running"

    models.release()
    client.runs.join(thread, first["run_id"])
    assert client.runs.get(thread, first["run_id"])["status"] == "success"
    client.runs.join(thread, queued["run_id"])
    assert client.runs.get(thread, queued["run_id"])["status"] == "success"  # ran after: nothing left to approve

    final = client.threads.get_state(thread)
    assert final["values"]["status"] == "completed" and final["values"]["action_result"]["ok"] is True
    assert ledger(data) == (1, refunds_before + 1)  # one effect, whatever the second run did
    history = client.threads.get_history(thread, limit=200)  # newest first
    parents = [h["parent_checkpoint"]["checkpoint_id"] for h in history[:-1]]
    assert parents == [h["checkpoint"]["checkpoint_id"] for h in history[1:]]  # one line: nothing forked
