"""Audit the wrong-owner requests the auth handlers cannot see: the server's 404 for another owner's resource.

A resource handler (`auth.handlers`) answers a read of someone else's thread with a metadata filter, and the
server then answers 404 ("not found" to the caller, so ids cannot be probed); the handler never learns that the
filter hid something. This ASGI middleware sees the response: a 404 to an authenticated caller on a thread or
run path is recorded as a `policy_refusal` (who, role, tenant, method and path, thread id, outcome 404).
A thread that does not exist at all looks the same from here and is recorded too: probing ids is worth seeing.

Mounted by the custom HTTP app (observability/http.py) with langgraph.json `http.middleware_order: auth_first`,
so it runs after authentication, on the protected routes, with `scope["user"]` set. 403s are recorded by the
handlers themselves (`auth.handlers.audit_refusals`), so they are not recorded twice.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from auth.audit import AuditEvent, record
from auth.identity import identity_of

AUDITED_PATHS = re.compile(r"^/(threads|runs)(/|$)")
THREAD_IN_PATH = re.compile(r"^/threads/([0-9a-fA-F-]{8,64})(/|$)")


def refusal_event(scope: dict[str, Any], status: int) -> AuditEvent | None:
    """The audit event of a wrong-owner response, or None when this one is not audited."""
    path = str(scope.get("path") or "")
    if status != 404 or not AUDITED_PATHS.match(path):
        return None
    identity = identity_of(scope.get("user"))
    if identity is None:  # unauthenticated requests never get this far (401, audited by the authenticate handler)
        return None
    thread = THREAD_IN_PATH.match(path)
    return AuditEvent(
        kind="policy_refusal",
        actor=identity.user_id,
        role=identity.role,
        tenant=identity.tenant_id,
        action=f"{scope.get('method', '?')} {path[:200]}",
        outcome="404",
        thread_id=thread.group(1) if thread else "",
        detail={"detail": "not found or not visible to the caller (owner/tenant filter)"},
    )


class AuditRefusals:
    """Pure ASGI middleware: record `refusal_event`s in the audit log; the response itself is not changed."""

    def __init__(self, app: Any, audit: Any = None) -> None:
        self.app = app
        self._audit = audit

    @property
    def audit(self) -> Any:
        if self._audit is None:
            from auth.audit import open_audit
            from config.settings import Settings

            self._audit = open_audit(Settings.from_env())
        return self._audit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or not AUDITED_PATHS.match(str(scope.get("path") or "")):
            await self.app(scope, receive, send)
            return

        async def watched(message: dict[str, Any]) -> None:
            if message.get("type") == "http.response.start":
                event = refusal_event(scope, int(message.get("status", 0)))
                if event is not None:
                    await asyncio.to_thread(record, self.audit, event)  # SQLite I/O off the event loop
            await send(message)

        await self.app(scope, receive, watched)
