"""The project's metrics and health routes for Aegra (aegra.json: "http": {"app": "./cluster/aegra_http.py:app"}).

Aegra mounts only FastAPI apps; observability/http.py is a Starlette app (what `langgraph dev` mounts), so its
routes are carried over unchanged into a FastAPI app: `GET /switchboard/metrics`, `GET /switchboard/health`.
"""

from __future__ import annotations

from fastapi import FastAPI

from observability.http import app as switchboard_routes

app = FastAPI(title="Switchboard", docs_url=None, redoc_url=None, openapi_url=None)
app.router.routes.extend(switchboard_routes.routes)
