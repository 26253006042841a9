"""Observability: one trace id per ticket, the decision log, metrics, alerts, caching, health and the dashboard.

- `tracing`: the ticket's trace id in log lines, LangSmith (only with a key) and OpenTelemetry (only with an
  endpoint);
- `metrics`: Prometheus metrics, and `instrument`, the wrapper every graph node is added with (timing, errors,
  usage, decision records, ticket outcomes, alerts);
- `decisions` / `decision_points`: the searchable decision log (SQLite FTS5 by default) and what each node's
  record says; `cli`: `python app.py decisions --trace ID | --search TEXT`;
- `alerts`: thresholds from config/observability.yaml judged after each ticket, with an optional webhook;
- `cache`: LangGraph CachePolicy keys for classification and retrieval, and a counting cache;
- `http` (needs Starlette, shipped with the LangGraph API server): health, semantic health, metrics, dashboard.

Submodules are imported on use (`from observability.metrics import instrument`): importing the package costs
nothing, so config and CLI code can use `observability.config` without loading LangGraph.
"""

from __future__ import annotations

from typing import Any

__all__ = ["REGISTRY", "instrument", "record_ticket", "render"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from observability import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module 'observability' has no attribute {name!r}")
