"""`python app.py decisions`: read the decision log.

    python app.py decisions --trace TRACE_ID [--json]      # one ticket's decisions, in order
    python app.py decisions --search "refund approved"     # full text, newest first (every word must occur)
    python app.py decisions --alerts [--json]              # alert records, newest first

The store is the settings' (SWITCHBOARD_DECISIONS_URL, default data_dir/decisions.sqlite); it is only read.
Bad input exits with status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn

from config.settings import Settings


class UsageError(Exception):
    """Bad input: one line on stderr, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="app.py decisions", description="Query the decision log (one record per decision point).")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--trace", metavar="ID", help="every decision of one ticket, in order")
    which.add_argument("--search", metavar="TEXT", help="full-text search; every word must occur")
    which.add_argument("--alerts", action="store_true", help="alert records, newest first")
    p.add_argument("--tenant", help="with --search: only this tenant's records")
    p.add_argument("--limit", type=int, default=50, help="at most this many records (default 50)")
    p.add_argument("--json", action="store_true", help="print JSON (a list of records)")
    return p


def decisions_main(argv: list[str]) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.limit < 1:
            raise UsageError("--limit must be at least 1")
        if args.trace is not None and not args.trace.strip():
            raise UsageError("--trace needs a trace id")
        if args.search is not None and not args.search.strip():
            raise UsageError("--search needs some text")
        rows = query(Settings.from_env(), args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.json:
            print(json.dumps(rows, default=str, ensure_ascii=False))
        else:
            print_rows(rows, alerts=args.alerts)
    except BrokenPipeError:  # piped into `head` and the like
        sys.stderr.close()
        return 141
    return 0


def query(settings: Settings, args: argparse.Namespace) -> list[dict]:
    from observability.decisions import decision_target, open_decision_store

    target = decision_target(settings)
    if "://" not in target and not Path(target).exists():
        return []  # nothing recorded yet; reading never creates the store
    try:
        store = open_decision_store(target)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.alerts:
        return [a.as_dict() for a in store.alerts(limit=args.limit)]
    if args.trace is not None:
        return [r.as_dict() for r in store.by_trace(args.trace.strip())][: args.limit]
    return [r.as_dict() for r in store.search(args.search, limit=args.limit, tenant_id=args.tenant)]


def print_rows(rows: list[dict], *, alerts: bool = False) -> None:
    """One line per record: time, node, action [tool], intent (confidence) -> outcome (ms): reasoning."""
    for row in rows:
        when = _time(row.get("ts"))
        if alerts:
            print(f"{when} {row['rule']} {row['state']}: {row['message']}"
                  + (f" [webhook {row['delivered']}]" if row.get("delivered") else ""))
            continue
        tool = f" [{row['tool']}]" if row.get("tool") else ""
        intent = f" {row['intent']}" if row.get("intent") else ""
        conf = f" ({row['confidence']:.2f})" if isinstance(row.get("confidence"), (int, float)) else ""
        print(f"{when} {str(row['trace_id'])[:8]} {row['node']}: {row['action']}{tool}{intent}{conf} -> "
              f"{row['outcome']} ({row['latency_ms']:.1f} ms): {row.get('reasoning') or ''}")
    print(f"{len(rows)} record(s)")


def _time(value: object) -> str:
    import datetime

    if not isinstance(value, (int, float)):
        return "-"
    return datetime.datetime.fromtimestamp(float(value)).isoformat(timespec="seconds")
