"""What LangGraph Studio does on a local server, under `make serve STUDIO=1`: a real `langgraph dev` with
SWITCHBOARD_AUTH_ALLOW_STUDIO=1, driven by langgraph-sdk sending what Studio sends (no API key, `x-auth-scheme:
langsmith`, from loopback). Loopback only.

Studio itself is a hosted web app (smith.langchain.com/studio/?baseUrl=...), unreachable offline, so these tests call
the langgraph-api routes behind its views, with its auth:

| Studio view                    | routes                                                                             |
|--------------------------------|------------------------------------------------------------------------------------|
| connect                        | `GET /info`, CORS preflight from the Studio origin                                 |
| graph picker, assistants       | `POST /assistants/search`, `GET /assistants/{id}`                                  |
| graph (with subgraphs, "xray") | `GET /assistants/{id}/graph?xray=true`, `GET /assistants/{id}/subgraphs`           |
| input / state / configuration  | `GET /assistants/{id}/schemas`                                                     |
| threads list                   | `POST /threads/search`, `POST /threads`                                            |
| run (graph and chat mode)      | `POST /threads/{id}/runs/stream` (values, updates, messages-tuple, custom, debug)  |
| interrupt, resume              | `GET /threads/{id}/state`, `command.resume` on a run                               |
| history, time travel (fork)    | `POST /threads/{id}/history`, `POST /threads/{id}/state` (`__copy__`)              |
| memory                         | `POST /store/namespaces`, `POST /store/items/search`                               |

The Studio user acts as `SWITCHBOARD_STUDIO_USER` (demo) with role agent: it answers its tenant's interrupts and
reads its tenant's memory; creating assistants stays an admin's (tests/test_auth_server.py: keys; tests/test_auth.py:
the loopback and proxy rules in process).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.settings import Settings
from graphs.supervisor import NODE_NAMES
from tests.devserver import dev_server, langgraph_cli

pytestmark = pytest.mark.server

STUDIO = {"x-auth-scheme": "langsmith"}  # what Studio sends to a local server when it has no key for it
ORIGIN = "https://smith.langchain.com"


@pytest.fixture(scope="module")
def url(seeded_settings: Settings, model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    langgraph_cli()
    data = tmp_path_factory.mktemp("studio-server") / "data"
    shutil.copytree(seeded_settings.data_dir, data)
    logs = tmp_path_factory.mktemp("studio-server-logs") / "server.log"  # outside the watched project folder
    drop = ("SWITCHBOARD_AUTH_DB", "SWITCHBOARD_REDIS_URL", "SWITCHBOARD_STUDIO_USER", "SWITCHBOARD_STUDIO_TENANT")
    with dev_server(data, model_cache, logs, drop_env=drop, env={"SWITCHBOARD_AUTH_ALLOW_STUDIO": "1"}) as base:
        yield base


def studio(url: str) -> Any:
    from langgraph_sdk import get_sync_client

    return get_sync_client(url=url, api_key=None, headers=STUDIO)  # None: no key from the environment either


def supervisor(url: str) -> dict[str, Any]:
    (assistant,) = [a for a in studio(url).assistants.search(graph_id="supervisor") if a["name"] == "supervisor"]
    return assistant


def message(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def test_studio_connects_keyless_from_loopback_and_nothing_else_does(url: str) -> None:
    preflight = httpx.options(f"{url}/assistants/search", timeout=10, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-auth-scheme",
    })  # fmt: skip
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] in (ORIGIN, "*")
    info = httpx.get(f"{url}/info", headers={**STUDIO, "Origin": ORIGIN}, timeout=10)
    assert info.status_code == 200 and "version" in info.json()
    search = f"{url}/assistants/search"
    assert httpx.post(search, json={}, headers=STUDIO, timeout=10).status_code == 200
    assert httpx.post(search, json={}, timeout=10).status_code == 401  # keyless and not Studio
    tunnelled = {**STUDIO, "X-Forwarded-For": "203.0.113.7"}  # `langgraph dev --tunnel`, a proxy: not loopback
    assert httpx.post(search, json={}, headers=tunnelled, timeout=10).status_code == 401


def test_studio_draws_the_graph_with_xray_and_reads_non_null_schemas(url: str) -> None:
    client, assistant = studio(url), supervisor(url)
    aid = assistant["assistant_id"]
    assert client.assistants.get(aid)["graph_id"] == "supervisor"
    drawn = client.assistants.get_graph(aid, xray=True)
    ids = {n["id"] for n in drawn["nodes"]}
    # Every node is drawn, and xray finds no hidden inner nodes: each specialist is one node, not a subgraph
    # (a subgraph's nodes would be drawn as "parent:child").
    assert ids == {"__start__", "__end__", *NODE_NAMES}, ids ^ {"__start__", "__end__", *NODE_NAMES}
    assert not [i for i in ids if ":" in i]
    edges = {(e["source"], e["target"]) for e in drawn["edges"]}
    assert {("__start__", "guard_input"), ("generate_response", "review_gate"), ("guard_output", "remember")} <= edges
    assert {e["target"] for e in drawn["edges"] if e["source"] == "supervisor" and e.get("conditional")} >= {
        "retrieve_knowledge", "plan_action", "generate_response", "escalate"}  # fmt: skip
    assert client.assistants.get_subgraphs(aid, recurse=True) == {}
    schemas = client.assistants.get_schemas(aid)
    for kind in ("input_schema", "output_schema", "state_schema", "context_schema"):
        assert schemas[kind] and schemas[kind]["properties"], kind
    assert "messages" in schemas["input_schema"]["properties"]
    assert {"answer", "status"} <= set(schemas["output_schema"]["properties"])
    assert {"auto_threshold", "user_id"} <= set(schemas["context_schema"]["properties"])
    assert {"draft", "draft_id", "route"} <= set(schemas["state_schema"]["properties"])
    with pytest.raises(httpx.HTTPStatusError) as refused:  # the Studio user is an agent: assistants are admins'
        client.assistants.create("supervisor", name="studio-strict", context={"auto_threshold": 1.0})
    assert refused.value.response.status_code == 403


def test_studio_runs_a_ticket_to_its_interrupt_resumes_it_and_forks_it_from_history(url: str) -> None:
    client = studio(url)
    tid = client.threads.create()["thread_id"]
    modes = ["values", "updates", "messages-tuple", "custom", "debug"]
    parts = list(client.runs.stream(tid, "supervisor", input=message("Please cancel order 1008"), stream_mode=modes))
    events = {p.event for p in parts}
    assert {"values", "updates", "custom", "debug"} <= events and "error" not in events, events
    assert any(p.event == "updates" and "__interrupt__" in p.data for p in parts)  # the interrupt, surfaced
    state = client.threads.get_state(tid)
    assert state["next"] == ["request_approval"] and state["values"]["status"] == "awaiting_approval"
    (task,) = state["tasks"]
    assert task["interrupts"][0]["value"]["action_request"]["action"] == "cancel_order"
    listed = client.threads.search(status="interrupted", limit=1000)
    assert tid in [t["thread_id"] for t in listed]  # Studio's threads list (its tenant's waiting threads)

    client.runs.wait(tid, "supervisor", command={"resume": {"type": "ignore"}})  # the Studio user is an agent
    assert client.threads.get_state(tid)["values"]["status"] == "rejected"
    history = client.threads.get_history(tid, limit=100)
    asked = [h for h in history if h["next"] == ["request_approval"]][-1]  # time travel: back to the question
    back = asked["checkpoint"]["checkpoint_id"]
    fork = client.threads.update_state(tid, None, as_node="__copy__", checkpoint_id=back)
    client.runs.wait(tid, "supervisor", command={"resume": {"type": "accept"}},
                     checkpoint_id=fork["checkpoint"]["checkpoint_id"])  # fmt: skip
    final = client.threads.get_state(tid)["values"]
    assert final["status"] == "completed" and final["action_result"]["data"]["status"] == "cancelled"
    assert any(h["values"].get("status") == "rejected" for h in client.threads.get_history(tid, limit=100))


def test_studios_memory_view_lists_the_namespaces_a_run_wrote(url: str) -> None:
    client = studio(url)
    tid = client.threads.create()["thread_id"]
    said = "Please contact me by email and do not call me. How long does delivery take?"
    client.runs.wait(tid, "supervisor", input=message(said))
    namespaces = client.store.list_namespaces(prefix=["default"], limit=100)["namespaces"]
    assert ["default", "demo", "prefs"] in namespaces, namespaces
    assert all(ns[0] == "default" for ns in namespaces)  # its tenant's only
    items = client.store.search_items(("default", "demo", "prefs"), limit=20)["items"]
    assert {i["key"]: i["value"] for i in items} == {"contact": {"value": "email"}, "avoid": {"value": "call"}}
