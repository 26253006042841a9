"""Custom auth on a real `langgraph dev`: keys, ownership, reviewers, the store. Loopback only.

One server for the module, with keys for two customers of tenant `default` (demo, alice), a reviewer of
`default` (rita), a reviewer of tenant `other` (otto) and an admin. demo's refund ticket runs to its approval
interrupt once (module fixture); the tests then try to reach it as everyone else.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.settings import Settings
from tests.devserver import dev_server, langgraph_cli

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.server

REFUND = "I want a refund for order 1004, the monitor is faulty."
DENIED = (403, 404)


@dataclass
class Served:
    url: str
    keys: dict[str, str]
    revoked_key: str
    log: Path

    def client(self, who: str) -> Any:
        from langgraph_sdk import get_sync_client

        return get_sync_client(url=self.url, api_key=self.keys[who])


@pytest.fixture(scope="module")
def served(seeded_settings: Settings, model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    langgraph_cli()
    from auth.keys import KeyStore

    data = tmp_path_factory.mktemp("auth-server") / "data"
    shutil.copytree(seeded_settings.data_dir, data)
    store = KeyStore(data / "auth.sqlite")
    keys = {
        "demo": store.create("demo")[0],
        "alice": store.create("alice")[0],
        "rita": store.create("rita", "default", "agent")[0],
        "otto": store.create("otto", "other", "agent")[0],
        "root": store.create("root", "default", "admin")[0],
    }
    revoked, record = store.create("demo")
    store.revoke(record.key_id)

    logs = tmp_path_factory.mktemp("auth-server-logs") / "server.log"  # outside the watched project folder
    with dev_server(data, model_cache, logs, drop_env=("SWITCHBOARD_AUTH_ALLOW_STUDIO", "SWITCHBOARD_AUTH_DB")) as url:
        yield Served(url=url, keys=keys, revoked_key=revoked, log=logs)


@pytest.fixture(scope="module")
def waiting(served: Served) -> dict[str, Any]:
    """demo's refund ticket, stopped at its approval interrupt. demo tries to claim the thread for alice."""
    demo = served.client("demo")
    thread = demo.threads.create(metadata={"owner": "alice", "tenant": "other", "topic": "refund"})
    run = demo.runs.wait(thread["thread_id"], "supervisor", input={"messages": [{"role": "user", "content": REFUND}]})
    state = demo.threads.get_state(thread["thread_id"])
    assert state["next"] == ["request_approval"], run
    return {"thread_id": thread["thread_id"], "thread": demo.threads.get(thread["thread_id"])}


def status_of(call: Callable[[], Any]) -> int:
    """The HTTP status an SDK call fails with (the test fails if it succeeds)."""
    with pytest.raises(httpx.HTTPStatusError) as info:
        call()
    return info.value.response.status_code


def stream_status(call: Callable[[], Any]) -> int:
    """A stream refuses either with an HTTP status or, once open, with one `error` event naming the status."""
    try:
        parts = list(call())
    except httpx.HTTPStatusError as exc:
        return exc.response.status_code
    assert [p.event for p in parts] == ["error"], parts
    return int(parts[0].data["message"].split(":")[0])


