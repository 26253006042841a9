"""The dashboard's data and page, and the semantic health check (in process; the browser test runs them served)."""

from __future__ import annotations

import dataclasses
import re
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from starlette.testclient import TestClient

from graphs.context import Context
from observability import dashboard
from observability.config import SemanticCase, SemanticHealth
from observability.semantic import check

STATIC = Path(__file__).resolve().parents[1] / "observability" / "static"


def ticket(graph: Any, text: str, user: str = "demo") -> None:
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    graph.invoke({"messages": [HumanMessage(text)]}, config, context=Context(user_id=user))


def test_the_snapshot_reflects_tickets_run(services: Any, make_graph: Any) -> None:
    before = dashboard.snapshot([services])
    graph = make_graph(services)
    ticket(graph, "Where is my order 1006?")
    ticket(graph, "I want a refund for order 1004, the monitor is faulty.")  # waits for approval
    data = dashboard.snapshot([services])
    assert data["tickets"]["started"] == before["tickets"]["started"] + 2
    assert data["tickets"]["with_human"] == before["tickets"]["with_human"] + 1
    assert 0 < data["tickets"]["human_intervention_rate"] <= 1
    calls = {n["node"]: n["calls"] for n in data["nodes"]}
    old = {n["node"]: n["calls"] for n in before["nodes"]}
    assert calls["classify_intent"] == old.get("classify_intent", 0) + 2
    assert calls["request_approval"] == old.get("request_approval", 0) + 1
    node = next(n for n in data["nodes"] if n["node"] == "retrieve_knowledge")
    assert node["p95_ms"] >= node["p50_ms"] > 0 and 0 <= node["error_rate"] <= 1
    assert sum(r["tickets"] for r in data["timeline"]) >= 2 and len(data["timeline"]) == dashboard.TIMELINE_MINUTES
    assert data["hit_rates"]["knowledge"]["hits"] + data["hit_rates"]["knowledge"]["misses"] >= 2
    assert data["cost"]["total_usd"] == before["cost"]["total_usd"]  # offline tickets cost nothing
    assert data["confidence"]["intent"]


def test_quantiles_follow_histogram_quantile() -> None:
    buckets = [(0.1, 0.0), (0.2, 50.0), (0.4, 100.0), (float("inf"), 100.0)]
    assert dashboard.quantile(0.5, buckets) == pytest.approx(0.2)
    assert dashboard.quantile(0.75, buckets) == pytest.approx(0.3)
    assert dashboard.quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None


@pytest.fixture
def client() -> TestClient:
    from observability.http import app

    return TestClient(app)


def test_the_page_and_its_script_are_served_locally(client: TestClient) -> None:
    for base in ("/dashboard", "/switchboard/dashboard"):
        page = client.get(base)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert f'src="{base}/dashboard.js"' in page.text
        script = client.get(f"{base}/dashboard.js")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        data = client.get(f"{base}/data.json").json()
        assert {"tickets", "nodes", "timeline", "cost", "alerts", "hit_rates"} <= set(data)
    for asset in STATIC.iterdir():
        text = asset.read_text()
        urls = set(re.findall(r"https?://[^\s\"')]+", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (asset.name, urls)  # an XML namespace, never fetched


def test_semantic_health_passes_for_the_canned_ticket(
    client: TestClient, services: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from graphs import services as services_module

    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(services.settings.data_dir))
    monkeypatch.setitem(services_module._instances, services.settings.data_dir.resolve(), services)
    started = dashboard.tickets()["started"]
    resp = client.get("/health/semantic")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "ok"
    case = body["cases"][0]
    assert (case["intent"], case["route"]) == ("track_order", ["retrieve_knowledge"])
    assert dashboard.tickets()["started"] == started  # probes are not tickets
    assert client.get("/switchboard/health/semantic").status_code == 200


def test_semantic_health_fails_on_a_wrong_route_or_a_hang(services: Any) -> None:
    wrong = SemanticHealth(cases=(SemanticCase(text="Where is my order 1003?", intent="get_refund",
                                               route="plan_action"),))
    body = check(wrong, lambda: services)
    assert body["status"] == "fail" and body["cases"][0]["intent"] == "track_order"

    release = threading.Event()

    class Stuck:
        def predict(self, texts: list[str]) -> Any:
            release.wait(30)
            return services.classifier.predict(texts)

    stuck = dataclasses.replace(services, classifier=Stuck())
    config = SemanticHealth(timeout_s=0.05, cases=(SemanticCase(text="Where is my order 1003?", intent="track_order",
                                                                route="retrieve_knowledge"),))
    try:
        body = check(config, lambda: stuck)
    finally:
        release.set()
    assert body["status"] == "fail" and "no answer within" in body["cases"][0]["error"]


def test_semantic_health_fails_when_services_cannot_be_built() -> None:
    def broken() -> Any:
        raise RuntimeError("chroma is gone")

    config = SemanticHealth(cases=(SemanticCase(text="x", intent="y", route="escalate"),))
    body = check(config, broken)
    assert body["status"] == "fail" and "chroma is gone" in body["reason"]
