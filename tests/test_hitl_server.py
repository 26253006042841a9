"""Human in the loop over the served API: a real `langgraph dev` with auth on, driven by langgraph-sdk (Python) and
@langchain/langgraph-sdk (Node, the package the Agent Inbox and Agent Chat UI use). Loopback only.

Keys: demo (customer), rita (agent: a reviewer of tenant default), root (admin). Each test uses its own orders, so
the module's one server serves them in any order.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.settings import Settings
from tests.devserver import dev_server, langgraph_cli

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.server


@dataclass
class Served:
    url: str
    keys: dict[str, str]

    def client(self, who: str) -> Any:
        from langgraph_sdk import get_sync_client

        return get_sync_client(url=self.url, api_key=self.keys[who])


@pytest.fixture(scope="module")
def served(seeded_settings: Settings, model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    langgraph_cli()
    from auth.keys import KeyStore

    data = tmp_path_factory.mktemp("hitl-server") / "data"
    shutil.copytree(seeded_settings.data_dir, data)
    store = KeyStore(data / "auth.sqlite")
    keys = {
        "demo": store.create("demo")[0],
        "rita": store.create("rita", "default", "agent")[0],
        "root": store.create("root", "default", "admin")[0],
    }
    logs = tmp_path_factory.mktemp("hitl-server-logs") / "server.log"  # outside the watched project folder
    with dev_server(data, model_cache, logs, drop_env=("SWITCHBOARD_AUTH_ALLOW_STUDIO", "SWITCHBOARD_AUTH_DB")) as url:
        yield Served(url=url, keys=keys)


def message(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def ask(served: Served, text: str, assistant: str = "supervisor", **kwargs: Any) -> str:
    """A new thread of demo's with `text` run on `assistant`; returns its id."""
    demo = served.client("demo")
    tid = demo.threads.create()["thread_id"]
    demo.runs.wait(tid, assistant, input=message(text), **kwargs)
    return tid


def waiting(state: dict[str, Any]) -> tuple[str | None, Any]:
    for task in state["tasks"]:
        for intr in task.get("interrupts") or []:
            return task["name"], intr["value"]
    return None, None


def answer(served: Served, tid: str, value: Any, who: str = "rita", **kwargs: Any) -> dict[str, Any]:
    served.client(who).runs.wait(tid, "supervisor", command={"resume": value}, **kwargs)
    return served.client("rita").threads.get_state(tid)


def nulls(value: Any, path: str = "$") -> list[str]:
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in nulls(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in nulls(v, f"{path}[{i}]")]
    return []


# ---------------------------------------------------------------- streams, status, both dialects


def test_streams_show_progress_and_the_interrupt_then_a_v1_approve_completes(served: Served) -> None:
    demo = served.client("demo")
    tid = demo.threads.create()["thread_id"]
    parts = list(
        demo.runs.stream(
            tid, "supervisor", input=message("Please cancel order 1008"), stream_mode=["values", "updates", "custom"]
        )
    )
    kinds = {p.event for p in parts}
    assert {"values", "updates", "custom"} <= kinds, kinds
    assert not [p for p in parts if p.event == "error"], [p.data for p in parts if p.event == "error"]
    custom = [p.data for p in parts if p.event == "custom"]
    assert {"node": "classify_intent", "event": "done"}.items() <= next(
        e for e in custom if e["node"] == "classify_intent"
    ).items()
    assert custom[-1] == {"node": "request_approval", "event": "waiting", "actions": ["cancel_order"]}
    updates = [p.data for p in parts if p.event == "updates"]
    assert "plan_action" in [n for u in updates for n in u]
    (surfaced,) = [u["__interrupt__"] for u in updates if "__interrupt__" in u]
    assert surfaced[0]["value"]["action_requests"][0]["name"] == "cancel_order"
    statuses = [p.data.get("status") for p in parts if p.event == "values"]
    assert "completed" not in statuses and statuses[-1] == "awaiting_approval"

    state = demo.threads.get_state(tid)
    node, payload = waiting(state)
    assert node == "request_approval" and state["values"]["status"] == "awaiting_approval"
    assert payload["action_request"]["action"] == "cancel_order" and nulls(payload) == []
    assert payload["review_configs"][0]["allowed_decisions"] == ["approve", "edit", "reject"]

    final = answer(served, tid, {"decisions": [{"type": "approve"}]})
    assert final["next"] == [] and final["values"]["status"] == "completed"
    assert final["values"]["action_result"]["ok"] and final["values"]["approval"]["approver"] == "rita"


def test_an_agent_inbox_list_of_one_accept_completes(served: Served) -> None:
    tid = ask(served, "I want a refund of EUR 6 for order 1004.")
    assert served.client("demo").threads.get_state(tid)["values"]["status"] == "awaiting_approval"
    final = answer(served, tid, [{"type": "accept", "args": None}])
    assert final["values"]["status"] == "completed" and final["values"]["action_result"]["data"]["amount"] == 6.0


