"""Alerts: thresholds from config, a record when one is crossed (and when it resolves), a webhook post to a
loopback server the test starts, and the alerts on the dashboard's data."""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from graphs.context import Context
from observability.alerts import AlertMonitor
from observability.config import Alerts
from observability.decisions import SqlDecisionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> SqlDecisionStore:
    return SqlDecisionStore(tmp_path / "decisions.sqlite")


def test_a_rule_fires_once_when_crossed_and_resolves_when_back(store: SqlDecisionStore) -> None:
    clock = Clock()
    monitor = AlertMonitor(Alerts(window_s=60, min_tickets=4, escalation_rate=0.5, p95_latency_ms=None,
                                  error_rate=None, cost_per_hour_usd=None), store, clock=clock)
    for escalated in (False, True, True):
        assert monitor.observe_ticket(latency_ms=10, error=False, escalated=escalated) == []  # below min_tickets
    fired = monitor.observe_ticket(latency_ms=10, error=False, escalated=True)  # 3 of 4
    assert [(a.rule, a.state, a.value) for a in fired] == [("escalation_rate", "firing", 0.75)]
    assert monitor.observe_ticket(latency_ms=10, error=False, escalated=True) == []  # still firing: no new record
    clock.now += 61  # the window slides past every earlier ticket
    for _ in range(3):
        monitor.observe_ticket(latency_ms=10, error=False, escalated=False)
    resolved = monitor.observe_ticket(latency_ms=10, error=False, escalated=False)
    assert [(a.rule, a.state) for a in resolved] == [("escalation_rate", "resolved")]
    assert [(a.rule, a.state) for a in store.alerts()] == [("escalation_rate", "resolved"),
                                                           ("escalation_rate", "firing")]
    assert monitor.status() == [{"rule": "escalation_rate", "threshold": 0.5, "value": 0.0, "firing": False}]


def test_latency_error_and_cost_rules(store: SqlDecisionStore) -> None:
    clock = Clock()
    monitor = AlertMonitor(Alerts(window_s=600, min_tickets=2, p95_latency_ms=100, error_rate=0.4,
                                  escalation_rate=None, cost_per_hour_usd=1.0), store, clock=clock)
    monitor.observe_ticket(latency_ms=50, error=False, escalated=False, cost_usd=0.6)
    fired = monitor.observe_ticket(latency_ms=500, error=True, escalated=False, cost_usd=0.6)
    assert {a.rule for a in fired} == {"p95_latency_ms", "error_rate", "cost_per_hour_usd"}
    clock.now += 3601  # an hour later the spend is gone from the hourly rule
    resolved = monitor.observe_ticket(latency_ms=50, error=False, escalated=False, cost_usd=0.0)
    assert {a.rule for a in resolved if a.state == "resolved"} >= {"cost_per_hour_usd"}


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]], threading.Event]]:
    received: list[dict[str, Any]] = []
    got = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()
            got.set()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hooks/alerts", received, got
    finally:
        server.shutdown()
        server.server_close()


def test_a_crossing_posts_to_the_webhook_and_records_the_delivery(
    store: SqlDecisionStore, webhook: tuple[str, list[dict[str, Any]], threading.Event]
) -> None:
    url, received, got = webhook
    monitor = AlertMonitor(Alerts(min_tickets=1, error_rate=0.1, p95_latency_ms=None, escalation_rate=None,
                                  cost_per_hour_usd=None), store, webhook_url=url)
    monitor.observe_ticket(latency_ms=5, error=True, escalated=False)
    assert got.wait(10), "the webhook was not called"
    monitor.join()
    body = received[0]
    assert (body["source"], body["rule"], body["state"], body["value"]) == ("switchboard", "error_rate", "firing", 1.0)
    assert store.alerts()[0].delivered == "ok 204"


def test_a_webhook_that_is_down_is_recorded_not_raised(store: SqlDecisionStore) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monitor = AlertMonitor(Alerts(min_tickets=1, error_rate=0.1, webhook_timeout_s=2), store,
                           webhook_url=f"http://127.0.0.1:{port}/")
    monitor.observe_ticket(latency_ms=5, error=True, escalated=False)
    monitor.join()
    assert store.alerts()[0].delivered.startswith("error: ")


def test_tickets_through_the_graph_feed_the_monitor_and_the_dashboard(
    with_intent: Any, make_graph: Any, store: SqlDecisionStore
) -> None:
    import dataclasses

    from observability.dashboard import snapshot

    monitor = AlertMonitor(Alerts(min_tickets=2, escalation_rate=0.4, p95_latency_ms=None, error_rate=None,
                                  cost_per_hour_usd=None), store)
    svc = dataclasses.replace(with_intent("track_order", 0.2), decisions=store, alerts=monitor)  # low: escalates
    graph = make_graph(svc)
    for _ in range(2):
        config = {"configurable": {"thread_id": str(uuid.uuid4())}}
        graph.invoke({"messages": [HumanMessage("blorp")]}, config, context=Context(user_id="demo"))
    assert [(a.rule, a.state) for a in store.alerts()] == [("escalation_rate", "firing")]
    data = snapshot([svc])
    assert data["alerts"]["firing"] == ["escalation_rate"]
    assert data["alerts"]["recent"][0]["rule"] == "escalation_rate"
