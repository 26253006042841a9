"""The project's custom auth, as Aegra calls it (aegra.json: "auth": {"path": "./cluster/aegra_auth.py:auth"}).

Every rule stays in auth/handlers.py; this module only fits its calls to Aegra (0.11), which differs from the
LangGraph server in these places:

- Authentication: Aegra awaits the handler with the request headers alone (`await handler(headers)`), where the
  LangGraph server passes the parameters a handler names (auth/handlers.py takes `headers` and `scope`, and is
  synchronous). Here an async handler of the headers runs the same key lookup (`authenticate_request`, in a worker
  thread: it is SQLite I/O). Aegra hands over no client address, so keyless Studio requests are refused whatever
  SWITCHBOARD_AUTH_ALLOW_STUDIO says: every request to an Aegra instance needs a key. (Failed authentications are
  audited by cluster/aegra_http.py, which sees the method and path.)
- Filters: the LangGraph server applies the filter a handler returns (`visible_to`, `owned_by`) to every read of
  the thread; Aegra only on the thread get, search and delete routes, and drops it on state, history, runs, join,
  stream and run creation. Here the filter of every thread handler is applied to the thread the request names
  (`filtered`, `visible_thread`: 404 when it hides the thread, as the LangGraph server answers). This is what stops
  a reviewer's new message on a customer's thread, and the same user id in another tenant (Aegra's principal is
  the user id alone) from reading a thread.
- `threads.create_run`: Aegra passes the run request's fields at the top level (LangGraph: under `kwargs`) and takes
  back only the config and context a handler returns, merged over the client's. The request is shaped as the
  project's handler expects; what it admitted and rewrote (the input validated, redacted and its slots sealed; the
  context and config with the identity from the key, never from the client; the run metadata) is written back into
  the value, which cluster/aegra_http.py's `admitted_create_run_auth` hands to the run, with the thread's owner and
  tenant in the config metadata, where the LangGraph server puts the thread's metadata and the graph reads whose
  thread a reviewer answers (graphs.context). A create_run call from anywhere else (Aegra's v2 thread commands
  dispatch one with the command envelope and drop the result) is refused (403): no run is built past the intake.
- `threads.update`: the route, never the body, says what an update is (cluster/aegra_routes.py): on the run cancel
  routes (`POST /runs/cancel`, `POST .../runs/{run_id}/cancel`, `PATCH .../runs/{run_id}`) it is marked a cancel
  (Aegra passes the run's ids without LangGraph's `action`), so cancelling one's own runs is not taken for a state
  write; on every other route but the metadata patch it is a state write (staff only), whatever `action`,
  `metadata` or `run_id` keys the client's body carries (Aegra hands the handler that body). A metadata patch
  naming `owner`/`tenant` gets them back with the thread's own values: the handler drops them, but Aegra merges the
  request's original metadata under the handler's, which would otherwise let a client rewrite its thread's tenant.

Aegra also scopes every thread, run and checkpoint query to the principal that created the thread
(`thread.user_id == user.identity`) before any handler runs; cluster/aegra_http.py serves staff the project's rules
admit to a thread under its owner's principal, so a reviewer opens and answers a customer's thread on any instance.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, cast

from langgraph_sdk import Auth

from auth import handlers
from auth.audit import record
from auth.identity import OWNER_KEY, TENANT_KEY
from cluster.aegra_routes import is_admitting, is_metadata_patch, is_run_cancel
from cluster.aegra_threads import ThreadRow, admits, thread_row

RUN_FIELDS = ("input", "command", "config", "context", "stream_mode", "checkpoint", "interrupt_before",
              "interrupt_after", "multitask_strategy")  # fmt: skip

PAST_THE_INTAKE = "this route would start a run past the project's input checks; use POST /threads/{thread_id}/runs"

auth = Auth()
auth._handlers = {key: list(fns) for key, fns in handlers.auth._handlers.items()}
auth._global_handlers = list(handlers.auth._global_handlers)


@auth.authenticate
async def authenticate(headers: dict) -> dict[str, Any]:
    identity = await asyncio.to_thread(
        handlers.authenticate_request, headers, None, keys=handlers.KEYS, settings=handlers.SETTINGS
    )
    return identity.as_user()


def not_found(thread_id: str) -> NoReturn:
    raise Auth.exceptions.HTTPException(status_code=404, detail=f"Thread '{thread_id}' not found")


async def visible_thread(ctx: Auth.types.AuthContext, value: Any, rule: Any) -> ThreadRow | None:
    """The thread the request names, after applying the handler's filter to it as the LangGraph server does (404
    when it hides the thread); None when the request names none or it does not exist (Aegra answers that)."""
    thread_id = value.get("thread_id") if isinstance(value, dict) else None
    if not thread_id:
        return None
    row = await thread_row(str(thread_id))
    if row is not None and isinstance(rule, dict) and not admits(rule, row, handlers.caller(ctx)):
        not_found(row.thread_id)  # not a 403: the LangGraph server's filter answers 404, and so ids cannot be probed
    return row


def filtered(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """`handler`, with the filter it returns applied to the thread the request names (Aegra applies it only on the
    thread get, search and delete routes)."""

    @functools.wraps(handler)
    async def checked(ctx: Auth.types.AuthContext, value: Any) -> Any:
        rule = await handler(ctx=ctx, value=value)
        await visible_thread(ctx, value, rule)
        return rule

    return checked


async def on_create_run(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> dict[str, Any]:
    if not is_admitting():  # a path that would build the run from the client's own request, not from this value
        refused = Auth.exceptions.HTTPException(status_code=403, detail=PAST_THE_INTAKE)
        await asyncio.to_thread(record, handlers.AUDIT, handlers.refused_request(refused, ctx, value))
        raise refused
    kwargs = {field: value.get(field) for field in RUN_FIELDS}
    config = kwargs["config"] = dict(kwargs["config"] or {})
    shaped = {"thread_id": value.get("thread_id"), "assistant_id": value.get("assistant_id"), "kwargs": kwargs,
              "metadata": dict(value.get("metadata") or {})}  # fmt: skip
    # Shaped as the LangGraph server's RunsCreate (cast: Aegra's fields, unchecked until the handler reads them).
    rule = await handlers.on_create_run(ctx=ctx, value=cast(Auth.types.RunsCreate, shaped))  # 403 where rules refuse
    row = await visible_thread(ctx, value, rule)  # a reviewer's new message on a customer's thread: 404
    if row is not None:
        # The LangGraph server merges the thread's metadata into the run's config metadata, where the graph reads
        # whose thread a reviewer is answering (graphs.context); Aegra does not, so its ownership keys go in here.
        # (The handler has dropped any the client sent.)
        metadata = config["metadata"] = dict(config.get("metadata") or {})
        metadata.update({k: row.metadata[k] for k in (OWNER_KEY, TENANT_KEY) if k in row.metadata})
    # What the run takes (cluster/aegra_http.py): the admitted input (validated, redacted, slots sealed), the
    # rewritten context and config, the run metadata with its owner.
    value.update(input=kwargs["input"], config=config, context=kwargs["context"], metadata=shaped["metadata"])
    return {"config": config, "context": kwargs["context"]}


async def on_thread_update(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> Any:
    # The route says what kind of update this is; the keys of a client's body never do (see cluster/aegra_routes).
    if is_run_cancel():
        value = {**value, "action": "cancel"}
    elif not is_metadata_patch():  # a state write, whatever its body names
        value = {k: v for k, v in value.items() if k not in ("action", "metadata")}
    patch = value.get("metadata")
    named = [k for k in (OWNER_KEY, TENANT_KEY) if isinstance(patch, dict) and k in patch]
    # Cast: Aegra's payload, read as the LangGraph server's ThreadsUpdate (its "cancel" action is Aegra's own word).
    rule = await handlers.on_thread_update(ctx=ctx, value=cast(Auth.types.ThreadsUpdate, value))
    row = await visible_thread(ctx, value, rule)
    if named and isinstance(patch, dict):
        # The handler dropped the ownership keys from the patch, but Aegra merges the request's own metadata under
        # the handler's: the keys are put back with the thread's values, so the patch leaves them as they are.
        patch.update({k: row.metadata.get(k) if row else None for k in named})
    return rule


auth._handlers[("threads", "create_run")] = [on_create_run]
auth._handlers[("threads", "update")] = [on_thread_update]
for action in ("read", "search", "delete"):
    auth._handlers[("threads", action)] = [filtered(fn) for fn in auth._handlers[("threads", action)]]
