"""Health, metrics and the dashboard over HTTP: a small Starlette app the LangGraph API mounts beside its own routes.

    langgraph.json: "http": {"app": "./observability/http.py:app"}

The LangGraph API serves its own `/ok`, `/metrics`, `/docs` and `/openapi.json` before custom routes (they cannot
be shadowed), then these, then its protected API. So Prometheus text lives at `/switchboard/metrics`; the other
routes are served at the paths the issue names and under `/switchboard/` too (aliases):

- `GET /health/live`: liveness, 200 while the process serves requests; nothing is checked.
- `GET /health`: `{"status": "ok" | "degraded", "checks": {...}}`, 200 or 503. Checks are cheap and never build
  anything: data dir writable, the configured shop DB (SQLite file or Postgres) answers, knowledge base non-empty
  (only when services were already built, else "not_loaded"), LLM configured or offline, circuit breakers of models
  and tools.
- `GET /health/semantic`: a canned ticket must classify and route as expected within a time bound
  (observability.semantic, config/observability.yaml `semantic_health`); 503 otherwise.
- `GET /switchboard/metrics`: `observability.metrics.REGISTRY` as Prometheus text, or OpenMetrics with exemplars
  (trace ids) when the scraper's Accept header asks for `application/openmetrics-text`.
- `GET /dashboard`: an HTML page (executions, node load, error rates, latency, cost, human-intervention rate,
  alerts) that polls `/dashboard/data.json` and draws its charts with `/dashboard/dashboard.js` (local SVG, no CDN).

Custom routes are not behind the API's auth unless langgraph.json sets `http.enable_custom_route_auth`: these
expose counts and health only, never ticket text or decision records.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from auth.refusals import AuditRefusals
from config.settings import Settings
from observability.metrics import render
from observability.tracing import configure_langsmith, install_log_context

PREFIX = "/switchboard"
STATIC = Path(__file__).with_name("static")
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
FAILING = {"fail", "open"}


def check_data_dir(data_dir: Path) -> dict[str, Any]:
    """Writable data directory (a missing one is fine if it can be created on first run)."""
    target = data_dir if data_dir.exists() else next((p for p in data_dir.parents if p.exists()), Path("/"))
    try:
        with tempfile.NamedTemporaryFile(dir=target, prefix=".health-"):
            pass
    except OSError as exc:
        return {"status": "fail", "path": str(data_dir), "detail": f"{type(exc).__name__}: {exc}"}
    return {"status": "ok" if target == data_dir else "not_created", "path": str(data_dir)}


def check_shop_db(target: Path | str) -> dict[str, Any]:
    """The configured shop database (`Settings.shop_target`) answers: a SQLite file opens read-only and its schema
    page reads (a missing one is seeded on first run); Postgres connects within 2 s and has the shop's tables."""
    from storage.sql import connect, database_errors, is_postgres, redact, table_exists

    if is_postgres(target):
        where = redact(str(target))
        try:
            conn = connect(str(target), lock="shop", timeout_s=2.0)
            try:
                seeded = table_exists(conn, "shop_meta")
            finally:
                conn.close()
        except database_errors() as exc:
            return {"status": "fail", "path": where, "detail": f"{type(exc).__name__}: {redact(str(exc))[:300]}"}
        return {"status": "ok" if seeded else "not_seeded", "path": where}
    path = Path(target)
    if not path.exists():
        return {"status": "not_seeded", "path": str(path)}
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=1.0)
        try:
            conn.execute("select 1").fetchone()
            conn.execute("select count(*) from sqlite_master").fetchone()  # reads the header: catches a non-DB
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return {"status": "fail", "path": str(path), "detail": f"{type(exc).__name__}: {exc}"}
    return {"status": "ok", "path": str(path)}


def check_knowledge(services: Any | None) -> dict[str, Any]:
    """Knowledge-base record count from already-built services; never builds them."""
    if services is None:
        return {"status": "not_loaded"}
    try:
        kb = int(services.knowledge.count().get("kb", 0))
    except Exception as exc:  # noqa: BLE001 - any store failure is a failed check, reported, not raised
        return {"status": "fail", "detail": f"{type(exc).__name__}: {exc}"}
    return {"status": "ok" if kb > 0 else "fail", "kb": kb}


def check_llm(settings: Settings, services: Any | None) -> dict[str, Any]:
    """Which model chain is configured (none: the offline tier) and each circuit breaker's state: from this
    process's chain, else from the shared Redis store when one is configured (`llm.breaker_states`)."""
    if not settings.llm_enabled:
        return {"status": "offline"}
    from llm import breaker_states  # the model chain's own report; importing builds nothing

    llm = getattr(services, "llm", None) if services is not None else None
    breakers = breaker_states(llm, settings)
    if breakers is None:
        return {"status": "configured", "model": settings.llm_model, "breakers": "not_loaded"}
    # Degraded only when every model's circuit is open: the chain still answers while one is closed.
    status = "open" if breakers and all(s == "open" for s in breakers.values()) else "configured"
    return {"status": status, "model": llm.name if llm is not None else settings.llm_model, "breakers": breakers}


