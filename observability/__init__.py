"""Observability: Prometheus metrics for nodes and tickets (`metrics`), metrics and health over HTTP (`http`).

The per-ticket decision log is the append-only `audit.jsonl` written by `nodes/remember.py`; node-level
lines (node, outcome, trace id, seconds) go to the `switchboard.nodes` logger at DEBUG.
`observability.http` needs Starlette (shipped with the LangGraph API server); `metrics` does not.
"""

from observability.metrics import REGISTRY, instrument, record_ticket, render

__all__ = ["REGISTRY", "instrument", "record_ticket", "render"]
