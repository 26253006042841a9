"""The dashboard's data: one JSON snapshot computed from the metrics registry (and the alert monitor).

    snapshot()  ->  {"tickets": ..., "nodes": [...], "timeline": [...], "cost": ..., "human": ..., "alerts": ...}

Read live from `observability.metrics.REGISTRY` on every call (what /switchboard/metrics would show), so the
page and a Prometheus scrape never disagree. Latency percentiles are estimated from the histogram buckets the
way Prometheus' histogram_quantile does (linear within the bucket).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from observability import metrics

TIMELINE_MINUTES = 30


def _samples(name: str) -> Iterable[tuple[str, dict[str, str], float]]:
    for family in metrics.REGISTRY.collect():
        if family.name == name:
            for s in family.samples:
                yield s.name, dict(s.labels), float(s.value)


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """histogram_quantile over cumulative (upper bound, count) pairs sorted by bound; None without data."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return prev_bound
            span = count - prev_count
            return prev_bound + (bound - prev_bound) * ((rank - prev_count) / span if span else 1.0)
        prev_bound, prev_count = bound, count
    return prev_bound


def _histograms(name: str, label: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = defaultdict(lambda: {"buckets": [], "count": 0.0, "sum": 0.0})
    for sample, labels, value in _samples(name):
        key = labels.get(label, "")
        if sample.endswith("_bucket"):
            out[key]["buckets"].append((float(labels["le"]), value))
        elif sample.endswith("_count"):
            out[key]["count"] = value
        elif sample.endswith("_sum"):
            out[key]["sum"] = value
    for h in out.values():
        h["buckets"].sort()
    return out


def _counter(name: str, *labels: str) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = defaultdict(float)
    for sample, lab, value in _samples(name):
        if sample.endswith("_total"):
            out[tuple(lab.get(k, "") for k in labels)] += value
    return out


def _rate(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def nodes() -> list[dict[str, Any]]:
    hist = _histograms("switchboard_node_seconds", "node")
    errors = _counter("switchboard_node_errors", "node")
    interrupts = _counter("switchboard_interrupts", "node")
    rows = []
    for node, h in sorted(hist.items()):
        calls = h["count"]
        if not calls:
            continue
        err = errors.get((node,), 0.0)
        p50, p95 = quantile(0.5, h["buckets"]), quantile(0.95, h["buckets"])
        rows.append({
            "node": node,
            "calls": int(calls),
            "errors": int(err),
            "error_rate": _rate(err, calls),
            "interrupts": int(interrupts.get((node,), 0.0)),
            "mean_ms": round(h["sum"] / calls * 1000, 3),
            "p50_ms": None if p50 is None else round(p50 * 1000, 3),
            "p95_ms": None if p95 is None else round(p95 * 1000, 3),
        })
    return rows


def timeline(now: float | None = None, minutes: int = TIMELINE_MINUTES) -> list[dict[str, Any]]:
    """Tickets per minute over the last `minutes`: count, errors, human, mean latency, cost."""
    now = time.time() if now is None else now
    start = (int(now // 60) - minutes + 1) * 60
    rows = [{"t": start + 60 * i, "tickets": 0, "errors": 0, "human": 0, "latency_ms": 0.0, "cost_usd": 0.0}
            for i in range(minutes)]
    for event in list(metrics.TIMELINE):
        i = int((event["ts"] - start) // 60)
        if 0 <= i < minutes:
            row = rows[i]
            row["tickets"] += 1
            row["errors"] += int(bool(event["error"]))
            row["human"] += int(bool(event["human"]))
            row["latency_ms"] += event["latency_ms"]
            row["cost_usd"] += event["cost_usd"]
    for row in rows:
        if row["tickets"]:
            row["latency_ms"] = round(row["latency_ms"] / row["tickets"], 2)
        row["cost_usd"] = round(row["cost_usd"], 6)
    return rows


def tickets() -> dict[str, Any]:
    by = _counter("switchboard_tickets", "status", "decision")
    status: dict[str, float] = defaultdict(float)
    decision: dict[str, float] = defaultdict(float)
    for (st, dec), v in by.items():
        status[st] += v
        decision[dec] += v
    started = sum(_counter("switchboard_tickets_started").values())
    human = sum(_counter("switchboard_tickets_with_human").values())
    latency = _histograms("switchboard_ticket_seconds", "status")
    merged: dict[float, float] = defaultdict(float)
    for h in latency.values():
        for bound, count in h["buckets"]:
            merged[bound] += count
    buckets = sorted(merged.items())
    p50, p95 = quantile(0.5, buckets), quantile(0.95, buckets)
    return {
        "started": int(started),
        "by_status": {k: int(v) for k, v in sorted(status.items())},
        "by_decision": {k: int(v) for k, v in sorted(decision.items())},
        "with_human": int(human),
        "human_intervention_rate": _rate(human, started),
        "escalations": {k[0]: int(v) for k, v in _counter("switchboard_escalations", "reason").items()},
        "p50_ms": None if p50 is None else round(p50 * 1000, 1),
        "p95_ms": None if p95 is None else round(p95 * 1000, 1),
    }


def cost() -> dict[str, Any]:
    by_model: dict[str, float] = defaultdict(float)
    by_node: dict[str, float] = defaultdict(float)
    for (node, model), v in _counter("switchboard_llm_cost_usd", "node", "model").items():
        by_model[model] += v
        by_node[node] += v
    tokens: dict[str, float] = defaultdict(float)
    for (model, kind), v in _counter("switchboard_llm_tokens", "model", "kind").items():
        tokens[f"{model} {kind}"] += v
    return {
        "total_usd": round(sum(by_model.values()), 6),
        "by_model": {k: round(v, 6) for k, v in sorted(by_model.items())},
        "by_node": {k: round(v, 6) for k, v in sorted(by_node.items())},
        "tokens": {k: int(v) for k, v in sorted(tokens.items())},
    }


def hit_rates() -> dict[str, Any]:
    cache: dict[str, dict[str, float]] = defaultdict(lambda: {"hit": 0.0, "miss": 0.0})
    for (node, result), v in _counter("switchboard_cache_lookups", "node", "result").items():
        cache[node][result] += v
    kb = _counter("switchboard_knowledge_lookups", "result")
    hits, misses = kb.get(("hit",), 0.0), kb.get(("miss",), 0.0)
    return {
        "cache": {n: {"hits": int(c["hit"]), "misses": int(c["miss"]), "rate": _rate(c["hit"], c["hit"] + c["miss"])}
                  for n, c in sorted(cache.items())},
        "knowledge": {"hits": int(hits), "misses": int(misses), "rate": _rate(hits, hits + misses)},
    }


def confidence() -> dict[str, list[dict[str, float]]]:
    out: dict[str, list[dict[str, float]]] = {}
    for stage, h in _histograms("switchboard_confidence", "stage").items():
        prev = 0.0
        rows = []
        for bound, count in h["buckets"]:
            if math.isinf(bound):
                continue
            rows.append({"le": bound, "count": int(count - prev)})
            prev = count
        out[stage] = rows
    return out


def alerts(monitors: Iterable[Any] = (), stores: Iterable[Any] = ()) -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    for monitor in monitors:
        rules.extend(monitor.status())
    recent: list[dict[str, Any]] = []
    for store in stores:
        try:
            recent.extend(a.as_dict() for a in store.alerts(limit=20))
        except Exception:  # noqa: BLE001 - the page still renders without the alert history
            pass
    recent.sort(key=lambda a: a["ts"], reverse=True)
    return {"rules": rules, "recent": recent[:20], "firing": sorted({r["rule"] for r in rules if r["firing"]})}


def snapshot(services: Iterable[Any] = ()) -> dict[str, Any]:
    """Everything the dashboard shows; `services` are the process's already-built Services (never built here)."""
    svcs = list(services)
    monitors = [s.alerts for s in svcs if getattr(s, "alerts", None) is not None]
    stores = list({id(s.decisions): s.decisions for s in svcs if getattr(s, "decisions", None) is not None}.values())
    return {
        "generated_at": time.time(),
        "tickets": tickets(),
        "timeline": timeline(),
        "nodes": nodes(),
        "cost": cost(),
        "hit_rates": hit_rates(),
        "confidence": confidence(),
        "breakers": metrics.live_breakers(),
        "alerts": alerts(monitors, stores),
    }


def loaded_services(instances: Mapping[Any, Any] | None = None) -> list[Any]:
    if instances is None:
        import sys

        module = sys.modules.get("graphs.services")
        instances = getattr(module, "_instances", {}) if module else {}
    return list(instances.values())