def test_malformed_and_disallowed_replies_leave_the_thread_waiting_with_the_reason(served: Served) -> None:
    tid = ask(served, "I want a refund of EUR 5 for order 1004.")
    for reply, says in (
        ({"decisions": [{"type": "maybe"}]}, "malformed decisions"),
        ({"type": "edit", "args": {"amount": 99999}}, "exceeds"),
        ("yes please", "unknown reply"),
    ):
        state = answer(served, tid, reply)
        node, payload = waiting(state)
        assert node == "request_approval" and state["values"]["status"] == "awaiting_approval", reply
        assert says in payload["error"], payload["error"]
        assert state["values"].get("action_result") is None
    state = answer(served, tid, {"decisions": [{"type": "reject", "message": "not this one"}]})
    assert state["values"]["status"] == "rejected" and "not this one" in state["values"]["answer"]

    tid = ask(served, "I want to talk to a real person please")
    assert served.client("demo").threads.get_state(tid)["values"]["status"] == "escalated"
    for reply in (
        {"type": "edit", "args": {"text": "Hello"}},
        {"decisions": [{"type": "edit", "edited_action": {"name": "handoff_to_human", "args": {"text": "Hello"}}}]},
        {"decisions": [{"type": "approve"}]},
    ):
        state = answer(served, tid, reply)
        node, payload = waiting(state)
        assert node == "escalate" and state["values"]["status"] == "escalated" and "allow" in payload["error"], reply
    state = answer(served, tid, {"type": "response", "args": "Hi Dana, Sam here: I'll call you at 3 pm."})
    assert state["values"]["status"] == "completed" and "Sam here" in state["values"]["answer"]


def test_a_customer_cannot_answer_their_own_approval(served: Served) -> None:
    tid = ask(served, "Please cancel order 1010")
    demo = served.client("demo")
    for reply in ({"decisions": [{"type": "approve"}]}, {"type": "accept"}):
        with pytest.raises(httpx.HTTPStatusError) as info:
            demo.runs.wait(tid, "supervisor", command={"resume": reply})
        assert info.value.response.status_code == 403
    state = demo.threads.get_state(tid)
    assert waiting(state)[0] == "request_approval" and state["values"]["status"] == "awaiting_approval"


# ---------------------------------------------------------------- time travel


def test_time_travel_from_the_waiting_checkpoint_takes_the_new_decision(served: Served) -> None:
    tid = ask(served, "Please cancel order 1009")
    rita = served.client("rita")
    assert answer(served, tid, {"type": "ignore"})["values"]["status"] == "rejected"
    history = rita.threads.get_history(tid, limit=100)
    asked = [h for h in history if h["next"] == ["request_approval"]][-1]
    fork = rita.threads.update_state(tid, None, as_node="__copy__", checkpoint_id=asked["checkpoint"]["checkpoint_id"])
    final = answer(served, tid, {"decisions": [{"type": "approve"}]}, checkpoint_id=fork["checkpoint"]["checkpoint_id"])
    assert final["values"]["status"] == "completed" and final["values"]["action_result"]["ok"]
    assert final["values"]["action_result"]["data"]["status"] == "cancelled"
    assert any(h["values"].get("status") == "rejected" for h in rita.threads.get_history(tid, limit=100))


# ---------------------------------------------------------------- a strict assistant


def test_a_strict_assistant_reviews_what_the_default_sends_and_a_run_cannot_loosen_it(served: Served) -> None:
    question = "Where is my order 1006?"  # answered from the order's own facts, confidently but not certainly
    demo, root = served.client("demo"), served.client("root")
    relaxed = demo.threads.get_state(ask(served, question))["values"]
    assert relaxed["status"] == "completed" and relaxed["decision"] == "auto" and relaxed["confidence"] < 1.0

    strict = root.assistants.create("supervisor", name="strict", context={"auto_threshold": 1.0})
    assert served.client("demo").assistants.get(strict["assistant_id"])["context"]["auto_threshold"] == 1.0
    for context in (None, {"auto_threshold": 0.0}):
        tid = ask(served, question, strict["assistant_id"], context=context)
        state = demo.threads.get_state(tid)
        assert waiting(state)[0] == "review_gate" and state["values"]["status"] == "awaiting_review", context
        assert demo.runs.list(tid)[0]["kwargs"]["context"]["auto_threshold"] == 1.0
    # Nor can a run on the default assistant make itself strict or loose: only an assistant sets it.
    tid = ask(served, question, context={"auto_threshold": 1.0})
    assert demo.threads.get_state(tid)["values"]["status"] == "completed"


# ---------------------------------------------------------------- the npm client the UIs use


def test_the_node_sdk_approves_with_the_v1_form(served: Served) -> None:
    from tests.node_sdk import node_sdk_dir

    sdk = node_sdk_dir()
    script = Path(__file__).parent / "node" / "approve_v1.cjs"
    proc = subprocess.run(
        ["node", str(script), str(sdk), served.url, served.keys["demo"], served.keys["rita"]],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["waiting_status"] == "awaiting_approval"
    (request,) = out["action_requests"]
    assert request["name"] == "issue_refund" and request["args"]["amount"] == 4.0 and request["description"]
    assert out["review_configs"][0]["allowed_decisions"] == ["approve", "edit", "reject"]
    assert (out["status"], out["action_ok"], out["next"]) == ("completed", True, [])
