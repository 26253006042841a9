"""Per-run context: who is asking, for which tenant. Passed as LangGraph's `context_schema`.

Identity never comes from the model or the message text. Under the served API it never comes from the
client either: `context_of` takes it from the authenticated user the server puts in the run config
(`config["configurable"]["langgraph_auth_user"]`, set by `auth.handlers`):

- a customer's run acts as that customer, whatever context the client sent;
- a reviewer's (agent/admin) run acts as the thread's owner (thread metadata `owner`/`tenant`, which the
  server merges into the run's config metadata), with the reviewer recorded as `approver_id`.

Without an authenticated user (the CLI, tests, notebooks: trusted local callers) the context is used as given.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from auth.identity import ID_PATTERN, OWNER_KEY, TENANT_KEY, Role, identity_of

_ID = ID_PATTERN


class Context(BaseModel):
    """Typed run context. Unknown keys are rejected; ids are validated."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user_id: str = Field("demo", pattern=_ID, description="The customer the ticket is about.")
    tenant_id: str = Field("default", pattern=_ID, description="The shop (tenant) the customer belongs to.")
    channel: str = Field("api", pattern=_ID, description="Where the ticket came from: cli, api, studio, ...")
    role: Role = Field(
        "customer",
        description="Who acts in this run: the customer, or a human reviewer (agent) or admin answering the thread.",
    )
    approver_id: str | None = Field(
        None,
        pattern=_ID,
        description="The reviewer who resumed the thread (approved, rejected, answered), from their own credentials.",
    )

    def namespace(self, *parts: str) -> tuple[str, ...]:
        """A store namespace owned by this customer: (tenant, user, *parts); the served API enforces the prefix."""
        return (self.tenant_id, self.user_id, *parts)


def context_of(runtime: object) -> Context:
    """The run's Context with its identity resolved (see the module docstring)."""
    ctx = _given(runtime)
    user = _auth_user(runtime)
    if user is None:
        return ctx
    identity = identity_of(user)
    if identity is None:
        raise PermissionError("the run's authenticated user is not a Switchboard identity")
    if identity.is_staff:
        owner, tenant = _thread_owner()
        user_id, tenant_id = (owner, tenant) if owner and tenant else (identity.user_id, identity.tenant_id)
        approver: str | None = identity.user_id
    else:
        user_id, tenant_id, approver = identity.user_id, identity.tenant_id, None
    return Context(
        **{
            **ctx.model_dump(),
            "user_id": user_id,
            "tenant_id": tenant_id,
            "role": identity.role,
            "approver_id": approver,
        }
    )


def _given(runtime: object) -> Context:
    ctx = getattr(runtime, "context", None)
    if ctx is None:
        return Context()
    if isinstance(ctx, Context):
        return ctx
    if isinstance(ctx, dict):
        return Context(**ctx)
    raise TypeError(f"unexpected context type {type(ctx).__name__}")


def _run_config() -> dict[str, Any]:
    from langgraph.config import get_config

    try:
        return dict(get_config())
    except RuntimeError:  # not inside a runnable (a node called directly)
        return {}


def _auth_user(runtime: object) -> Any:
    """The authenticated user of a served run, or None outside the server."""
    info = getattr(runtime, "server_info", None)
    user = getattr(info, "user", None)
    if user is not None:
        return user
    return (_run_config().get("configurable") or {}).get("langgraph_auth_user")


def _thread_owner() -> tuple[str | None, str | None]:
    metadata = _run_config().get("metadata") or {}
    owner, tenant = metadata.get(OWNER_KEY), metadata.get(TENANT_KEY)
    return (owner if isinstance(owner, str) else None), (tenant if isinstance(tenant, str) else None)