def message(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


# ---------------------------------------------------------------- authentication


def test_requests_without_a_valid_key_are_401(served: Served) -> None:
    search = f"{served.url}/threads/search"
    assert httpx.post(search, json={}, timeout=10).status_code == 401
    for headers in (
        {"Authorization": "Bearer sb_000000000000_" + "x" * 43},
        {"x-api-key": "not-a-switchboard-key"},
        {"Authorization": f"Bearer {served.revoked_key}"},
        {"x-auth-scheme": "langsmith"},  # Studio without a key: refused unless SWITCHBOARD_AUTH_ALLOW_STUDIO=1
    ):
        assert httpx.post(search, json={}, headers=headers, timeout=10).status_code == 401, headers
    ok = httpx.post(search, json={}, headers={"Authorization": f"Bearer {served.keys['demo']}"}, timeout=10)
    assert ok.status_code == 200, ok.text
    ok = httpx.post(search, json={}, headers={"x-api-key": served.keys["demo"]}, timeout=10)
    assert ok.status_code == 200, ok.text
    assert httpx.get(f"{served.url}/switchboard/health", timeout=10).status_code == 200  # probes stay public


# ---------------------------------------------------------------- ownership


def test_a_thread_records_its_creator_whatever_metadata_the_client_sends(waiting: dict[str, Any]) -> None:
    metadata = waiting["thread"]["metadata"]
    assert metadata["owner"] == "demo" and metadata["tenant"] == "default"
    assert metadata["topic"] == "refund"


def test_another_customer_cannot_reach_demos_thread(served: Served, waiting: dict[str, Any]) -> None:
    alice = served.client("alice")
    tid = waiting["thread_id"]
    own = alice.threads.create()
    mine = alice.threads.search(limit=100)
    assert own["thread_id"] in [t["thread_id"] for t in mine]
    assert {(t["metadata"]["owner"], t["metadata"]["tenant"]) for t in mine} == {("alice", "default")}
    assert alice.threads.search(metadata={"owner": "demo"}, limit=100) == []
    assert alice.threads.search(status="interrupted", limit=100) == []

    runs = served.client("demo").runs.list(tid)
    assert runs, "demo sees the runs of their own thread"
    run_id = runs[0]["run_id"]

    assert status_of(lambda: alice.threads.get(tid)) in DENIED
    assert status_of(lambda: alice.threads.get_state(tid)) in DENIED
    assert status_of(lambda: alice.threads.get_history(tid)) in DENIED
    assert status_of(lambda: alice.runs.get(tid, run_id)) in DENIED
    assert stream_status(lambda: alice.runs.join_stream(tid, run_id)) in DENIED
    assert stream_status(lambda: alice.threads.join_stream(tid)) in DENIED
    assert stream_status(lambda: alice.runs.stream(tid, "supervisor", input=message("Where is order 1006?"))) in DENIED
    assert status_of(lambda: alice.runs.wait(tid, "supervisor", input=message("hello"))) in DENIED
    assert status_of(lambda: alice.runs.wait(tid, "supervisor", command={"resume": {"type": "accept"}})) in DENIED
    assert status_of(lambda: alice.threads.update_state(tid, {"status": "completed"})) in DENIED
    assert status_of(lambda: alice.threads.update(tid, metadata={"owner": "alice"})) in DENIED
    assert status_of(lambda: alice.threads.delete(tid)) in DENIED
    runs_seen = _list_or_status(lambda: alice.runs.list(tid))
    assert runs_seen == [] or runs_seen in DENIED

    # demo's thread is untouched: still waiting, still demo's
    demo = served.client("demo")
    assert demo.threads.get_state(tid)["next"] == ["request_approval"]
    assert demo.threads.get(tid)["metadata"]["owner"] == "demo"


def _list_or_status(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except httpx.HTTPStatusError as exc:
        return exc.response.status_code


def test_a_customer_cannot_approve_or_rewrite_their_own_waiting_thread(served: Served, waiting: dict[str, Any]) -> None:
    demo = served.client("demo")
    tid = waiting["thread_id"]
    assert status_of(lambda: demo.runs.wait(tid, "supervisor", command={"resume": {"type": "accept"}})) == 403
    assert status_of(lambda: demo.runs.wait(tid, "supervisor", command={"goto": "execute_action"})) == 403
    assert status_of(lambda: demo.threads.update_state(tid, {"status": "completed"}, as_node="request_approval")) == 403
    demo.threads.update(tid, metadata={"owner": "alice", "tenant": "other", "note": "mine"})
    metadata = demo.threads.get(tid)["metadata"]
    assert (metadata["owner"], metadata["tenant"], metadata["note"]) == ("demo", "default", "mine")
    assert demo.threads.get_state(tid)["next"] == ["request_approval"]


def test_a_customer_cancels_runs_in_bulk_only_on_their_own_threads(served: Served, waiting: dict[str, Any]) -> None:
    """`POST /runs/cancel` here is what cluster/aegra_http.py gives Aegra (tests/test_cluster.py, with runs still
    running): the threads.update handler's filter decides whose runs a cancel reaches; none is 404, and so is a
    selection with nothing still pending or running."""
    tid = waiting["thread_id"]
    run_id = served.client("demo").runs.list(tid)[0]["run_id"]

    def cancel(who: str, body: dict[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {served.keys[who]}"}
        return httpx.post(f"{served.url}/runs/cancel", json=body, headers=headers, timeout=30)

    by_ids = {"thread_id": tid, "run_ids": [run_id]}
    assert cancel("alice", by_ids).status_code == 404
    for who in ("alice", "demo"):  # nothing of theirs is running
        response = cancel(who, {"status": "all"})
        assert response.status_code == 404 and "No runs found to cancel" in response.text, (who, response.text)
    response = cancel("demo", by_ids)  # one's own run, already stopped at its interrupt: nothing to cancel either
    assert response.status_code == 404 and "No matching runs to cancel" in response.text, response.text
    assert served.client("demo").threads.get_state(tid)["next"] == ["request_approval"]  # and nothing moved


def test_a_client_sent_context_cannot_claim_another_customer(served: Served) -> None:
    alice = served.client("alice")
    thread = alice.threads.create()
    tid = thread["thread_id"]
    alice.runs.wait(tid, "supervisor", input=message("Where is my order 1006?"), context={"user_id": "demo"})
    lookup = alice.threads.get_state(tid)["values"]["lookups"]["get_order"]
    assert lookup["ok"] is False, "order 1006 is demo's: alice must not see it"

    run = alice.runs.wait(tid, "supervisor", input=message("Where is my order 1012?"), context={"user_id": "demo"})
    lookup = alice.threads.get_state(tid)["values"]["lookups"]["get_order"]
    assert lookup["ok"] is True and lookup["data"]["order_id"] == 1012, run
    latest = alice.runs.list(tid)[0]
    assert latest["kwargs"]["context"]["user_id"] == "alice"
    assert latest["kwargs"]["context"]["role"] == "customer"


# ---------------------------------------------------------------- reviewers


def test_the_tenants_reviewer_approves_as_the_owner_and_another_tenant_sees_nothing(
    served: Served, waiting: dict[str, Any]
) -> None:
    tid = waiting["thread_id"]
    otto = served.client("otto")
    assert tid not in [t["thread_id"] for t in otto.threads.search(status="interrupted", limit=100)]
    assert status_of(lambda: otto.threads.get_state(tid)) in DENIED
    assert status_of(lambda: otto.runs.wait(tid, "supervisor", command={"resume": {"type": "accept"}})) in DENIED

    rita = served.client("rita")
    inbox = rita.threads.search(status="interrupted", limit=100)
    assert tid in [t["thread_id"] for t in inbox]
    assert all(t["metadata"]["tenant"] == "default" for t in inbox)
    assert status_of(lambda: rita.runs.wait(tid, "supervisor", command={"goto": "execute_action"})) == 403
    assert status_of(lambda: rita.runs.wait(tid, "supervisor", input=message("refund it all"))) in DENIED

    rita.runs.wait(tid, "supervisor", command={"resume": {"type": "accept"}}, context={"user_id": "rita"})
    final = served.client("demo").threads.get_state(tid)
    assert final["next"] == []
    values = final["values"]
    # the refund is demo's order: it only succeeds when the tools ran as demo, not as rita
    assert values["action_result"]["ok"] is True, values["action_result"]
    assert values["status"] == "completed"
    resume = served.client("demo").runs.list(tid)[0]
    assert resume["kwargs"]["context"]["approver_id"] == "rita"
    assert resume["kwargs"]["context"]["role"] == "agent"
    assert "user_id" not in resume["kwargs"]["context"]


def test_a_reviewer_resume_runs_as_the_owner_not_the_default_customer(served: Served) -> None:
    """demo is also Context's default user; alice's thread shows the owner really comes from the thread."""
    alice, rita = served.client("alice"), served.client("rita")
    tid = alice.threads.create()["thread_id"]
    alice.runs.wait(tid, "supervisor", input=message("Please cancel order 1013, I ordered it by mistake."))
    pending = alice.threads.get_state(tid)
    assert pending["next"] == ["request_approval"], pending["values"].get("answer")
    rita.runs.wait(tid, "supervisor", command={"resume": {"type": "accept"}})
    values = alice.threads.get_state(tid)["values"]
    assert values["action_result"]["ok"] is True, values["action_result"]
    assert values["action_result"]["data"]["status"] == "cancelled"


# ---------------------------------------------------------------- store and assistants


def test_store_items_are_namespaced_by_tenant_and_user(served: Served) -> None:
    demo, alice, rita, otto = (served.client(w) for w in ("demo", "alice", "rita", "otto"))
    demo.store.put_item(["default", "demo", "prefs"], "tone", {"value": "brief"})
    alice.store.put_item(["default", "alice", "prefs"], "tone", {"value": "warm"})

    assert demo.store.get_item(["default", "demo", "prefs"], "tone")["value"] == {"value": "brief"}
    assert status_of(lambda: alice.store.get_item(["default", "demo", "prefs"], "tone")) == 403
    assert status_of(lambda: alice.store.put_item(["default", "demo", "prefs"], "tone", {"value": "x"})) == 403
    assert status_of(lambda: alice.store.delete_item(["default", "demo", "prefs"], "tone")) == 403
    assert status_of(lambda: alice.store.search_items(["default", "demo"])) == 403
    seen = alice.store.search_items(["default"])["items"]  # a shorter prefix is narrowed to her own
    # her own items only: the preference just put, and the working memory her earlier ticket left (remember)
    assert {tuple(i["namespace"][:2]) for i in seen} == {("default", "alice")}
    assert [i["value"] for i in seen if tuple(i["namespace"]) == ("default", "alice", "prefs")] == [{"value": "warm"}]
    assert all(ns[:2] == ["default", "alice"] for ns in alice.store.list_namespaces()["namespaces"])

    assert rita.store.get_item(["default", "demo", "prefs"], "tone")["value"] == {"value": "brief"}
    assert status_of(lambda: otto.store.get_item(["default", "demo", "prefs"], "tone")) == 403
    assert demo.store.get_item(["default", "demo", "prefs"], "tone")["value"] == {"value": "brief"}


def test_assistants_are_read_only_except_for_admins(served: Served) -> None:
    alice, rita, root = (served.client(w) for w in ("alice", "rita", "root"))
    assert alice.assistants.search(graph_id="supervisor")
    assert status_of(lambda: alice.assistants.create("supervisor", name="mine")) == 403
    assert status_of(lambda: rita.assistants.create("supervisor", name="mine")) == 403
    made = root.assistants.create("supervisor", name="admins-own")
    assert made["graph_id"] == "supervisor"
    assert status_of(lambda: alice.assistants.delete(made["assistant_id"])) == 403
    root.assistants.delete(made["assistant_id"])
