"""LangGraph custom auth for the served API: every request carries a key, every resource an owner.

    langgraph.json: "auth": {"path": "./auth/handlers.py:auth", "disable_studio_auth": true}

Authentication: `Authorization: Bearer sb_...` or `x-api-key: sb_...` (keys from `python app.py apikey create`)
maps a request to an Identity (user, tenant, role); anything else is 401. `disable_studio_auth` stops
`langgraph dev` from turning any request that carries `x-auth-scheme: langsmith` into a trusted Studio user;
such keyless Studio requests are accepted here only with SWITCHBOARD_AUTH_ALLOW_STUDIO=1, from a loopback
client, with no proxy or tunnel headers, and they act as `Settings.studio_user` with role agent.

Authorization (deny by default; filters make another owner's resource look absent, hence 404):
- threads: created with metadata owner/tenant = the caller (a client's own owner/tenant keys are overwritten,
  and never changed later); customers see their own, agents their tenant's, admins all.
- runs (`threads.create_run`): a new message only on the caller's own thread; a `command` (resume) only from
  agent/admin, who may answer any waiting thread of their tenant. The run's context identity is rewritten
  from the key; the graph re-derives it anyway (`graphs.context.context_of`), running a reviewer's resume as
  the thread's owner with the reviewer recorded as `approver_id`.
- thread state writes (`update_state`): staff only. Deletes: the owner or an admin.
- assistants: anyone authenticated may read and search; only admins create, update or delete.
- store: customers only under (tenant, user, ...), agents under (tenant, ...); search and list_namespaces
  with a shorter prefix are narrowed to the caller's own.
- everything else (crons, future resources): admins only.

Audit and rate limits: every 401 (authentication, kind `auth_failure`, with the key id when one was presented)
and 403 (a handler's refusal, kind `policy_refusal`) is recorded in the audit log (`auth.audit`); a 404 is the
server's answer to a filter, decided after the handler, so `auth.refusals` (middleware) records those. Each run
(`threads.create_run`) takes a token from the caller's user and tenant buckets (`auth.ratelimit`); an empty
bucket is HTTP 429 with `Retry-After`, audited as `rate_limited`.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from langgraph_sdk import Auth

from auth.audit import AuditEvent, open_audit, record
from auth.identity import OWNER_KEY, TENANT_KEY, Identity, identity_of
from auth.keys import PREFIX, KeyStore, key_id_of
from auth.ratelimit import RateLimited, limiter_for
from config.settings import Settings
from graphs.context import ASSISTANT_FIELDS
from memory.user_store import store_label

SETTINGS = Settings.from_env()
KEYS = KeyStore(SETTINGS.auth_target)
AUDIT = open_audit(SETTINGS)
LIMITER = limiter_for(SETTINGS)

# Set by reverse proxies and tunnels (`langgraph dev --tunnel` runs cloudflared): a request carrying one of
# these reached the loopback interface on behalf of someone else.
FORWARDING_HEADERS = (b"forwarded", b"x-forwarded-for", b"x-forwarded-host", b"x-real-ip", b"cf-connecting-ip")
# Context fields that say who a run acts for; only the server sets them.
IDENTITY_FIELDS = ("user_id", "tenant_id", "role", "approver_id")

auth = Auth()


# ---------------------------------------------------------------- authentication


def _header(headers: Mapping[Any, Any], name: bytes) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.decode())
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    value = (value or "").strip()
    return value or None


def presented_keys(headers: Mapping[Any, Any]) -> list[str]:
    """Our keys (`sb_...`) from `Authorization: Bearer` and `x-api-key`; other credentials (a LangSmith key
    the SDK adds from the environment, Studio's LangSmith token) are not ours and are ignored."""
    found = []
    authorization = _header(headers, b"authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer":
            found.append(token.strip())
    api_key = _header(headers, b"x-api-key")
    if api_key:
        found.append(api_key)
    return [k for k in found if k.startswith(PREFIX)]


def is_loopback(client: Any) -> bool:
    if not client:
        return False
    try:
        return ipaddress.ip_address(str(client[0])).is_loopback
    except ValueError:
        return False


def _unauthorized(detail: str) -> NoReturn:
    raise Auth.exceptions.HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def studio_identity(headers: Mapping[Any, Any], client: Any, settings: Settings) -> Identity:
    """A keyless Studio request: only when explicitly allowed, and only straight from loopback."""
    if not settings.auth_allow_studio:
        _unauthorized(
            "Studio sent no API key: send one, or start the server with SWITCHBOARD_AUTH_ALLOW_STUDIO=1 (loopback only)"
        )
    if not is_loopback(client) or any(_header(headers, h) for h in FORWARDING_HEADERS):
        _unauthorized("keyless Studio access is allowed from loopback only, not through a proxy or tunnel")
    return Identity(user_id=settings.studio_user, tenant_id=settings.studio_tenant, role="agent", via="studio")


def authenticate_request(headers: Mapping[Any, Any], client: Any, *, keys: KeyStore, settings: Settings) -> Identity:
    """The caller's Identity; raises 401 for a missing, malformed, unknown or revoked key."""
    candidates = presented_keys(headers)
    if candidates:
        for key in candidates:
            if (identity := keys.lookup(key)) is not None:
                return identity
        _unauthorized("invalid or revoked API key")
    if _header(headers, b"x-auth-scheme") == "langsmith":
        return studio_identity(headers, client, settings)
    _unauthorized("missing API key: send 'Authorization: Bearer sb_...' or 'x-api-key: sb_...'")


# The SDK's Authenticator type names async handlers only; the server runs a sync one in its thread pool
# (langgraph_api.auth.custom: run_in_threadpool when the handler is not a coroutine function).
@auth.authenticate  # type: ignore[type-var]
def authenticate(headers: dict, scope: dict) -> dict[str, Any]:
    # Synchronous on purpose: the key lookup and the audit are SQLite I/O, and the server runs sync handlers in a
    # thread pool.
    try:
        return authenticate_request(headers, scope.get("client"), keys=KEYS, settings=SETTINGS).as_user()
    except Auth.exceptions.HTTPException as exc:
        record(AUDIT, failed_authentication(exc, headers, scope))
        raise


def failed_authentication(exc: Auth.exceptions.HTTPException, headers: Mapping[Any, Any], scope: Mapping) -> AuditEvent:
    """The audit event of a refused authentication: the key id when a well-formed key was presented."""
    key_ids = [k for k in (key_id_of(key) for key in presented_keys(headers)) if k]
    return AuditEvent(
        kind="auth_failure",
        actor=f"key:{key_ids[0]}" if key_ids else "anonymous",
        role="anonymous",
        action=f"{scope.get('method', '?')} {scope.get('path', '?')}",
        outcome=str(exc.status_code),
        detail={"detail": str(exc.detail)},
    )


def audit_refusals(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Record a resource handler's refusal (403, 429) in the audit log, then let it through unchanged.

    The append runs in a worker thread: handlers are async, and SQLite I/O must not block the event loop."""

    @functools.wraps(handler)
    async def audited(ctx: Auth.types.AuthContext, value: Any) -> Any:
        try:
            return await handler(ctx=ctx, value=value)
        except Auth.exceptions.HTTPException as exc:
            await asyncio.to_thread(record, AUDIT, refused_request(exc, ctx, value))
            raise

    return audited


def refused_request(exc: Auth.exceptions.HTTPException, ctx: Auth.types.AuthContext, value: Any) -> AuditEvent:
    identity = identity_of(ctx.user)
    thread = value.get("thread_id") if isinstance(value, Mapping) else None
    return AuditEvent(
        kind="rate_limited" if exc.status_code == 429 else "policy_refusal",
        actor=identity.user_id if identity else str(getattr(ctx.user, "identity", "unknown")),
        role=identity.role if identity else "unknown",
        tenant=identity.tenant_id if identity else "",
        action=f"{ctx.resource}.{ctx.action}",
        outcome=str(exc.status_code),
        thread_id=str(thread or ""),
        detail={"detail": str(exc.detail)},
    )


# ---------------------------------------------------------------- helpers for the resource handlers


def caller(ctx: Auth.types.AuthContext) -> Identity:
    identity = identity_of(ctx.user)
    if identity is None:  # e.g. a server-made Studio user if disable_studio_auth were ever turned off
        raise Auth.exceptions.HTTPException(status_code=403, detail="not a Switchboard identity")
    return identity


def admit_run_input(kwargs: dict[str, Any], identity: Identity) -> None:
    """The run's input validated, redacted and its slots sealed (`guards.intake.admit`) before the server stores the
    run or checkpoints its input; a malformed input is HTTP 422 with what is wrong."""
    from guards.intake import InvalidInput, admit
    from guards.vault import owner_of, vault_for

    if kwargs.get("input") is None:  # a resume or a bare command
        return
    try:
        kwargs["input"] = admit(
            kwargs["input"],
            vault=vault_for(SETTINGS),
            owner=owner_of(identity.tenant_id, identity.user_id),
            max_chars=SETTINGS.policy().limits.max_input_chars,
        )
    except InvalidInput as exc:
        raise Auth.exceptions.HTTPException(status_code=422, detail=f"invalid input: {exc}") from exc


def deny(detail: str) -> NoReturn:
    raise Auth.exceptions.HTTPException(status_code=403, detail=detail)


def owned_by(identity: Identity) -> dict[str, str]:
    return {OWNER_KEY: identity.user_id, TENANT_KEY: identity.tenant_id}


def visible_to(identity: Identity) -> dict[str, str] | None:
    """The metadata filter for what `identity` may see (None: everything)."""
    if identity.role == "customer":
        return owned_by(identity)
    if identity.role == "agent":
        return {TENANT_KEY: identity.tenant_id}
    return None


def strip_ownership(metadata: Any) -> None:
    if isinstance(metadata, dict):
        metadata.pop(OWNER_KEY, None)
        metadata.pop(TENANT_KEY, None)


# ---------------------------------------------------------------- default: deny


@auth.on
@audit_refusals
async def admins_only(ctx: Auth.types.AuthContext, value: Any) -> None:
    """Anything without a handler of its own (crons, resources added later) is for admins."""
    if caller(ctx).role != "admin":
        deny(f"{ctx.resource}.{ctx.action} is for admins only")


# ---------------------------------------------------------------- threads and runs


@auth.on.threads.create
@audit_refusals
async def on_thread_create(ctx: Auth.types.AuthContext, value: Auth.types.ThreadsCreate) -> dict[str, str]:
    identity = caller(ctx)
    metadata = value.get("metadata")
    if metadata is None:  # threads.copy asks without metadata (the copy keeps the original's)
        metadata = value["metadata"] = {}
    metadata.update(owned_by(identity))
    return owned_by(identity)  # an existing thread with this id must be the caller's (else 409)


@auth.on.threads.read
@audit_refusals
async def on_thread_read(ctx: Auth.types.AuthContext, value: Auth.types.ThreadsRead) -> dict[str, str] | None:
    return visible_to(caller(ctx))


@auth.on.threads.search
@audit_refusals
async def on_thread_search(
    ctx: Auth.types.AuthContext, value: Auth.types.ThreadsSearch
) -> dict[str, str] | None:
    return visible_to(caller(ctx))


@auth.on.threads.update
@audit_refusals
async def on_thread_update(
    ctx: Auth.types.AuthContext, value: Auth.types.ThreadsUpdate
) -> dict[str, str] | None:
    identity = caller(ctx)
    if "action" in value:  # cancelling runs
        return visible_to(identity)
    if "metadata" in value:  # a metadata patch (merged): the ownership keys never change
        strip_ownership(value["metadata"])
        return visible_to(identity)
    # writing the thread's state (update_state / bulk): that could skip an approval, so staff only
    if not identity.is_staff:
        deny("customers cannot write a thread's state; send a message instead")
    return visible_to(identity)


@auth.on.threads.delete
@audit_refusals
async def on_thread_delete(
    ctx: Auth.types.AuthContext, value: Auth.types.ThreadsDelete
) -> dict[str, str] | None:
    identity = caller(ctx)
    if identity.role == "agent":
        deny("reviewers cannot delete threads or runs")
    return visible_to(identity)


@auth.on.threads.create_run
@audit_refusals
async def on_create_run(
    ctx: Auth.types.AuthContext, value: Auth.types.RunsCreate
) -> dict[str, str] | None:
    identity = caller(ctx)
    kwargs = value.get("kwargs")
    if not isinstance(kwargs, dict):
        deny("malformed run request")
    command = {k: v for k, v in (kwargs.get("command") or {}).items() if v is not None}
    if command and not identity.is_staff:
        deny("only a human reviewer (role agent or admin) may resume or steer a thread")
    if identity.role == "agent" and set(command) - {"resume"}:
        deny("reviewers may only resume a thread (command.resume), not update or redirect it")
    # Staff answering a thread (agents: resume only; admins: any command) act on the owner's thread, as the owner.
    answering = identity.is_staff and bool(command)

    config = kwargs.get("config")
    strip_ownership(value.get("metadata"))
    strip_ownership(config.get("metadata") if isinstance(config, dict) else None)
    if not answering and isinstance(value.get("metadata"), dict):
        value["metadata"].update(owned_by(identity))  # a thread this run creates belongs to the caller
    set_run_identity(kwargs, identity, answering=answering)
    await asyncio.to_thread(admit_run_input, kwargs, identity)  # reads the key file and policy: not on the loop
    await take_token(identity)
    # A reviewer answers any waiting thread of their tenant; a new message goes only to one's own thread.
    return visible_to(identity) if answering else owned_by(identity)


async def take_token(identity: Identity) -> None:
    """One token from the caller's user and tenant buckets, or HTTP 429 with Retry-After (never an error)."""
    try:
        if getattr(LIMITER.buckets, "shared", False):
            await asyncio.to_thread(LIMITER.check, identity.user_id, identity.tenant_id)  # Redis: network I/O
        else:
            LIMITER.check(identity.user_id, identity.tenant_id)
    except RateLimited as exc:
        raise Auth.exceptions.HTTPException(
            status_code=429, detail=str(exc), headers={"Retry-After": str(exc.retry_after)}
        ) from None


def set_run_identity(kwargs: dict[str, Any], identity: Identity, *, answering: bool) -> None:
    """Overwrite whatever identity the client put in the run's context (and its configurable mirror)."""
    context = kwargs.get("context")
    if not isinstance(context, dict):
        context = kwargs["context"] = {}
    if answering:  # the graph runs as the thread's owner (from its metadata), not as the reviewer
        context.pop("user_id", None)
        context.pop("tenant_id", None)
    else:
        context["user_id"] = identity.user_id
        context["tenant_id"] = identity.tenant_id
    context["role"] = identity.role
    context["approver_id"] = identity.user_id if identity.is_staff else None
    for key in ASSISTANT_FIELDS:  # a strict assistant's settings: a run may not loosen (or set) them
        context.pop(key, None)
    config = kwargs.get("config")
    configurable = config.get("configurable") if isinstance(config, dict) else None
    if isinstance(configurable, dict):
        for key in (*IDENTITY_FIELDS, *ASSISTANT_FIELDS):
            configurable.pop(key, None)


# ---------------------------------------------------------------- assistants


@audit_refusals
async def on_assistant_lookup(ctx: Auth.types.AuthContext, value: Any) -> None:
    caller(ctx)


@audit_refusals
async def on_assistant_change(ctx: Auth.types.AuthContext, value: Any) -> None:
    if caller(ctx).role != "admin":
        deny("only admins may create, change or delete assistants")


# One handler per action each (the SDK types a handler by its action, so stacked decorators would not check).
auth.on.assistants.read(on_assistant_lookup)
auth.on.assistants.search(on_assistant_lookup)
auth.on.assistants.create(on_assistant_change)
auth.on.assistants.update(on_assistant_change)
auth.on.assistants.delete(on_assistant_change)


# ---------------------------------------------------------------- store


def store_scope(identity: Identity) -> tuple[str, ...] | None:
    """The namespace prefix `identity` may use (None: any)."""
    # the labels memory writes: "jo.smith" is stored as "jo%2Esmith"
    if identity.role == "customer":
        return (store_label(identity.tenant_id), store_label(identity.user_id))
    if identity.role == "agent":
        return (store_label(identity.tenant_id),)
    return None


@auth.on.store
@audit_refusals
async def on_store(ctx: Auth.types.AuthContext, value: Any) -> None:
    scope = store_scope(caller(ctx))
    if scope is None:
        return
    namespace = tuple(value.get("namespace") or ())
    if namespace[: len(scope)] == scope:
        return
    if ctx.action in ("search", "list_namespaces") and scope[: len(namespace)] == namespace:
        value["namespace"] = scope  # a shorter prefix is narrowed to the caller's own items
        return
    deny(f"store namespaces for this key start with {list(scope)}")
