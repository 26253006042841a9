"""`langgraph dev` serves the graph: a refund ticket runs to its approval interrupt over HTTP
(langgraph-sdk), is resumed, and the final state, history and past checkpoints are checked; the store as customers
read it; and what LangGraph Studio calls. Loopback only.

The server runs as `make serve STUDIO=1` does (SWITCHBOARD_AUTH_ALLOW_STUDIO=1): Studio's keyless requests
(`x-auth-scheme: langsmith`) from loopback act as the Studio user (demo, role agent). Studio itself is a hosted web
app (smith.langchain.com/studio/?baseUrl=...), unreachable offline, so the tests call the langgraph-api routes behind
its views, with its headers:

| Studio view                    | routes                                                                             |
|--------------------------------|------------------------------------------------------------------------------------|
| connect                        | `GET /info`, CORS preflight from the Studio origin                                 |
| graph picker, assistants       | `POST /assistants/search` (`metadata.created_by: system`), `GET /assistants/{id}`  |
| graph ("xray"), subgraphs      | `GET /assistants/{id}/graph?xray=true` (on a fresh server), `GET .../subgraphs`    |
| input / state / configuration  | `GET /assistants/{id}/schemas`                                                     |
| threads list                   | `POST /threads/search`, `POST /threads`                                            |
| run (graph and chat mode)      | `POST /threads/{id}/runs/stream` (values, updates, messages-tuple, custom, debug;  |
|                                | `stream_subgraphs`: the technical analyst's steps under its namespace)             |
| interrupt, resume              | `GET /threads/{id}/state`, `command.resume` on `POST /threads/{id}/runs/wait`      |
| history, past checkpoint       | `POST /threads/{id}/history`, `GET .../state/{checkpoint_id}`, `POST .../checkpoint`|
| time travel                    | a run from a past `checkpoint_id` (the subgraph runs again)                        |
| memory                         | `POST /store/namespaces`, `POST /store/items/search`                               |
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.settings import Settings
from graphs.supervisor import NODE_NAMES
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
    studio = {"SWITCHBOARD_AUTH_ALLOW_STUDIO": "1"}  # as `make serve STUDIO=1`
    drop = ("SWITCHBOARD_AUTH_DB", "SWITCHBOARD_REDIS_URL", "SWITCHBOARD_STUDIO_USER", "SWITCHBOARD_STUDIO_TENANT")
    with dev_server(data, model_cache, logs, env=studio, drop_env=drop) as url, pytest.MonkeyPatch.context() as mp:
        mp.setenv("LANGGRAPH_API_KEY", key)  # langgraph-sdk clients send it as x-api-key
        yield url


CUSTOMERS: dict[str, str] = {}  # customer keys: demo (the same user as the admin key above) and srv-dora
STUDIO = {"x-auth-scheme": "langsmith", "authorization": "Bearer eyJ-a-langsmith-session"}  # no key of ours
ORIGIN = "https://smith.langchain.com"


def studio_client(server: str) -> Any:
    from langgraph_sdk import get_sync_client

    return get_sync_client(url=server, api_key=None, headers=STUDIO)  # None: no key from the environment either


def test_studio_draws_the_graph_with_xray_on_a_fresh_server_and_reads_non_null_schemas(server: str) -> None:
    """First in the module: Studio opens the graph before any run (lazy services are not built yet)."""
    client = studio_client(server)
    (assistant,) = client.assistants.search(graph_id="supervisor", metadata={"created_by": "system"})
    aid = assistant["assistant_id"]
    assert client.assistants.get(aid)["graph_id"] == "supervisor"
    drawn = client.assistants.get_graph(aid, xray=True)
    ids = {n["id"] for n in drawn["nodes"]}
    # Every node is drawn; xray opens the one subgraph, the technical analyst, into its steps ("parent:child").
    steps = {"analyze_technical:triage_log", "analyze_technical:match_known_issues"}
    expected = {"__start__", "__end__", *steps, *(set(NODE_NAMES) - {"analyze_technical"})}
    assert ids == expected, ids ^ expected
    edges = {(e["source"], e["target"]) for e in drawn["edges"]}
    assert {("__start__", "guard_input"), ("generate_response", "review_gate"), ("guard_output", "remember"),
            ("analyze_technical:triage_log", "analyze_technical:match_known_issues"),
            ("analyze_technical:match_known_issues", "supervisor")} <= edges  # fmt: skip
    routed = {e["target"] for e in drawn["edges"] if e["source"] == "supervisor" and e.get("conditional")}
    assert routed >= {"retrieve_knowledge", "analyze_technical:triage_log", "plan_action", "generate_response",
                      "escalate"}  # fmt: skip
    subgraphs = client.assistants.get_subgraphs(aid, recurse=True)
    assert set(subgraphs) == {"analyze_technical"}, subgraphs
    technical = subgraphs["analyze_technical"]
    for kind in ("input_schema", "output_schema", "state_schema", "context_schema"):
        assert technical[kind] and technical[kind]["properties"], kind
    assert set(technical["input_schema"]["properties"]) == {"ticket"}
    assert {"ticket", "triage", "analysis", "knowledge"} == set(technical["state_schema"]["properties"])
    assert "tenant_id" in technical["context_schema"]["properties"]
    schemas = client.assistants.get_schemas(aid)
    for kind in ("input_schema", "output_schema", "state_schema", "context_schema"):
        assert schemas[kind] and schemas[kind]["properties"], kind
    assert set(schemas["input_schema"]["properties"]) == {"messages"}
    assert {"answer", "status", "confidence", "decision"} <= set(schemas["output_schema"]["properties"])
    assert {"task", "draft", "draft_id", "route"} <= set(schemas["state_schema"]["properties"])
    assert {"auto_threshold", "refund_auto_approve_eur", "user_id"} <= set(schemas["context_schema"]["properties"])
    with pytest.raises(httpx.HTTPStatusError) as refused:  # the Studio user is an agent: assistants are admins'
        client.assistants.create("supervisor", name="studio-strict", context={"auto_threshold": 1.0})
    assert refused.value.response.status_code == 403


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


# ---------------------------------------------------------------- Studio


def studio_call(server: str, method: str, path: str, body: Any = None, **params: Any) -> Any:
    """One request as Studio's frontend sends it to a local server (keyless, from loopback)."""
    response = httpx.request(method, f"{server}{path}", json=body, params=params or None, headers=STUDIO, timeout=30)
    assert response.status_code == 200, (method, path, response.status_code, response.text[:500])
    return response.json()


