"""The project's HTTP layer for Aegra (aegra.json: "http": {"app": "./cluster/aegra_http.py:app"}).

Aegra mounts only FastAPI apps, and the app it is given becomes the server: Aegra includes its own routers into it,
after the routes declared here. This one carries:

- the project's metrics and health routes: observability/http.py is a Starlette app (what `langgraph dev` mounts),
  so its routes are carried over unchanged: `GET /switchboard/metrics`, `GET /switchboard/health`;
- the wrong-owner 404s into the audit log (auth.refusals, as under `langgraph dev`), and failed authentications
  (401, `auth_failure`, as auth.handlers records them under `langgraph dev`);
- reviewers on customers' threads. Aegra scopes every thread, run and checkpoint query to the principal that created
  the thread (`thread.user_id == user.identity`, in each route's SQL), before and whatever our handlers decide. So
  Aegra's authentication dependency (`require_auth`) is overridden: on a route naming a thread (`{thread_id}`), a
  caller the project's rules admit to it as staff (an agent of the thread's tenant, an admin:
  `auth.handlers.visible_to`) is served under the thread owner's principal (`identity`), the caller staying in
  `user_id`, which is what every handler and the graph read (`auth.identity.identity_of`). Customers are always
  served under their own principal, so for them Aegra's own scoping holds unchanged;
- thread search for staff (`POST /threads/search`, declared before Aegra's so it answers first): Aegra's search is
  the caller's principal's threads only; staff get every thread their handler's filter admits (an agent: the
  tenant's), customers Aegra's own search;
- every run through the project's intake. Aegra 0.11 starts or resumes a run on these routes:
  `POST /threads/{thread_id}/runs`, `.../runs/stream`, `.../runs/wait` and the thread-less `POST /runs`,
  `/runs/stream`, `/runs/wait` (which call the first three) run the `threads.create_run` handler, but Aegra takes
  only its config and context back, merged over the client's: the client's raw input was stored and checkpointed.
  Their shared step (`_apply_create_run_auth`) is replaced by `admitted_create_run_auth`, so the run takes the
  admitted input (validated, redacted, slots sealed: `guards.intake.admit`), context, config and metadata.
  `POST /threads/{thread_id}/commands` (Agent Protocol v2, on by default with FF_V2_EVENT_STREAMING: `run.start`,
  `input.respond`) builds its runs without them: Aegra hands the handler the command envelope, input nested under
  `params`, and drops what it returns. `POST /runs/crons` and `POST /threads/{thread_id}/runs/crons` start a first
  run at once, and Aegra's scheduler the later ones, without calling it at all. Those three are refused here with
  403 after authentication (`cluster.aegra_routes.NOT_SERVED`), before any handler or route body runs, whatever
  Aegra's flags say; cluster/aegra_auth.py also refuses a `threads.create_run` call from anywhere but
  `admitted_create_run_auth`;
- bulk run cancel (`POST /runs/cancel`, declared before Aegra's) as the LangGraph server answers it: the runs of
  the threads the caller's filter admits, 404 when none. Aegra's own scopes runs to the principal (the user id
  alone), so the same user id in another tenant would cancel them.

The per-thread filters Aegra does not apply (state, history, runs, join, stream: the handler's filter is dropped)
are applied by cluster/aegra_auth.py. The Aegra names used here (`require_auth`, its request-scope cache key, the
thread and run ORM, the search helpers, `_apply_create_run_auth` and `_request_run_interruption`) are 0.11.0's,
checked at import for the two functions; tests/test_cluster.py runs against that release.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Annotated, Any

from aegra_api.api import runs as aegra_runs
from aegra_api.api import threads as aegra_threads
from aegra_api.core.auth_deps import _AUTH_RESULT_SCOPE_KEY, require_auth
from aegra_api.core.auth_filters import build_metadata_filter
from aegra_api.core.auth_handlers import build_auth_context, handle_event
from aegra_api.core.orm import Run as RunORM
from aegra_api.core.orm import Thread as ThreadORM
from aegra_api.core.orm import get_session
from aegra_api.models import RunCreate, RunsCancel, Thread, ThreadSearchRequest, User
from aegra_api.models.enums import RunCancellationAction
from aegra_api.models.search_limit import effective_search_limit
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from langgraph_sdk import Auth
from sqlalchemy import select

from auth import handlers
from auth.audit import AuditEvent, record
from auth.identity import Identity, identity_of
from auth.refusals import AuditRefusals
from cluster import aegra_routes
from cluster.aegra_threads import ThreadRow, acting_principal, admits, thread_row
from observability.http import app as switchboard_routes

app = FastAPI(title="Switchboard", docs_url=None, redoc_url=None, openapi_url=None)
app.router.routes.extend(switchboard_routes.routes)
app.add_middleware(AuditRefusals)  # innermost: it sees the user require_auth put on the request scope


async def require_auth_acting(request: Request) -> User:
    """Aegra's `require_auth`, then, on a thread-scoped route, the thread owner's principal for staff the project's
    rules admit to the thread (see the module docstring)."""
    try:
        user = await require_auth(request)
    except HTTPException as exc:
        if exc.status_code == 401:
            await asyncio.to_thread(record, handlers.AUDIT, failed_authentication(request, exc))
        raise
    route = (request.method, str(getattr(request.scope.get("route"), "path", "")))
    aegra_routes.serve(route)
    thread_id = request.path_params.get("thread_id")
    identity = identity_of(user)
    if route in aegra_routes.NOT_SERVED:  # before any handler or route body runs, whatever Aegra's flags say
        detail = aegra_routes.NOT_SERVED[route]
        await asyncio.to_thread(record, handlers.AUDIT, refused_route(request, identity, user, detail))
        raise HTTPException(403, detail)
    if not thread_id or identity is None or user.identity != identity.user_id:  # no thread, or served already
        return user
    if not identity.is_staff:
        return user
    row = await thread_row(str(thread_id))
    principal = acting_principal(handlers.visible_to(identity), row, identity) if row else None
    if principal is None:
        return user
    acting = User.model_validate({**user.model_dump(), "identity": principal})
    request.scope["user"] = acting  # what Aegra's routes read (get_current_user)
    request.scope[_AUTH_RESULT_SCOPE_KEY] = acting  # what a second require_auth on this request returns
    return acting


def refused_route(request: Request, identity: Identity | None, user: User, detail: str) -> AuditEvent:
    thread_id = request.path_params.get("thread_id")
    return AuditEvent(
        kind="policy_refusal",
        actor=identity.user_id if identity else str(user.identity),
        role=identity.role if identity else "unknown",
        tenant=identity.tenant_id if identity else "",
        action=f"{request.method} {request.url.path[:200]}",
        outcome="403",
        thread_id=str(thread_id or ""),
        detail={"detail": detail},
    )


def failed_authentication(request: Request, exc: HTTPException) -> AuditEvent:
    headers = {k.lower(): v for k, v in request.headers.items()}
    scope = {"method": request.method, "path": request.url.path}
    refused = Auth.exceptions.HTTPException(status_code=401, detail=str(exc.detail))
    return handlers.failed_authentication(refused, headers, scope)


app.dependency_overrides[require_auth] = require_auth_acting


async def admitted_create_run_auth(user: User, thread_id: str, request: RunCreate) -> None:
    """Aegra's `_apply_create_run_auth` (aegra_api/api/runs.py), which every run-creating route calls before it
    stores the run (`/threads/{thread_id}/runs`, `/runs/stream`, `/runs/wait`, and the thread-less `/runs`,
    `/runs/stream`, `/runs/wait`, which call those), except that the run takes what the project's create_run
    handler admitted: its input (validated, redacted, slots sealed), context, config and metadata, in place of the
    client's. Aegra's own takes only the handler's config and context, merged over the client's, so the client's
    raw input was stored and checkpointed, and context keys the handler drops came back."""
    value = {**request.model_dump(), "thread_id": thread_id}
    with aegra_routes.admitting():  # cluster/aegra_auth.py refuses a create_run call from anywhere else
        await handle_event(build_auth_context(user, "threads", "create_run"), value)
    request.input, request.metadata = value["input"], value["metadata"]
    request.config, request.context = value["config"], value["context"]
    # As Aegra's: creating a run also reads its assistant.
    await handle_event(build_auth_context(user, "assistants", "read"), {"assistant_id": request.assistant_id})


def _install_admitted_create_run_auth() -> None:
    """Fail at start-up, not with runs that skip the input checks, when Aegra is not the release this fits."""
    expected = {"_apply_create_run_auth": ["user", "thread_id", "request"],
                "_request_run_interruption": ["session", "run_orm", "action"]}  # fmt: skip
    for name, parameters in expected.items():
        fn = getattr(aegra_runs, name, None)
        if fn is None or list(inspect.signature(fn).parameters) != parameters:
            raise RuntimeError(
                f"cluster/aegra_http.py fits aegra-api 0.11.0: aegra_api.api.runs.{name}({', '.join(parameters)}) "
                "is not there; install the pinned release (make aegra-venv)"
            )
    aegra_runs._apply_create_run_auth = admitted_create_run_auth


_install_admitted_create_run_auth()


NOTHING_ACTIVE = (
    "No matching runs to cancel. Please verify the thread ID and run IDs are correct, and the runs haven't been "
    "deleted or completed."
)


@app.post("/runs/cancel", status_code=204)
async def cancel_runs(
    request: RunsCancel,
    user: Annotated[User, Depends(require_auth)],
    session: Annotated[Any, Depends(get_session)],
    action: Annotated[RunCancellationAction, Query()] = "interrupt",
) -> Response:
    """Cancel runs in bulk as the LangGraph server does: the runs the status or the thread and run ids select, on
    the threads the caller's `threads.update` filter admits (a customer: their own; an agent: the tenant's; an
    admin: all); 404 when that leaves none, or none still pending or running. Aegra's own selects the runs of the
    caller's principal, which is the user id alone (demo of another tenant would cancel demo's runs), and answers
    204 whatever it found."""
    identity = identity_of(user)
    if identity is None:
        raise HTTPException(403, "not a Switchboard identity")
    rule = handlers.visible_to(identity)  # what the threads.update handler returns for a cancel
    stmt = select(RunORM, ThreadORM.user_id, ThreadORM.metadata_json).join(
        ThreadORM, ThreadORM.thread_id == RunORM.thread_id
    )
    if not identity.is_staff:
        stmt = stmt.where(RunORM.user_id == user.identity)  # Aegra's own scoping, kept for customers
    if request.status is not None:
        stmt = stmt.where(RunORM.status.in_(["pending", "running"] if request.status == "all" else [request.status]))
    else:
        stmt = stmt.where(RunORM.thread_id == request.thread_id, RunORM.run_id.in_(request.run_ids or []))
    runs = []
    for run, principal, metadata in (await session.execute(stmt)).all():
        thread = ThreadRow(run.thread_id, str(principal), metadata if isinstance(metadata, dict) else {})
        if admits(rule, thread, identity):  # the thread filter, as on every thread route (cluster/aegra_threads)
            runs.append(run)
    active = [run for run in runs if run.status in ("pending", "running")]
    # The LangGraph server's two answers (langgraph_runtime_inmem Runs.cancel), word for word.
    if not runs:
        raise HTTPException(404, "No runs found to cancel.")
    if not active:
        raise HTTPException(404, NOTHING_ACTIVE)
    for run in active:
        await aegra_runs._request_run_interruption(session, run, action)
    return Response(status_code=204)


@app.post("/threads/search", response_model=list[Thread])
async def search_threads(
    request: ThreadSearchRequest,
    user: Annotated[User, Depends(require_auth)],
    session: Annotated[Any, Depends(get_session)],
) -> list[Thread]:
    """Aegra's thread search, across principals for staff (the filter their handler returns is applied)."""
    identity = identity_of(user)
    if identity is None or not identity.is_staff:
        return await aegra_threads.search_threads(request, user, session)
    filters = await handle_event(build_auth_context(user, "threads", "search"), request.model_dump())
    auth_filter = build_metadata_filter(ThreadORM.metadata_json, filters)
    if auth_filter is None and identity.role != "admin":  # an agent's search is its tenant's, never everyone's
        raise HTTPException(403, "thread search needs the caller's tenant filter")
    stmt = select(ThreadORM)
    if auth_filter is not None:
        stmt = stmt.where(auth_filter)
    # From here as Aegra's own search (aegra_api.api.threads.search_threads), less its `user_id == identity`.
    if request.status:
        stmt = stmt.where(ThreadORM.status == request.status)
    if request.metadata:
        stmt = stmt.where(ThreadORM.metadata_json.op("@>")(request.metadata))
    offset = request.offset or 0
    limit = request.limit if request.limit is not None else effective_search_limit()
    column, asc = aegra_threads._resolve_sort(request)
    direction = column.asc() if asc else column.desc()
    stmt = stmt.order_by(direction, ThreadORM.thread_id.asc()).offset(offset).limit(limit)
    rows = (await session.scalars(stmt)).all()
    return [aegra_threads._serialize_thread(row) for row in rows]
