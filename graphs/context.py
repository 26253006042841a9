"""Per-run context: who is asking, for which tenant. Passed as LangGraph's `context_schema`.

Identity never comes from the model or the message text: the caller (CLI, API client, Studio)
sets it, and tools receive it from here.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

_ID = r"^[A-Za-z0-9_.@-]{1,64}$"


class Context(BaseModel):
    """Typed run context. Unknown keys are rejected; ids are validated."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user_id: str = Field("demo", pattern=_ID, description="The customer the ticket is about.")
    tenant_id: str = Field("default", pattern=_ID, description="The shop (tenant) the customer belongs to.")
    channel: str = Field("api", pattern=_ID, description="Where the ticket came from: cli, api, studio, ...")


def context_of(runtime: object) -> Context:
    """The run's Context, or the defaults when the caller passed none (e.g. Studio without context)."""
    ctx = getattr(runtime, "context", None)
    if ctx is None:
        return Context()
    if isinstance(ctx, Context):
        return ctx
    if isinstance(ctx, dict):
        return Context(**ctx)
    raise TypeError(f"unexpected context type {type(ctx).__name__}")