def test_studio_connects_keyless_from_loopback_and_nothing_else_does(server: str) -> None:
    preflight = httpx.options(f"{server}/assistants/search", timeout=10, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-auth-scheme",
    })  # fmt: skip
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] in (ORIGIN, "*")
    info = httpx.get(f"{server}/info", headers={**STUDIO, "Origin": ORIGIN}, timeout=10)
    assert info.status_code == 200 and info.json()["version"]
    search = f"{server}/assistants/search"
    assert httpx.post(search, json={}, headers=STUDIO, timeout=10).status_code == 200
    assert httpx.post(search, json={}, timeout=10).status_code == 401  # keyless and not Studio
    langsmith_only = {"authorization": STUDIO["authorization"]}  # Studio's own token is not a key of ours
    assert httpx.post(search, json={}, headers=langsmith_only, timeout=10).status_code == 401
    tunnelled = {**STUDIO, "x-forwarded-for": "203.0.113.9"}  # `langgraph dev --tunnel`, a proxy: not loopback
    assert httpx.post(search, json={}, headers=tunnelled, timeout=10).status_code == 401


def test_studio_routes_answer_keyless_from_loopback_under_studio_1(server: str) -> None:
    """The langgraph-api routes Studio's frontend calls on a local server (the table above)."""
    (assistant,) = [a for a in studio_call(server, "POST", "/assistants/search",
                                           {"limit": 10, "offset": 0, "metadata": {"created_by": "system"}})
                    if a["graph_id"] == "supervisor"]  # fmt: skip
    aid = assistant["assistant_id"]
    assert studio_call(server, "GET", f"/assistants/{aid}")["graph_id"] == "supervisor"
    drawn = studio_call(server, "GET", f"/assistants/{aid}/graph", xray="true")
    assert "review_gate" in {n["id"] for n in drawn["nodes"]}
    assert set(studio_call(server, "GET", f"/assistants/{aid}/subgraphs", recurse="true")) == {"analyze_technical"}
    assert studio_call(server, "GET", f"/assistants/{aid}/schemas")["context_schema"]
    assert studio_call(server, "POST", "/assistants/search", {"graph_id": "supervisor", "limit": 100})

    thread = studio_call(server, "POST", "/threads", {"metadata": {}})
    tid = thread["thread_id"]
    assert thread["metadata"]["owner"] == "demo"  # the Studio user of `make serve STUDIO=1`
    run = {"assistant_id": aid, "input": {"messages": [{"type": "human", "content": "Please cancel order 1008"}]},
           "stream_mode": ["values", "messages-tuple", "updates", "custom", "debug"], "stream_subgraphs": True}
    with httpx.stream("POST", f"{server}/threads/{tid}/runs/stream", json=run, headers=STUDIO, timeout=60) as stream:
        assert stream.status_code == 200
        events = [line.split(":", 1)[1].strip() for line in stream.iter_lines() if line.startswith("event:")]
    assert {"values", "updates", "custom", "debug"} <= set(events) and "error" not in events, events
    state = studio_call(server, "GET", f"/threads/{tid}/state", subgraphs="true")
    assert state["next"] == ["request_approval"] and state["tasks"][0]["interrupts"]
    threads = studio_call(server, "POST", "/threads/search", {"limit": 50, "offset": 0, "status": "interrupted"})
    assert tid in {t["thread_id"] for t in threads}
    history = studio_call(server, "POST", f"/threads/{tid}/history", {"limit": 10})
    asked = next(h for h in history if h["next"] == ["request_approval"])
    at = studio_call(server, "GET", f"/threads/{tid}/state/{asked['checkpoint']['checkpoint_id']}")
    assert at["values"]["status"] == "awaiting_approval"
    assert studio_call(server, "POST", f"/threads/{tid}/state/checkpoint", {"checkpoint": asked["checkpoint"]})["next"]
    # Studio's user is an agent: it may approve from Studio, and the approver recorded is that user.
    resume = {"assistant_id": aid, "command": {"resume": {"type": "accept"}}}
    studio_call(server, "POST", f"/threads/{tid}/runs/wait", resume)
    final = studio_call(server, "GET", f"/threads/{tid}/state")["values"]
    assert final["status"] == "completed" and final["approval"]["approver"] == "demo"
    assert isinstance(studio_call(server, "POST", "/store/namespaces", {"prefix": ["default"], "limit": 100})
                      ["namespaces"], list)  # fmt: skip
    studio_call(server, "POST", "/store/items/search", {"namespace_prefix": ["default", "demo"], "limit": 10})


