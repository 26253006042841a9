"""Switchboard CLI: ask, resume, chat, seed, ingest, train-intents, train-guard, eval, bench, memory, demo, apikey,
health, audit, inbox, decisions.

    python app.py ask "Where is my order 1003?" --json
    python app.py resume THREAD --approve --json

Bad input exits with status 2 and one line on stderr, and writes nothing. Over a rate limit (auth/ratelimit.py)
`ask` and `resume` exit with status 75 and, with --json, print {"status": "rate_limited", "retry_after_s": ...}.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from config.settings import Settings, log_level  # noqa: E402
from graphs.tickets import (  # noqa: E402
    Switchboard,
    UsageError,
    ask,
    open_switchboard,
    resume,
    thread_exists,
    validate_id,
    validate_text,
)


def take_token(settings: Settings, user: str, tenant: str) -> None:
    """One ticket's token from the user's and the tenant's bucket; raises auth.ratelimit.RateLimited when empty.

    Taken by the commands a person runs (ask, resume, chat, inbox resolve), not by `ask` / `resume` themselves,
    which evals, benchmarks and the demo call in-process as trusted code."""
    from auth.ratelimit import limiter_for

    limiter_for(settings).check(user, tenant)


# ---------------------------------------------------------------- output


def print_result(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, ensure_ascii=False, default=str))
        return
    from rich.console import Console
    from rich.panel import Panel

    console = Console()
    head = (
        f"[bold]{result['status']}[/] · intent {result['intent']} ({result['confidence']}) · "
        f"{result['decision']} · {result['latency_ms']} ms"
    )
    body = result["answer"] or json.dumps(result["pending"], indent=2, ensure_ascii=False)
    console.print(Panel(body, title=head, subtitle=" → ".join(result["route"])))
    if result["flags"]:
        console.print(f"flags: {', '.join(result['flags'])}")
    if result["pending"]:
        console.print(
            f"thread {result['thread_id']} waits: python app.py resume {result['thread_id']} --approve | --reject"
        )


# ---------------------------------------------------------------- commands


def cmd_ask(settings: Settings, a: argparse.Namespace) -> int:
    validate_text(a.text, settings)  # bad input costs no token
    take_token(settings, validate_id(a.user, "user"), validate_id(a.tenant, "tenant"))
    print_result(ask(settings, a.text, user=a.user, thread=a.thread, tenant=a.tenant), a.json)
    return 0


def cmd_resume(settings: Settings, a: argparse.Namespace) -> int:
    validate_id(a.thread, "thread id")
    take_token(settings, validate_id(a.approver or a.user, "approver"), validate_id(a.tenant, "tenant"))
    print_result(resume(settings, a.thread, a), a.json)
    return 0


def cmd_chat(settings: Settings, a: argparse.Namespace) -> int:
    thread = a.thread or str(uuid.uuid4())
    print(f"Switchboard chat · user {a.user} · thread {thread} · empty line or Ctrl-D to quit")
    with open_switchboard(settings) as board:
        return _chat_loop(settings, board, thread, a)


def _chat_loop(settings: Settings, board: Switchboard, thread: str, a: argparse.Namespace) -> int:
    while True:
        try:
            text = input("you> ").strip()
        except EOFError:
            break
        if not text:
            break
        try:
            take_token(settings, a.user, a.tenant)
            result = ask(settings, text, user=a.user, thread=thread, tenant=a.tenant, channel="chat", board=board)
            while result["pending"]:
                result = _answer_at_prompt(settings, board, thread, result, a)
        except UsageError as exc:
            print(f"error: {exc}")
            continue
        except Exception as exc:
            from auth.ratelimit import RateLimited

            if not isinstance(exc, RateLimited):
                raise
            print(f"bot> {exc}")
            continue
        print(f"bot> {result['answer']}")
        print(f"     [{result['status']} · {result['intent']} {result['confidence']} · {' → '.join(result['route'])}]")
    return 0


def _answer_at_prompt(
    settings: Settings, board: Switchboard, thread: str, result: dict[str, Any], a: argparse.Namespace
) -> dict[str, Any]:
    pending = result["pending"]
    print(f"[{result['status']}] {pending.get('description', '')}")
    if result["status"] == "escalated":
        reply = input("human reply (empty: follow up later)> ").strip()
        ns = argparse.Namespace(
            approve=False, reject=not reply, reason=None, respond=reply or None, edit=None, user=a.user, tenant=a.tenant
        )
    else:
        choice = input("approve? [y]es / [n]o / [e]dit> ").strip().lower()
        if choice.startswith("e"):
            edit = input(
                "new arguments as JSON> " if result["status"] == "awaiting_approval" else "new text (JSON string)> "
            )
            ns = argparse.Namespace(
                approve=False, reject=False, reason=None, respond=None, edit=edit, user=a.user, tenant=a.tenant
            )
        else:
            ns = argparse.Namespace(
                approve=choice.startswith("y"),
                reject=not choice.startswith("y"),
                reason=None,
                respond=None,
                edit=None,
                user=a.user,
                tenant=a.tenant,
            )
    return resume(settings, thread, ns, board=board)


def cmd_seed(settings: Settings, a: argparse.Namespace) -> int:
    from graphs.services import seed
    from guards.cli import DEEPSET_TRAIN

    guard_data = None if a.guard_data == "none" else Path(a.guard_data) if a.guard_data else DEEPSET_TRAIN
    if guard_data is not None and not guard_data.is_file():
        if a.guard_data:
            raise UsageError(f"no such file: {guard_data}")
        guard_data = None  # no shared data here: the built-in screen
    counts = seed(settings, reset=a.reset, guard_data=guard_data)
    print(json.dumps(counts, default=str, indent=None if a.json else 2))
    return 0


def cmd_ingest(settings: Settings, a: argparse.Namespace) -> int:
    from memory.embeddings import get_embedder
    from memory.ingest import ingest_path
    from memory.knowledge import ChromaMemory

    path = Path(a.path)
    if not path.exists():
        raise UsageError(f"no such file or directory: {path}")
    from guards.injection import get_guard

    embedder = get_embedder(settings.embedder_cache)
    memory = ChromaMemory.open(settings.knowledge_target, embedder)
    report = ingest_path(path, memory, progress=not a.json, guard=get_guard(settings.data_dir, embedder=embedder))
    data = report.model_dump() if hasattr(report, "model_dump") else vars(report)
    print(json.dumps(data, default=str) if a.json else "\n".join(f"{k}: {v}" for k, v in data.items()))
    return 1 if data.get("errors") and not data.get("documents") else 0


def cmd_memory(settings: Settings, a: argparse.Namespace) -> int:
    """A thread's task (the dialogue state in its checkpoint) and working memory; a customer's memory in the store
    (--user: preferences and cross-thread working memory); or the threads with memory."""
    if a.user:
        return _user_memory(settings, a)
    from memory.working import WorkingMemory

    target = settings.working_target
    exists = "://" in target or Path(target).exists()
    wm = WorkingMemory(target, ttl_seconds=settings.policy().working_memory.ttl_seconds) if exists else None
    if not a.thread:
        print(json.dumps({"threads": wm.list_threads() if wm else []}, default=str, indent=None if a.json else 2))
        return 0
    validate_id(a.thread, "thread id")
    if not thread_exists(settings, a.thread):
        raise UsageError(f"unknown thread {a.thread!r}")
    from memory.checkpointer import open_checkpointer
    from memory.serde import checkpoint_serde

    with open_checkpointer(settings.checkpoint_target, serde=checkpoint_serde(settings)) as saver:
        saved = saver.get_tuple({"configurable": {"thread_id": a.thread}})
    values = saved.checkpoint.get("channel_values", {}) if saved else {}
    data = {"thread_id": a.thread, "task": values.get("task") or {}, "state": wm.all(a.thread) if wm else {}}
    print(json.dumps(data, default=str, indent=None if a.json else 2))
    return 0


def _user_memory(settings: Settings, a: argparse.Namespace) -> int:
    from graphs.context import Context
    from memory.user_store import load_preferences, load_working, open_store, store_exists

    ctx = Context(user_id=validate_id(a.user, "user"), tenant_id=validate_id(a.tenant, "tenant"))
    data: dict[str, Any] = {"tenant_id": ctx.tenant_id, "user_id": ctx.user_id, "preferences": {}, "working": {}}
    if store_exists(settings.store_target):  # reading creates nothing
        with open_store(settings.store_target) as store:
            data.update(preferences=load_preferences(store, ctx), working=load_working(store, ctx))
    print(json.dumps(data, default=str, indent=None if a.json else 2))
    return 0


def cmd_lessons(settings: Settings, a: argparse.Namespace) -> int:
    """Lessons wait for a reviewer; an approved one becomes a knowledge-base article of its tenant."""
    from memory.lessons import LessonQueue, as_dict

    queue = LessonQueue(settings.lessons_target)
    if a.action == "list":
        rows = queue.list(tenant_id=a.tenant, status=None if a.status == "all" else a.status)
        if a.json:
            print(json.dumps([as_dict(r) for r in rows], default=str))
        else:
            for r in rows:
                print(f"{r.id:>4} [{r.status}] {r.tenant_id} {r.intent}: {r.fix[:100]}")
            print(f"{len(rows)} lesson(s)")
        return 0
    if a.lesson_id is None:
        raise UsageError(f"lessons {a.action} needs a lesson id (see 'python app.py lessons list')")
    knowledge = guard = None
    if a.action == "approve":
        from graphs.services import build_services
        from guards.injection import guard_for

        services = build_services(settings)
        knowledge, guard = services.knowledge, guard_for(services)
    try:
        lesson = queue.review(a.lesson_id, "approved" if a.action == "approve" else "rejected", knowledge=knowledge,
                              guard=guard)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    print(json.dumps(as_dict(lesson), default=str) if a.json else f"lesson {lesson.id} {lesson.status}")
    return 0


def cmd_demo(settings: Settings, a: argparse.Namespace) -> int:
    from demo.scenarios import run_demo

    with open_switchboard(settings) as board:
        return run_demo(
            settings,
            ask=functools.partial(ask, board=board),
            resume=functools.partial(resume, board=board),
        )


def delegate(module: str, func: str, argv: list[str]) -> int:
    import importlib

    return int(getattr(importlib.import_module(module), func)(argv) or 0)


# ---------------------------------------------------------------- parser


def decision_arguments(s: argparse.ArgumentParser) -> None:
    """The human's decision on a waiting thread (`resume`, `inbox resolve`): one of approve, reject, edit, respond."""
    g = s.add_mutually_exclusive_group()
    g.add_argument("--approve", action="store_true")
    g.add_argument("--reject", action="store_true")
    g.add_argument("--edit", metavar="JSON", help='approval: new tool arguments; review: {"draft": "..."}')
    g.add_argument("--respond", metavar="TEXT", help="escalation: the human's reply to the customer")
    s.add_argument("--reason", help="with --reject: why (told to the customer)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="app.py", description="Switchboard: multi-agent customer support on LangGraph.")
    sub = p.add_subparsers(dest="command", required=True)

    def identity(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--user", default="demo", help="customer id (default: demo)")
        sp.add_argument("--tenant", default="default", help="tenant id (default: default)")

    s = sub.add_parser("ask", help="run one ticket through the graph")
    s.add_argument("text")
    identity(s)
    s.add_argument("--thread", help="continue this conversation thread")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_ask)

    s = sub.add_parser(
        "resume",
        help="answer a thread waiting for approval, review or a human; with no decision, continue a crashed run",
        description="Answer a thread waiting for approval, review or a human. With no decision, continue an "
        "interrupted or crashed run from its last checkpoint.",
    )
    s.add_argument("thread")
    decision_arguments(s)
    identity(s)
    s.add_argument("--as", dest="approver", default="operator", help="who answers, recorded as approver_id")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_resume)

    s = sub.add_parser("chat", help="interactive session; approvals are asked at the prompt")
    identity(s)
    s.add_argument("--thread")
    s.set_defaults(func=cmd_chat)

    s = sub.add_parser("seed", help="seed the demo shop, knowledge base, intent classifier and injection screen")
    s.add_argument("--reset", action="store_true", help="rebuild from scratch")
    s.add_argument("--guard-data", metavar="FILE|none",
                   help="labelled set the injection screen also trains on (default: the deepset train split under "
                   "../shared/data when present; none: the project's examples only)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_seed)

    s = sub.add_parser("ingest", help="add markdown/text/JSONL documents to the knowledge base")
    s.add_argument("path")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("memory", help="inspect working memory (--thread) or a customer's memory (--user)")
    s.add_argument("--thread")
    s.add_argument("--user", help="the customer whose preferences and cross-thread working memory to show")
    s.add_argument("--tenant", default="default")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_memory)

    s = sub.add_parser("demo", help="run the sample tickets")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("lessons", help="review lessons learned from human answers (list | approve ID | reject ID)")
    s.add_argument("action", choices=("list", "approve", "reject"))
    s.add_argument("lesson_id", nargs="?", type=int)
    s.add_argument("--tenant", default=None)
    s.add_argument("--status", default="pending", choices=("pending", "approved", "rejected", "all"))
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_lessons)

    for name, help_ in (
        ("train-intents", "train an intent classifier on labelled data"),
        ("eval", "run evaluations (eval intents ...)"),
        ("bench", "run benchmarks (bench memory ...)"),
        ("apikey", "API keys for the served API (apikey create | list | revoke)"),
        ("health", "health checks and circuit breakers of models and tools (health [--json])"),
        ("train-guard", "retrain the prompt-injection screen on a labelled set (--data FILE)"),
        ("audit", "query the audit log (audit [--thread ID] [--user ID] [--json])"),
        ("inbox", "threads waiting for a human (inbox [--tenant T]; inbox resolve THREAD --approve | ...)"),
        ("decisions", "the decision log: decisions --trace ID | --search TEXT [--json]"),
    ):
        s = sub.add_parser(name, help=help_, add_help=False)
        s.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from observability.tracing import configure_langsmith, install_log_context, log_formatter

    install_log_context()  # every log line carries the ticket's trace_id and node
    configure_langsmith()  # LangSmith traces only when its key is set; silent otherwise
    handler = logging.StreamHandler()
    handler.setFormatter(log_formatter())
    try:
        level = log_level() or "WARNING"
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=level, handlers=[handler])
    if argv and argv[0] == "train-intents":
        return delegate("classifier.cli", "train_main", argv[1:])
    if argv and argv[0] == "eval":
        return delegate("evals.cli", "eval_main", argv[1:])
    if argv and argv[0] == "bench":
        return delegate("bench.cli", "bench_main", argv[1:])
    if argv and argv[0] == "apikey":
        return delegate("auth.cli", "apikey_main", argv[1:])
    if argv and argv[0] == "health":
        return delegate("observability.health_cli", "health_main", argv[1:])
    if argv and argv[0] == "train-guard":
        return delegate("guards.cli", "train_main", argv[1:])
    if argv and argv[0] == "audit":
        return delegate("auth.audit_cli", "audit_main", argv[1:])
    if argv and argv[0] == "inbox":
        return delegate("inbox.cli", "inbox_main", argv[1:])
    if argv and argv[0] == "decisions":
        return delegate("observability.cli", "decisions_main", argv[1:])
    args = build_parser().parse_args(argv)
    return run_command(args)


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command with the CLI's exit-status contract (shared by subcommand families, e.g. inbox)."""
    from auth.ratelimit import EXIT_RATE_LIMITED, RateLimited

    try:
        return int(args.func(Settings.from_env(), args) or 0)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RateLimited as exc:  # a status, not an error: the caller waits and tries again
        if getattr(args, "json", False):
            print(json.dumps(exc.as_dict()))
        print(str(exc), file=sys.stderr)
        return EXIT_RATE_LIMITED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 141
    except Exception as exc:  # noqa: BLE001 - one clear line for users; the trace at debug level
        logging.getLogger("switchboard").debug("unhandled error", exc_info=True)
        print(
            f"error: {type(exc).__name__}: {exc} (SWITCHBOARD_LOG_LEVEL=DEBUG shows the trace; "
            "python app.py resume THREAD continues an interrupted run from its last checkpoint)",
            file=sys.stderr,
        )
        return 1
    finally:
        from observability.tracing import flush_telemetry

        flush_telemetry()  # spans still batched, alert webhooks still in flight


if __name__ == "__main__":
    sys.exit(main())
