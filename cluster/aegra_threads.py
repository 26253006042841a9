"""A thread's owner and tenant as Aegra stores them, and whether the project's rules admit a caller to it.

Aegra (0.11) scopes every thread, run and checkpoint read to the principal that created the thread
(`thread.user_id == user.identity`, in each route's SQL) and applies an `@auth.on` handler's filter only on the
thread get, search and delete routes. The LangGraph server applies the filter on every path instead. The two
modules that fit our auth to Aegra use this one to close the difference:

- cluster/aegra_http.py serves a reviewer (agent of the thread's tenant, or admin) on a thread-scoped route under
  the owner's principal, so Aegra's own scoping lets the request through (`acting_principal`);
- cluster/aegra_auth.py applies the filter each thread handler returned to the thread the request names
  (`admits`), so a filter that hides a thread under `langgraph dev` hides it (404) on Aegra too.

The ownership metadata (`owner`, `tenant`) is set by the server when the thread is created and cannot be changed
later (auth.handlers, and cluster/aegra_auth.py for Aegra's metadata patch). `owner` is also what Aegra writes
(`metadata["owner"] = user.identity`), and `user_id` the principal that created the thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from auth.identity import OWNER_KEY, TENANT_KEY, Identity


@dataclass(frozen=True)
class ThreadRow:
    thread_id: str
    user_id: str  # Aegra's principal: the one its SQL scopes the thread, its runs and checkpoints to
    metadata: dict[str, Any]


async def thread_row(thread_id: str) -> ThreadRow | None:
    """The thread as Aegra stores it, or None when there is none (one primary-key read on Aegra's pool)."""
    from aegra_api.core.orm import Thread, get_session_maker
    from sqlalchemy import select

    async with get_session_maker()() as session:
        row = (
            await session.execute(select(Thread.user_id, Thread.metadata_json).where(Thread.thread_id == thread_id))
        ).first()
    if row is None:
        return None
    metadata = row.metadata_json if isinstance(row.metadata_json, dict) else {}
    return ThreadRow(thread_id=thread_id, user_id=str(row.user_id), metadata=metadata)


def admits(rule: dict[str, Any] | None, row: ThreadRow, identity: Identity) -> bool:
    """Whether a handler's filter (`auth.handlers.visible_to`, `owned_by`: flat owner/tenant equalities, None for
    everything) admits `row`, as the LangGraph server's metadata filter would.

    One difference, on the caller's own thread only: a thread a run created on Aegra (a run on a thread id no one
    created) records no tenant, and its creator keeps it, as Aegra's own scoping gives it to them anyway. Anything
    else a filter asks for (an operator, a value the row does not have) is refused.
    """
    if rule is None:
        return True
    own = row.user_id == identity.user_id
    for key, wanted in rule.items():
        have = row.metadata.get(key)
        if isinstance(wanted, dict) or have != wanted:
            if not (own and key == TENANT_KEY and have is None):
                return False
    return True


def acting_principal(rule: dict[str, Any] | None, row: ThreadRow, identity: Identity) -> str | None:
    """The principal a staff caller is served under on `row` (its owner's), or None when it stays their own.

    Only staff, only when the project's rule admits them to the thread with nothing missing (an agent: the thread
    records their tenant), and only when the thread's recorded owner is the principal Aegra scopes it to."""
    if not identity.is_staff or row.user_id == identity.user_id:
        return None
    if row.metadata.get(OWNER_KEY) != row.user_id or not admits(rule, row, identity):
        return None
    return row.user_id
