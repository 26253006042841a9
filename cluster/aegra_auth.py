"""The project's custom auth, as Aegra calls it (aegra.json: "auth": {"path": "./cluster/aegra_auth.py:auth"}).

Every rule stays in auth/handlers.py; this module only fits its calls to Aegra (0.11), which differs from the
LangGraph server in three places:

- Authentication: Aegra awaits the handler with the request headers alone (`await handler(headers)`), where the
  LangGraph server passes the parameters a handler names (auth/handlers.py takes `headers` and `scope`, and is
  synchronous). Here an async handler of the headers runs the same key lookup (`authenticate_request`, in a worker
  thread: it is SQLite I/O). Aegra hands over no client address, so keyless Studio requests are refused whatever
  SWITCHBOARD_AUTH_ALLOW_STUDIO says: every request to an Aegra instance needs a key.
- `threads.create_run`: Aegra passes the run request's fields at the top level (LangGraph: under `kwargs`) and takes
  the run's `config` and `context` from the handler's returned dict. The request is shaped as the project's handler
  expects, and the context and config it rewrote (identity from the key, never from the client) are returned.
- `threads.update`: a run cancel reaches Aegra's handler as the run's ids (LangGraph: with an `action`); it is
  marked as one, so cancelling one's own run is not taken for a state write (staff only).

Everything else is the project's handlers, unchanged. Aegra itself also scopes every thread and run to the identity
that created it (`thread.user_id == identity`), before any handler runs: on Aegra a reviewer's key cannot open a
customer's thread (see README, Scale-out).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from langgraph_sdk import Auth

from auth import handlers

RUN_FIELDS = ("input", "command", "config", "context", "stream_mode", "checkpoint", "interrupt_before",
              "interrupt_after", "multitask_strategy")  # fmt: skip

auth = Auth()
auth._handlers = {key: list(fns) for key, fns in handlers.auth._handlers.items()}
auth._global_handlers = list(handlers.auth._global_handlers)


@auth.authenticate
async def authenticate(headers: dict) -> dict[str, Any]:
    identity = await asyncio.to_thread(
        handlers.authenticate_request, headers, None, keys=handlers.KEYS, settings=handlers.SETTINGS
    )
    return identity.as_user()


async def on_create_run(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> dict[str, Any]:
    kwargs = {field: value.get(field) for field in RUN_FIELDS}
    kwargs["config"] = dict(kwargs["config"] or {})
    shaped = {"thread_id": value.get("thread_id"), "assistant_id": value.get("assistant_id"), "kwargs": kwargs,
              "metadata": dict(value.get("metadata") or {})}  # fmt: skip
    # Shaped as the LangGraph server's RunsCreate (cast: Aegra's fields, unchecked until the handler reads them).
    await handlers.on_create_run(ctx=ctx, value=cast(Auth.types.RunsCreate, shaped))  # 403 where the rules refuse
    return {"config": kwargs["config"], "context": kwargs["context"]}


async def on_thread_update(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> Any:
    if "run_id" in value and "action" not in value:
        value = {**value, "action": "cancel"}
    # Cast: Aegra's payload, read as the LangGraph server's ThreadsUpdate (its "cancel" action is Aegra's own word).
    return await handlers.on_thread_update(ctx=ctx, value=cast(Auth.types.ThreadsUpdate, value))


auth._handlers[("threads", "create_run")] = [on_create_run]
auth._handlers[("threads", "update")] = [on_thread_update]
