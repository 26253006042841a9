"""Per-run context: who is asking, for which tenant. Passed as LangGraph's `context_schema`.

Identity never comes from the model or the message text. Under the served API it never comes from the
client either: `context_of` takes it from the authenticated user the server puts in the run config
(`config["configurable"]["langgraph_auth_user"]`, set by `auth.handlers`):

- a customer's run acts as that customer, whatever context the client sent;
- a reviewer's (agent/admin) run acts as the thread's owner (thread metadata `owner`/`tenant`, which the
  server merges into the run's config metadata), with the reviewer recorded as `approver_id`.

Without an authenticated user (the CLI, tests, notebooks: trusted local callers) the context is used as given.

Assistant-level settings (`ASSISTANT_FIELDS`: a stricter auto threshold, a lower refund auto-approval limit) make
a "strict" assistant. They can only tighten config/policy.yaml (`auto_threshold_of`, `refund_limit_of`), and under
the served API only an assistant sets them: `auth.handlers` drops them from a run's own context before the server
merges it over the assistant's, so a run can never loosen its assistant.

The role decides who may answer a human-in-the-loop interrupt: only `agent` or `admin` (nodes.hitl), in the graph
itself, whatever the client (API, Studio, CLI, notebook).
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

    auto_threshold: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Assistant setting: the confidence an answer needs to go out without human review. Only raises "
        "config/policy.yaml's confidence.auto; a run cannot set it.",
    )
    refund_auto_approve_eur: float | None = Field(
        None,
        ge=0,
        description="Assistant setting: refunds up to this amount (EUR) are approved by policy. Only lowers "
        "config/policy.yaml's approval.refund_auto_approve_eur; a run cannot set it.",
    )

    def namespace(self, *parts: str) -> tuple[str, ...]:
        """A store namespace owned by this customer: (tenant, user, *parts); the served API enforces the prefix."""
        return (self.tenant_id, self.user_id, *parts)


ASSISTANT_FIELDS = ("auto_threshold", "refund_auto_approve_eur")
"""Context fields only an assistant sets (the served API drops them from a run's context)."""


def auto_threshold_of(configured: float, ctx: Context) -> float:
    """The auto-complete threshold in force: the stricter (higher) of config's and the assistant's."""
    return max(configured, ctx.auto_threshold) if ctx.auto_threshold is not None else configured


def refund_limit_of(configured: float, ctx: Context) -> float:
    """The refund auto-approval limit in force (EUR): the stricter (lower) of config's and the assistant's."""
    return min(configured, ctx.refund_auto_approve_eur) if ctx.refund_auto_approve_eur is not None else configured


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
