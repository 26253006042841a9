"""`langgraph dev` serves the graph: a refund ticket runs to its approval interrupt over HTTP
(langgraph-sdk), is resumed, and the final state and history are checked. Loopback only."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(seeded_settings: Settings, model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cli = Path(sys.executable).parent / "langgraph"
    if not cli.exists():
        pytest.skip("langgraph-cli is not installed (make test installs it)")
    data = tmp_path_factory.mktemp("server") / "data"
    shutil.copytree(seeded_settings.data_dir, data)
    from auth.keys import KeyStore

    # The served API requires a key (tests/test_auth_server.py covers auth); an admin may also approve.
    key, _ = KeyStore(data / "auth.sqlite").create("demo", "default", "admin")
    logs = tmp_path_factory.mktemp("server-logs") / "server.log"  # outside the watched project folder
    port = free_port()
    env = {
        **os.environ,
        "SWITCHBOARD_DATA_DIR": str(data),
        "SWITCHBOARD_MODEL_CACHE": str(model_cache),
        "LANGSMITH_TRACING": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "1",
        "ANONYMIZED_TELEMETRY": "False",
    }
    env.pop("OPENAI_API_KEY", None)
    with logs.open("w") as log:
        proc = subprocess.Popen(
            [str(cli), "dev", "--port", str(port), "--host", "127.0.0.1", "--no-browser", "--no-reload"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        import httpx

        while True:
            if proc.poll() is not None:
                pytest.fail(f"langgraph dev exited with {proc.returncode}:\n{logs.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"langgraph dev did not answer on {url}:\n{logs.read_text()[-3000:]}")
            time.sleep(0.5)  # polling a subprocess's readiness, not waiting on our own state
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("LANGGRAPH_API_KEY", key)  # langgraph-sdk clients send it as x-api-key
            yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        text = logs.read_text()
        assert "BlockingError" not in text, text[-3000:]


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
    assert any(h["next"] == ["request_approval"] for h in history)


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
