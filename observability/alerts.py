"""Alerts: thresholds from config/observability.yaml `alerts`, judged after every ticket over a sliding window.

    monitor = AlertMonitor(cfg.alerts, store, webhook_url=settings.alert_webhook_url)
    monitor.observe_ticket(latency_ms=..., error=False, escalated=False, cost_usd=0.0)   # from instrument()
    monitor.status()                                                                       # for /dashboard

Rules: p95 ticket latency, error rate (tickets in which a node raised or a specialist failed), escalation rate
(tickets handed to a human), model cost over the last hour. The rates wait for `min_tickets` tickets in the
window. A rule that crosses its threshold writes one "firing" record to the store's `alerts` table (and posts
it to the webhook, in the background, when one is configured); falling back writes one "resolved" record.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import urllib.request
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from observability.config import Alerts
from observability.decisions import AlertRecord

log = logging.getLogger("switchboard.alerts")

HOUR_S = 3600.0
_MONITORS: weakref.WeakSet[AlertMonitor] = weakref.WeakSet()


def join_all(timeout: float = 5.0) -> None:
    """Wait for every monitor's webhook posts in flight (a CLI process about to exit)."""
    for monitor in list(_MONITORS):
        monitor.join(timeout)


@dataclass(frozen=True)
class _Event:
    ts: float
    latency_ms: float
    error: bool
    escalated: bool
    cost_usd: float


def _p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)] if ordered else 0.0


class AlertMonitor:
    """Sliding-window alert rules with fire/resolve records and an optional webhook. Thread-safe."""

    def __init__(
        self,
        config: Alerts,
        store: Any | None = None,
        *,
        webhook_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.webhook_url = webhook_url or config.webhook_url
        self.clock = clock
        self._events: deque[_Event] = deque()
        self._firing: dict[str, bool] = {}
        self._values: dict[str, float] = {}
        self._lock = threading.Lock()
        self._deliveries: list[threading.Thread] = []
        _MONITORS.add(self)

    def rules(self) -> dict[str, float]:
        c = self.config
        pairs = {
            "p95_latency_ms": c.p95_latency_ms,
            "error_rate": c.error_rate,
            "escalation_rate": c.escalation_rate,
            "cost_per_hour_usd": c.cost_per_hour_usd,
        }
        return {k: float(v) for k, v in pairs.items() if v is not None}

    def observe_ticket(self, *, latency_ms: float, error: bool, escalated: bool, cost_usd: float = 0.0) -> list[
            AlertRecord]:
        """Add one ticket and judge every rule; returns the alert records this ticket caused."""
        now = self.clock()
        with self._lock:
            self._events.append(_Event(now, latency_ms, error, escalated, cost_usd))
            horizon = now - max(self.config.window_s, HOUR_S)
            while self._events and self._events[0].ts < horizon:
                self._events.popleft()
            values = self._evaluate(now)
            changes: list[AlertRecord] = []
            for rule, threshold in self.rules().items():
                value = values.get(rule)
                if value is None:
                    continue
                firing = value > threshold
                if firing != self._firing.get(rule, False):
                    self._firing[rule] = firing
                    changes.append(self._alert(rule, firing, value, threshold, now))
            self._values = values
        for alert in changes:
            self._publish(alert)
        return changes

    def _evaluate(self, now: float) -> dict[str, float]:
        window = [e for e in self._events if e.ts >= now - self.config.window_s]
        values: dict[str, float] = {
            "cost_per_hour_usd": round(sum(e.cost_usd for e in self._events if e.ts >= now - HOUR_S), 6)
        }
        if len(window) >= self.config.min_tickets:
            n = len(window)
            values["p95_latency_ms"] = round(_p95([e.latency_ms for e in window]), 1)
            values["error_rate"] = round(sum(e.error for e in window) / n, 4)
            values["escalation_rate"] = round(sum(e.escalated for e in window) / n, 4)
        return values

    def _alert(self, rule: str, firing: bool, value: float, threshold: float, now: float) -> AlertRecord:
        window = HOUR_S if rule == "cost_per_hour_usd" else self.config.window_s
        verb = "above" if firing else "back within"
        return AlertRecord(
            rule=rule,
            state="firing" if firing else "resolved",
            value=value,
            threshold=threshold,
            window_s=window,
            message=f"{rule} {value:g} is {verb} the threshold {threshold:g} (last {window:g} s)",
            ts=now,
        )

    def _publish(self, alert: AlertRecord) -> None:
        log.warning("alert %s: %s", alert.state, alert.message)
        if self.store is not None:
            try:
                self.store.add_alert(alert)
            except Exception:  # noqa: BLE001 - an alert that cannot be stored is still logged and posted
                log.error("alert record not written", exc_info=True)
        if self.webhook_url:
            thread = threading.Thread(target=self._deliver, args=(alert,), name="switchboard-alert", daemon=True)
            self._deliveries.append(thread)
            thread.start()

    def _deliver(self, alert: AlertRecord) -> None:
        body = json.dumps({"source": "switchboard", **alert.as_dict()}).encode()
        request = urllib.request.Request(
            str(self.webhook_url), data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.config.webhook_timeout_s) as resp:  # noqa: S310
                outcome = f"ok {resp.status}"
        except Exception as exc:  # noqa: BLE001 - a webhook that is down is recorded, never raised
            outcome = f"error: {type(exc).__name__}: {exc}"
            log.warning("alert webhook failed: %s", outcome)
        if self.store is not None and alert.id:
            try:
                self.store.set_delivery(alert.id, outcome)
            except Exception:  # noqa: BLE001
                log.debug("delivery state not written", exc_info=True)

    def join(self, timeout: float = 10.0) -> None:
        """Wait for webhook deliveries in flight (CLI exit, tests)."""
        for thread in list(self._deliveries):
            thread.join(timeout)
        self._deliveries = [t for t in self._deliveries if t.is_alive()]

    def status(self) -> list[dict[str, Any]]:
        """Every rule with its threshold, latest value (None until judged) and whether it fires."""
        with self._lock:
            return [
                {"rule": rule, "threshold": threshold, "value": self._values.get(rule),
                 "firing": self._firing.get(rule, False)}
                for rule, threshold in self.rules().items()
            ]