def test_studio_streams_the_technical_subgraphs_steps_and_a_past_checkpoint_runs_it_again(server: str) -> None:
    """A payment ticket with `stream_subgraphs`: the technical analyst's steps stream under its namespace; a run from
    the checkpoint before it (time travel) runs the subgraph again and ends with the same analysis."""
    (assistant,) = [a for a in studio_call(server, "POST", "/assistants/search",
                                           {"limit": 10, "offset": 0, "metadata": {"created_by": "system"}})
                    if a["graph_id"] == "supervisor"]  # fmt: skip
    aid = assistant["assistant_id"]
    tid = studio_call(server, "POST", "/threads", {"metadata": {}})["thread_id"]
    text = "Payment failed at checkout: error PAY-402 card declined (HTTP 402)."

    def stream(body: dict[str, Any]) -> list[tuple[str, Any]]:
        modes = ["values", "messages-tuple", "updates", "custom", "debug"]  # what Studio streams
        run = {"assistant_id": aid, "stream_mode": modes, "stream_subgraphs": True, **body}
        events: list[tuple[str, Any]] = []
        with httpx.stream("POST", f"{server}/threads/{tid}/runs/stream", json=run, headers=STUDIO,
                          timeout=60) as response:  # fmt: skip
            assert response.status_code == 200
            name = ""
            for line in response.iter_lines():
                if line.startswith("event:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and name:
                    events.append((name, json.loads(line.split(":", 1)[1])))
        assert "error" not in [n for n, _ in events], events
        return events

    events = stream({"input": {"messages": [{"type": "human", "content": text}]}})
    inner = [(n, d) for n, d in events if "|analyze_technical:" in n]
    steps = [step for n, d in inner if n.startswith("updates|") for step in d]
    assert steps == ["triage_log", "match_known_issues"], [n for n, _ in events]
    (triaged,) = [d["triage_log"]["triage"] for n, d in inner if n.startswith("updates|") and "triage_log" in d]
    assert triaged["error_codes"] == ["PAY-402"]
    assert [d["node"] for n, d in inner if n.startswith("custom|")] == ["triage_log", "match_known_issues"]
    assert "analyze_technical" in [d.get("node") for n, d in events if n == "custom"]  # the parent's own event
    assert any(n.startswith("debug|analyze_technical:") for n, _ in events)  # Studio's debug view of the steps
    first = studio_call(server, "GET", f"/threads/{tid}/state")["values"]
    assert first["status"] == "completed" and "kb-ki-pay-402-card-declined" in [
        k["id"] for k in first["analysis"]["known_issues"]]  # fmt: skip

    history = studio_call(server, "POST", f"/threads/{tid}/history", {"limit": 50})
    assert {h["checkpoint"]["checkpoint_ns"] for h in history} == {""}  # the thread's own, not the subgraph's
    before = next(h for h in history if "analyze_technical" in h["next"])
    replay = stream({"input": None, "checkpoint_id": before["checkpoint"]["checkpoint_id"]})
    assert [step for n, d in replay if n.startswith("updates|analyze_technical:") for step in d] == [
        "triage_log", "match_known_issues"]  # fmt: skip
    again = studio_call(server, "GET", f"/threads/{tid}/state")["values"]
    assert again["analysis"] == first["analysis"] and again["route"] == first["route"]
