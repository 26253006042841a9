"""Who is calling: a user, the tenant (shop) they belong to, and their role.

Roles:
- `customer`: sees and runs only their own threads and store items.
- `agent`: a human reviewer; sees the threads of their tenant and may resume (approve, reject, answer) them.
- `admin`: everything, in every tenant; the only role that may change assistants or crons.

The authenticated user travels from `auth.handlers.authenticate` to the graph in the run config
(`config["configurable"]["langgraph_auth_user"]`, also `runtime.server_info.user`); `identity_of` reads it back.

The user object names the caller twice: `identity` is the principal the server scopes its own rows by, `user_id` is
who is calling. They are the same except on Aegra, where a reviewer working a customer's thread is served under the
thread owner's principal (cluster/aegra_http.py); `identity_of` always answers with `user_id`, the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, cast, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ID_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"

Role = Literal["customer", "agent", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
STAFF: frozenset[str] = frozenset({"agent", "admin"})

# Thread metadata keys that record ownership; set by the server on creation and never taken from a client.
OWNER_KEY = "owner"
TENANT_KEY = "tenant"


class Identity(BaseModel):
    """An authenticated caller."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user_id: str = Field(pattern=ID_PATTERN)
    tenant_id: str = Field("default", pattern=ID_PATTERN)
    role: Role = "customer"
    key_id: str | None = None
    via: Literal["key", "studio"] = "key"

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF

    def as_user(self) -> dict[str, Any]:
        """The user object the authenticate handler returns (LangGraph's MinimalUserDict plus our fields)."""
        return {
            "identity": self.user_id,
            "user_id": self.user_id,
            "display_name": self.user_id,
            "is_authenticated": True,
            "permissions": [f"role:{self.role}", f"tenant:{self.tenant_id}"],
            "tenant": self.tenant_id,
            "role": self.role,
            "key_id": self.key_id,
            "via": self.via,
        }


def parse_role(value: str) -> Role:
    """`customer` | `agent` | `admin` (case-insensitive); ValueError otherwise."""
    role = (value or "").strip().lower()
    if role not in ROLES:
        raise ValueError(f"unknown role {value!r}: use one of {', '.join(ROLES)}")
    return cast(Role, role)  # one of ROLES, checked just above


def _field(user: Any, key: str) -> Any:
    if isinstance(user, Mapping) or callable(getattr(user, "get", None)):
        try:
            return user.get(key)
        except Exception:  # noqa: BLE001 - a user object whose get() does not take one argument
            pass
    return getattr(user, key, None)


def identity_of(user: Any) -> Identity | None:
    """The Identity an authenticated user carries, or None when it is not one of ours (e.g. a Studio user
    created by the server itself, or an unauthenticated placeholder). Callers must treat None as "no access"."""
    if user is None:
        return None
    user_id = _field(user, "user_id")
    if user_id is None:  # a user made before `as_user` named the caller apart from the principal
        user_id = _field(user, "identity")
    tenant, role = _field(user, "tenant"), _field(user, "role")
    if not isinstance(user_id, str) or not isinstance(tenant, str) or role not in ROLES:
        return None
    via = _field(user, "via")
    try:
        return Identity(
            user_id=user_id,
            tenant_id=tenant,
            role=role,
            key_id=_field(user, "key_id"),
            via=via if via in ("key", "studio") else "key",
        )
    except ValidationError:
        return None
