"""`python app.py audit`: query the audit log (auth/audit.py), oldest first.

    python app.py audit [--thread ID] [--user ID] [--tenant T] [--kind KIND] [--limit N] [--json]

`--user` matches who acted and on whose behalf (a reviewer's approval of demo's refund is found under both).
The shop's write journal is merged in, so a committed write is listed even if its copy never reached the log.
With --json: one object {"events": [...], "count": N}. Bad input exits with status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import NoReturn

from auth.audit import EVENT_KINDS, AuditEvent, open_audit, query_events
from auth.identity import ID_PATTERN
from config.settings import Settings


class UsageError(Exception):
    """Bad input: one line on stderr, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="app.py audit", description="Query the append-only audit log.")
    p.add_argument("--thread", help="only this thread")
    p.add_argument("--user", help="only events this user did or that were done for them")
    p.add_argument("--tenant", help="only this tenant")
    p.add_argument("--kind", choices=EVENT_KINDS, help="only this kind of event")
    p.add_argument("--limit", type=int, default=1000, help="at most this many events (default 1000)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def line(e: AuditEvent) -> str:
    who = e.actor if e.actor == e.subject or not e.subject else f"{e.actor} for {e.subject}"
    where = f" thread {e.thread_id}" if e.thread_id else ""
    return f"{e.ts}  {e.kind:<12} {e.action:<28} {e.outcome:<9} {who} ({e.role}, {e.tenant or '-'}){where}"


def audit_main(argv: list[str], settings: Settings | None = None) -> int:
    settings = settings or Settings.from_env()
    try:
        args = build_parser().parse_args(argv)
        if args.limit < 1:
            raise UsageError("--limit must be at least 1")
        for value, what in ((args.thread, "thread id"), (args.user, "user"), (args.tenant, "tenant")):
            if value is not None and not re.fullmatch(ID_PATTERN, value):
                raise UsageError(f"invalid {what} {value!r}: use 1-64 letters, digits, '_', '.', '@' or '-'")
        try:
            audit = open_audit(settings)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        events = query_events(
            audit,
            shop=settings.shop_target,
            thread_id=args.thread,
            user_id=args.user,
            tenant=args.tenant,
            kind=args.kind,
            limit=args.limit,
        )
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"events": [e.model_dump() for e in events], "count": len(events)}, default=str))
    else:
        for e in events:
            print(line(e))
        print(f"{len(events)} event(s)")
    return 0
