"""`python app.py inbox`: the threads of a tenant waiting for a human, and resolving them.

    python app.py inbox [--tenant T] [--json]
    python app.py inbox resolve THREAD --approve | --reject [--reason TEXT] | --edit JSON | --respond TEXT
                        [--tenant T] [--as REVIEWER] [--json]

The CLI acts as the local operator of one tenant (`--tenant`, default `default`): `inbox` lists only that
tenant's waiting threads, each with the interrupt payload the human answers (Agent Inbox schema), and
`resolve` refuses a thread of another tenant. Resolving reuses the ticket service (`graphs.tickets.resume`: the
same validation of the answer, the per-thread lease, the run as the thread's owner with the reviewer recorded
as approver), so `inbox resolve` and `resume` behave alike. Over the API the same list is
`client.threads.search(status="interrupted")`, which the auth handlers filter to the caller's tenant (agent)
or own threads (customer).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from typing import Any

WAITING = {"request_approval": "awaiting_approval", "review_gate": "awaiting_review", "escalate": "escalated"}


def thread_ids(saver: Any) -> list[str]:
    """Every thread the checkpointer holds (SQLite: one query; other savers: their `list`)."""
    conn = getattr(saver, "conn", None)
    if isinstance(conn, sqlite3.Connection):
        rows = conn.execute("SELECT DISTINCT thread_id FROM checkpoints WHERE checkpoint_ns = ''").fetchall()
        return sorted(str(r[0]) for r in rows)
    return sorted({str(t.config["configurable"]["thread_id"]) for t in saver.list(None)})


def waiting_threads(board: Any, tenant: str) -> list[dict[str, Any]]:
    """The threads of `tenant` stopped at a human-in-the-loop interrupt, oldest first."""
    from graphs import tickets

    saver = board.graph.checkpointer
    found = []
    for thread_id in thread_ids(saver):
        snap = board.graph.get_state(board.config(thread_id))
        node, payload = tickets.pending_of(snap)
        if node not in WAITING:
            continue
        owner, owner_tenant = tickets.owner_of(snap)
        if (owner_tenant or "default") != tenant:
            continue
        values = snap.values or {}
        found.append(
            {
                "thread_id": thread_id,
                "status": WAITING[node],
                "node": node,
                "owner": owner,
                "tenant": owner_tenant or "default",
                "since": snap.created_at,
                "intent": values.get("intent"),
                "trace_id": values.get("trace_id"),
                "payload": payload,
            }
        )
    return sorted(found, key=lambda t: str(t["since"]))


def cmd_list(settings: Any, a: argparse.Namespace) -> int:
    from graphs import tickets

    tickets.validate_id(a.tenant, "tenant")
    with tickets.open_switchboard(settings) as board:
        threads = waiting_threads(board, a.tenant)
    if a.json:
        print(json.dumps({"tenant": a.tenant, "threads": threads, "count": len(threads)}, default=str))
        return 0
    for t in threads:
        description = str((t["payload"] or {}).get("description", "")).splitlines()[0][:100]
        print(f"{t['thread_id']}  {t['status']:<17} {t['owner'] or '-':<12} {t['since']}  {description}")
    print(f"{len(threads)} thread(s) waiting in tenant {a.tenant}")
    return 0


def cmd_resolve(settings: Any, a: argparse.Namespace) -> int:
    import app
    from graphs import tickets

    tickets.validate_id(a.thread, "thread id")
    tickets.validate_id(a.tenant, "tenant")
    reviewer = tickets.validate_id(a.approver, "reviewer")
    if not any((a.approve, a.reject)) and a.edit is None and a.respond is None:
        raise tickets.UsageError("inbox resolve needs a decision: --approve, --reject, --edit JSON or --respond TEXT")
    if not tickets.thread_exists(settings, a.thread):
        raise tickets.UsageError(f"unknown thread {a.thread}")
    with tickets.open_switchboard(settings) as board:
        snap = board.graph.get_state(board.config(a.thread))
        node, _ = tickets.pending_of(snap)
        owner, owner_tenant = tickets.owner_of(snap)
        if (owner_tenant or "default") != a.tenant:
            # nor is it listed there
            raise tickets.UsageError(f"thread {a.thread} is not in tenant {a.tenant}'s inbox")
        if node not in WAITING:
            status = snap.values.get("status")
            raise tickets.UsageError(f"thread {a.thread} is not waiting for anyone (status {status})")
        app.take_token(settings, reviewer, a.tenant)
        answer = argparse.Namespace(
            approve=a.approve, reject=a.reject, reason=a.reason, edit=a.edit, respond=a.respond,
            user=owner or "demo", tenant=owner_tenant or "default", approver=reviewer,
        )  # fmt: skip
        app.print_result(tickets.resume(settings, a.thread, answer, board=board), a.json)
    return 0


def build_parser() -> argparse.ArgumentParser:
    import app

    p = argparse.ArgumentParser(prog="app.py inbox", description="Threads waiting for a human, for one tenant.")
    p.add_argument("--tenant", default="default", help="the tenant whose inbox this is (default: default)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_list)
    sub = p.add_subparsers(dest="action")
    s = sub.add_parser("resolve", help="answer a waiting thread (as `resume` does)")
    s.add_argument("thread")
    app.decision_arguments(s)
    s.add_argument("--tenant", default="default", help="the tenant whose inbox this is (default: default)")
    s.add_argument("--as", dest="approver", default="operator", help="who answers, recorded as approver_id")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_resolve)
    return p


def inbox_main(argv: list[str]) -> int:
    import app

    return app.run_command(build_parser().parse_args(argv))
