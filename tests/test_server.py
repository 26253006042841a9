"""`langgraph dev` serves the graph: a refund ticket runs to its approval interrupt over HTTP
(langgraph-sdk), is resumed, and the final state, history and past checkpoints are checked; the store as customers
read it. Loopback only (Studio's calls: tests/test_studio_server.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from config.settings import Settings
from tests.devserver import dev_server, langgraph_cli

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server(seeded_settings: Settings, model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    langgraph_cli()
    data = tmp_path_factory.mktemp("server") / "data"
    shutil.copytree(seeded_settings.data_dir, data)
    from auth.keys import KeyStore

    # The served API requires a key (tests/test_auth_server.py covers auth); an admin may also approve.
    keys = KeyStore(data / "auth.sqlite")
    key, _ = keys.create("demo", "default", "admin")
    CUSTOMERS.update(demo=keys.create("demo")[0], dora=keys.create("srv-dora")[0])
    logs = tmp_path_factory.mktemp("server-logs") / "server.log"  # outside the watched project folder
    with dev_server(data, model_cache, logs) as url, pytest.MonkeyPatch.context() as mp:
        mp.setenv("LANGGRAPH_API_KEY", key)  # langgraph-sdk clients send it as x-api-key
        yield url


CUSTOMERS: dict[str, str] = {}  # customer keys: demo (the same user as the admin key above) and srv-dora


def test_refund_ticket_interrupts_resumes_and_keeps_history(server: str) -> None:
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=server)
    assistants = client.assistants.search(graph_id="supervisor")
    assert assistants, "graph 'supervisor' is not served"
    schemas = client.assistants.get_schemas(assistants[0]["assistant_id"])
    assert schemas["input_schema"] and schemas["context_schema"]
    assert "messages" in schemas["input_schema"]["properties"]

    thread = client.threads.create()
    client.runs.wait(
        thread["thread_id"],
        "supervisor",
        input={"messages": [{"role": "user", "content": "I want a refund for order 1004, the monitor is faulty."}]},
        context={"user_id": "demo"},
    )
    state = client.threads.get_state(thread["thread_id"])
    interrupts = [i for task in state["tasks"] for i in task.get("interrupts", [])]
    assert len(interrupts) == 1
    payload = interrupts[0]["value"]
    assert payload["action_request"]["action"] == "issue_refund"
    assert payload["action_request"]["args"]["order_id"] == 1004
    assert set(payload["config"]) == {"allow_accept", "allow_edit", "allow_respond", "allow_ignore"}
    assert state["next"] == ["request_approval"]

    client.runs.wait(
        thread["thread_id"], "supervisor", command={"resume": {"type": "accept"}}, context={"user_id": "demo"}
    )
    final = client.threads.get_state(thread["thread_id"])
    values = final["values"]
    assert final["next"] == []
    assert values["status"] == "completed"
    assert values["action_result"]["ok"] is True
    assert values["route"][-3:] == ["review_gate", "guard_output", "remember"]
    assert values["messages"][-1]["type"] == "ai"

    history = client.threads.get_history(thread["thread_id"], limit=100)
    steps = [h["metadata"].get("step") for h in history]
    assert len(history) >= 10 and min(steps) <= 0
    asked = next(h for h in history if h["next"] == ["request_approval"])
    # A past checkpoint read back by id (GET /threads/{id}/state/{checkpoint_id}) and whole (POST .../checkpoint).
    for at in ({"checkpoint_id": asked["checkpoint"]["checkpoint_id"]}, {"checkpoint": asked["checkpoint"]}):
        past = client.threads.get_state(thread["thread_id"], **at)
        assert past["next"] == ["request_approval"] and past["values"]["status"] == "awaiting_approval", at


def test_preferences_go_to_the_servers_store_and_reach_the_next_thread(server: str) -> None:
    """Under `langgraph dev` the nodes use the server's store (runtime.store), which Studio's memory view and the
    SDK's store API show, namespaced by tenant and user."""
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=server)
    said = "Please contact me by email and do not call me. How long does delivery take?"
    first = client.threads.create()
    client.runs.wait(first["thread_id"], "supervisor", input={"messages": [{"role": "user", "content": said}]},
                     context={"user_id": "demo"})  # fmt: skip
    items = client.store.search_items(("default", "demo", "prefs"), limit=20)["items"]
    assert {i["key"]: i["value"] for i in items} == {"contact": {"value": "email"}, "avoid": {"value": "call"}}
    assert {tuple(i["namespace"]) for i in items} == {("default", "demo", "prefs")}
    second = client.threads.create()
    ask = {"messages": [{"role": "user", "content": "How long does delivery take?"}]}
    client.runs.wait(second["thread_id"], "supervisor", input=ask, context={"user_id": "demo"})
    pinned = client.threads.get_state(second["thread_id"])["values"]["pinned"]
    assert pinned["preferences"] == {"contact": "email", "avoid": "call"}


def test_health_and_metrics_routes_are_served(server: str) -> None:
    import httpx
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=server)
    thread = client.threads.create()
    client.runs.wait(
        thread["thread_id"],
        "supervisor",
        input={"messages": [{"role": "user", "content": "Where is my order 1006?"}]},
        context={"user_id": "demo"},
    )
    health = httpx.get(f"{server}/switchboard/health", timeout=10)
    assert health.status_code == 200, health.text
    body = health.json()
    assert body["status"] == "ok" and body["checks"]["shop_db"]["status"] == "ok"
    metrics = httpx.get(f"{server}/switchboard/metrics", timeout=10).text
    assert 'switchboard_node_seconds_count{node="retrieve_knowledge"}' in metrics
    assert "switchboard_tickets_total{" in metrics


def test_a_customer_sees_only_her_own_memory_in_the_store(server: str) -> None:
    from langgraph_sdk import get_sync_client

    dora = get_sync_client(url=server, api_key=CUSTOMERS["dora"])
    tid = dora.threads.create()["thread_id"]
    said = "Please only contact me by phone. How long does delivery take?"
    dora.runs.wait(tid, "supervisor", input={"messages": [{"role": "user", "content": said}]})
    mine = dora.store.list_namespaces(prefix=["default"], limit=100)["namespaces"]
    assert ["default", "srv-dora", "prefs"] in mine and all(ns[:2] == ["default", "srv-dora"] for ns in mine), mine
    items = dora.store.search_items(("default",), limit=100)["items"]  # a shorter prefix is narrowed to her own
    assert items and all(i["namespace"][:2] == ["default", "srv-dora"] for i in items)
    with pytest.raises(httpx.HTTPStatusError) as info:
        dora.store.search_items(("default", "demo", "prefs"))
    assert info.value.response.status_code == 403
    demo = get_sync_client(url=server, api_key=CUSTOMERS["demo"])
    theirs = demo.store.list_namespaces(prefix=["default"], limit=100)["namespaces"]
    assert theirs and not [ns for ns in theirs if ns[1] != "demo"], theirs