def check_tools(settings: Settings) -> dict[str, Any]:
    """Each shop tool's circuit breaker (`tools.boundary.breaker_states`: this process's, else the shared Redis
    store's). Open only when every tool's circuit is open; `partial` names the open ones."""
    from tools.boundary import breaker_states as tool_breaker_states  # importing builds nothing

    breakers = tool_breaker_states(settings)
    if breakers is None:
        return {"status": "ok", "breakers": "not_loaded"}
    opened = sorted(name for name, state in breakers.items() if state == "open")
    status = "open" if opened and len(opened) == len(breakers) else "partial" if opened else "ok"
    return {"status": status, "breakers": breakers, **({"open": opened} if opened else {})}


def loaded_services(settings: Settings, instances: Mapping[Path, Any] | None = None) -> Any | None:
    """The process's Services for this data dir if `get_services()` already built them, else None."""
    if instances is None:
        from graphs import services as services_module  # importing builds nothing

        instances = services_module._instances
    return instances.get(settings.data_dir.resolve())


def health(settings: Settings | None = None, instances: Mapping[Path, Any] | None = None) -> dict[str, Any]:
    """Run every check; status is "degraded" when any check failed or every LLM circuit is open."""
    settings = settings or Settings.from_env()
    services = loaded_services(settings, instances)
    checks = {
        "data_dir": check_data_dir(settings.data_dir),
        "shop_db": check_shop_db(settings.shop_target),
        "knowledge": check_knowledge(services),
        "llm": check_llm(settings, services),
        "tools": check_tools(settings),
    }
    degraded = any(c["status"] in FAILING for c in checks.values())
    return {"status": "degraded" if degraded else "ok", "checks": checks, "pid": os.getpid()}


def metrics_endpoint(request: Request) -> Response:
    """Prometheus text exposition of the Switchboard registry; OpenMetrics (with exemplars) when asked for."""
    if "application/openmetrics-text" in request.headers.get("accept", ""):
        return Response(render(openmetrics=True), media_type=OPENMETRICS)
    return Response(render(), media_type=CONTENT_TYPE_LATEST)


def health_endpoint(request: Request) -> JSONResponse:
    """Health JSON; 503 when degraded so load balancers take the instance out. Sync: runs in a thread."""
    body = health()
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)


def live_endpoint(request: Request) -> JSONResponse:
    return JSONResponse({"status": "alive", "pid": os.getpid()})


def semantic_endpoint(request: Request) -> JSONResponse:
    """A canned ticket through the real graph: 200 when it classifies and routes as expected in time, else 503."""
    from graphs.services import get_services
    from observability.semantic import check

    settings = Settings.from_env()
    try:
        config = settings.observability().semantic_health
    except ValueError as exc:
        return JSONResponse({"status": "fail", "reason": str(exc)}, status_code=503)
    body = check(config, get_services)
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)


def _base(request: Request) -> str:
    return request.url.path.rstrip("/")


def dashboard_page(request: Request) -> HTMLResponse:
    html = (STATIC / "dashboard.html").read_text(encoding="utf-8").replace("{{BASE}}", _base(request))
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def dashboard_script(request: Request) -> Response:
    return Response((STATIC / "dashboard.js").read_bytes(), media_type="text/javascript; charset=utf-8")


def dashboard_data(request: Request) -> JSONResponse:
    """The live snapshot the page polls (observability.dashboard); reads only what this process already built."""
    from observability.dashboard import loaded_services, snapshot

    return JSONResponse(snapshot(loaded_services()), headers={"Cache-Control": "no-store"})


def _routes() -> list[Route]:
    pages = [
        ("/health", health_endpoint),
        ("/health/live", live_endpoint),
        ("/health/semantic", semantic_endpoint),
        ("/dashboard", dashboard_page),
        ("/dashboard/data.json", dashboard_data),
        ("/dashboard/dashboard.js", dashboard_script),
    ]
    routes = [Route(f"{PREFIX}/metrics", metrics_endpoint, methods=["GET"])]
    for path, endpoint in pages:
        routes.append(Route(path, endpoint, methods=["GET"]))
        routes.append(Route(f"{PREFIX}{path}", endpoint, methods=["GET"]))
    return routes


install_log_context()  # the server's log lines carry trace_id and node too (structlog adds record extras)
configure_langsmith()  # LangSmith only with a key: the server process reads the switch from the environment
# Wrong-owner 404s into the audit log (auth.refusals); langgraph.json's middleware_order auth_first runs it after auth.
app = Starlette(routes=_routes(), middleware=[Middleware(AuditRefusals)])
