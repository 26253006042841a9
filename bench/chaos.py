"""Chaos benchmark: processes killed, models failing, tools breaking; count what was lost, doubled or left hanging.

    python app.py bench chaos --json [--quick] [--seed N]      # bench/reports/chaos.json (chaos-quick.json)

**Part 1, kill -9** (this module). A driver runs a fixed mix of tickets (lookups, cancellations, refunds edited to
EUR 1.00 at approval) one at a time through a worker subprocess that serves them with the CLI's own code
(`graphs.tickets.ask` / `resume`: per-thread lease, durability "sync", `resume THREAD` continuing a crashed run).
It runs the mix once cleanly, then again while SIGKILLing the worker at planned points:

- `random`: a random moment while a command runs (or right after it answered);
- `awaiting_approval`: while a ticket waits for its approver;
- `in_write`: inside a write tool's transaction, after the change and before the commit;
- `after_commit`: after the write tool committed, before the step's checkpoint is written.

After each kill it starts a new worker and recovers the ticket from what the checkpoint says (a ticket with no
checkpoint is sent again, an approval still waiting is approved, a half-run is continued with `resume THREAD`).
At the end every ticket's thread is inspected and the shop is audited:

- `tickets_lost`: a ticket whose thread is missing, unfinished, or no longer holds the customer's message;
- `duplicate_effects`: refunds beyond one per completed refund ticket, cancellations of one order more than once,
  and any idempotency key with more than one committed write; `missing_effects`: a confirmed write with no effect;
- `final_states_equal_clean_run`: every ticket's final state (`final_state`: status, intent, decision, answer,
  action and result) and the shop's effects (`shop_state`) equal the clean run's;
- `ended_ok_ratio`: share of tickets that ended `completed`, not lost, as in the clean run; `p95_ms`: 95th
  percentile of the worker's command latency (ask / approve / continue) over commands that were not killed
  (`warm_p95_ms` leaves out the first run of each fresh process, which pays its lazy loading).

The worker reads the seeded data directory of the settings (knowledge base, classifier, models) and writes only to
a fresh temporary directory (shop, checkpoints, working memory, audit, lessons).

**Part 2, model faults** (`bench.chaos_models`): 200 tickets while the real ChatOpenAI client meets 30 % faults from
`bench.fault_server`. **Part 3, tool faults** (`bench.chaos_tools`): tools that raise or return malformed data.

The report's top level holds the headline figures, each part's own report sits under `parts`:
`kill_trials`, `tickets_lost`, `duplicate_effects`, `final_states_equal_clean_run` (part 1); `fault_rate`,
`breaker_opened`, `breaker_trials_in_half_open`, `p95_ms` (ticket latency under model faults) and `ticket_budget_s`
(part 2); `tool_faults_ended_ok_ratio`, `tool_crashes` (part 3); `tickets` (all parts) and `ended_ok_ratio` (share of
all tickets that ended as each part requires: part 1 as in the clean run, parts 2 and 3 in an answer or with a human).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
KILL_POINTS = ("random", "awaiting_approval", "in_write", "after_commit")
READS = [("demo", "How long does delivery take?"), ("demo", "Where is my order 1006?")]
CANCELS = [("demo", 1008), ("demo", 1009), ("demo", 1010), ("alice", 1013), ("bob", 1015)]
REFUNDS = [("demo", 1004), ("chen", 1017), ("alice", 1011)]


@dataclass
class Ticket:
    n: int
    user: str
    text: str
    kind: str  # read | cancel | refund
    order: int | None = None
    thread: str = field(default_factory=lambda: str(uuid.uuid4()))
    phase: str = "new"  # new | awaiting_approval | awaiting_review | escalated | continue | done
    final: dict[str, Any] = field(default_factory=dict)


def ticket_mix(n: int) -> list[Ticket]:
    """`n` tickets: about a third lookups, every cancellation once, the rest EUR 1.00 refunds."""
    out: list[Ticket] = []
    cancels = list(CANCELS)[: max(1, n // 3)]
    for i in range(n):
        if i % 3 == 1 and cancels:
            user, order = cancels.pop(0)
            out.append(Ticket(i, user, f"Please cancel order {order}, I ordered the wrong thing.", "cancel", order))
        elif i % 3 == 2:
            user, order = REFUNDS[(i // 3) % len(REFUNDS)]
            out.append(Ticket(i, user, f"I want my money back for order {order}.", "refund", order))
        else:
            user, text = READS[(i // 3) % len(READS)]
            out.append(Ticket(i, user, text, "read"))
    return out


# ------------------------------------------------------------------ worker (the process that is killed)


def worker_main(chaos_dir: Path) -> int:
    """Serve JSON-line commands on stdin with the CLI's own code; see the module docstring."""
    import dataclasses

    sys.path.insert(0, str(REPO))
    import nodes.execute_action
    from config.settings import Settings
    from graphs import tickets as service
    from graphs.services import build_services
    from graphs.supervisor import build_supervisor
    from memory.checkpointer import open_checkpointer
    from memory.lessons import LessonQueue
    from memory.working import WorkingMemory
    from tools.shop import TOOLS, ShopDB

    armed: dict[str, str | None] = {"at": None}

    def pause(point: str) -> None:
        if armed["at"] == point:
            armed["at"] = None
            print(json.dumps({"event": "paused", "at": point}), flush=True)
            signal.pause()  # the driver's SIGKILL ends the process here

    for name, spec in list(TOOLS.items()):
        if spec.is_write:

            def in_write(ctx: Any, args: Any, _fn: Any = spec.fn) -> Any:
                out = _fn(ctx, args)
                pause("in_write")  # the change is made, the transaction not committed
                return out

            TOOLS[name] = dataclasses.replace(spec, fn=in_write)
    real_run_tool = nodes.execute_action.run_tool

    def after_commit(*args: Any, **kwargs: Any) -> Any:
        out = real_run_tool(*args, **kwargs)
        pause("after_commit")  # committed; execute_action's checkpoint not yet written
        return out

    nodes.execute_action.run_tool = after_commit

    base = Settings.from_env()
    settings = base.model_copy(update={"checkpointer_url": str(chaos_dir / "checkpoints.sqlite")})
    services = dataclasses.replace(
        build_services(base),
        settings=settings,
        shop=ShopDB(chaos_dir / "shop.sqlite"),
        working=WorkingMemory(chaos_dir / "working.sqlite"),
        lessons=LessonQueue(chaos_dir / "lessons.sqlite"),
    )
    with open_checkpointer(settings.checkpoint_target) as saver:
        board = service.Switchboard(build_supervisor(services).compile(checkpointer=saver), services)
        print(json.dumps({"event": "ready", "pid": os.getpid()}), flush=True)
        for line in sys.stdin:
            cmd = json.loads(line)
            armed["at"] = cmd.get("pause_at")
            started = time.perf_counter()
            try:
                reply: dict[str, Any] = {"result": _serve(service, settings, board, cmd)}
            except service.UsageError as exc:
                reply = {"error": str(exc)}
            reply["ms"] = round((time.perf_counter() - started) * 1000, 1)
            print(json.dumps(reply, default=str), flush=True)
    return 0


def _serve(service: Any, settings: Any, board: Any, cmd: dict[str, Any]) -> dict[str, Any]:
    op, thread, user = cmd["op"], cmd["thread"], cmd["user"]
    if op == "ask":
        return service.ask(settings, cmd["text"], user=user, thread=thread, board=board)
    if op == "status":
        snap = board.graph.get_state(board.config(thread))
        node, _ = service.pending_of(snap)
        values = snap.values or {}
        texts = [str(m.content) for m in values.get("messages", []) if getattr(m, "type", "") == "human"]
        return {
            "exists": bool(values),
            "waiting": node,
            "next": list(snap.next),
            "status": values.get("status"),
            "has_text": cmd.get("text") in texts,
            "action_ok": (values.get("action_result") or {}).get("ok"),
            "tool": (values.get("action") or {}).get("tool"),
            "final": final_state(values),
        }
    decision: dict[str, Any] = {"approve": False, "reject": False, "edit": None, "respond": None, "reason": None}
    if op == "approve":
        decision.update(edit=json.dumps(cmd["edit"])) if cmd.get("edit") else decision.update(approve=True)
    elif op == "accept_review":
        decision.update(approve=True)
    elif op == "respond":
        decision.update(respond="A colleague has looked at this and will follow up.")
    elif op != "continue":
        raise ValueError(f"unknown op {op!r}")
    args = argparse.Namespace(**decision, user=user, tenant="default", approver="chaos")
    return service.resume(settings, thread, args, board=board)


# ------------------------------------------------------------------ driver


class Worker:
    def __init__(self, chaos_dir: Path, env: dict[str, str], log: Any) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.chaos", "worker", str(chaos_dir)],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.served = 0
        threading.Thread(target=self._read, daemon=True).start()
        ready = self.next(timeout=120)
        if not ready or ready.get("event") != "ready":
            raise RuntimeError(f"chaos worker did not start: {ready}")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def next(self, timeout: float) -> dict[str, Any] | None:
        return self.lines.get(timeout=timeout)

    def send(self, cmd: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def call(self, cmd: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        self.send(cmd)
        reply = self.next(timeout)
        if reply is None:
            raise RuntimeError("chaos worker died")
        return reply

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()  # reaped: its lease's pid is gone, so the next worker takes the lease over at once

    def stop(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def final_state(values: dict[str, Any]) -> dict[str, Any]:
    """What a ticket ended with, as compared with a clean run: status, intent, decision, the answer sent, the
    action and its result (without `replayed`, which says how the result was obtained, not what it is)."""
    result = dict(values.get("action_result") or {})
    data = {k: v for k, v in (result.get("data") or {}).items() if k != "replayed"}
    action = values.get("action") or {}
    return {
        "status": values.get("status"),
        "intent": values.get("intent"),
        "decision": values.get("decision"),
        "answer": values.get("answer"),
        "action": {"tool": action.get("tool"), "args": action.get("args")} if action else None,
        "result": {"ok": result.get("ok"), "error": result.get("error"), "data": data} if result else None,
    }


def shop_state(path: Path) -> dict[str, Any]:
    """The shop's final effects, without timestamps: order statuses, refunds, ledger entries."""
    conn = sqlite3.connect(path)
    try:
        return {
            "orders": conn.execute("SELECT id, status FROM orders ORDER BY id").fetchall(),
            "refunds": conn.execute("SELECT order_id, amount_cents, status FROM refunds ORDER BY id").fetchall(),
            "ledger": conn.execute("SELECT tool, args_json FROM action_ledger ORDER BY tool, args_json").fetchall(),
        }
    finally:
        conn.close()


def run_kills(
    *, quick: bool = False, seed: int = 0, tickets: int | None = None, kills: int | None = None
) -> dict[str, Any]:
    """Part 1: the ticket mix run cleanly, then again with kill -9 at planned points; see the module docstring."""
    from config.settings import Settings
    from graphs.services import seed as seed_demo

    settings = Settings.from_env()
    if not (settings.data_dir / "shop.sqlite").exists() or not (settings.intent_model_dir / "manifest.json").exists():
        seed_demo(settings)  # once, as build_services would; the workers then only read it
    rng = random.Random(seed)
    n_tickets = tickets or (8 if quick else 50)
    n_kills = kills if kills is not None else (4 if quick else 24)
    plan = [KILL_POINTS[i % len(KILL_POINTS)] for i in range(n_kills)]
    rng.shuffle(plan)
    started = time.perf_counter()
    clean = _drive(ticket_mix(n_tickets), [], random.Random(seed))
    chaos = _drive(ticket_mix(n_tickets), plan, rng)
    mismatches = [
        t.n for t, c in zip(chaos["mix"], clean["mix"], strict=True) if t.final.get("final") != c.final.get("final")
    ]
    shop_equal = chaos["shop"] == clean["shop"]
    mix, stats, audit = chaos["mix"], chaos["stats"], chaos["audit"]
    lost = [t.n for t in mix if not (t.final.get("exists") and t.final.get("has_text") and not t.final.get("next")
                                     and not t.final.get("waiting"))]
    lat, warm = sorted(stats["latencies"]), sorted(stats["warm"])
    return {
        "tickets": len(mix),
        "kill_trials": sum(stats["kills"].values()),
        "kills_by_point": stats["kills"],
        "tickets_lost": len(lost),
        "lost_tickets": lost,
        "duplicate_effects": audit["duplicate_effects"],
        "missing_effects": audit["missing_effects"],
        "replayed_writes": audit["replayed"],
        "writes_committed": audit["committed"],
        "final_states_equal_clean_run": not mismatches and shop_equal,
        "tickets_differing_from_clean_run": mismatches,
        "shop_equal_clean_run": shop_equal,
        "ended_ok_ratio": round(sum(t.final.get("status") == "completed" and t.n not in lost and t.n not in mismatches
                                    for t in mix) / len(mix), 3),
        "statuses": {s: sum(t.final.get("status") == s for t in mix) for s in {t.final.get("status") for t in mix}},
        "resubmitted": stats["resubmitted"],
        "restarts": stats["restarts"],
        "restart_s_mean": round(sum(stats["restart_s"]) / max(1, len(stats["restart_s"])), 2),
        "p95_ms": lat[int(0.95 * (len(lat) - 1))] if lat else None,
        "p50_ms": lat[len(lat) // 2] if lat else None,
        "warm_p95_ms": warm[int(0.95 * (len(warm) - 1))] if warm else None,
        "slowest": [{"ms": ms, "op": op, "kind": kind, "nth_in_process": nth + 1}
                    for ms, op, kind, nth in sorted(stats["ops"], reverse=True)[:3]],
        "seed": seed,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def _drive(mix: list[Ticket], plan: list[str], rng: random.Random) -> dict[str, Any]:
    """Run `mix` through worker processes, killing one at each point of `plan` (none: the clean run)."""
    with tempfile.TemporaryDirectory(prefix="switchboard-chaos-") as tmp:
        chaos_dir = Path(tmp)
        from tools.shop import ShopDB

        with ShopDB(chaos_dir / "shop.sqlite") as db:
            db.seed()
        env = {**os.environ, "PYTHONPATH": str(REPO), "SWITCHBOARD_LOG_LEVEL": "ERROR"}
        log = (chaos_dir / "worker.log").open("w")
        stats: dict[str, Any] = {"kills": dict.fromkeys(KILL_POINTS, 0), "resubmitted": 0, "continued": 0,
                                 "restarts": 0, "latencies": [], "warm": [], "restart_s": [],
                                 "ops": []}
        box = {"worker": Worker(chaos_dir, env, log)}

        def restart() -> None:
            t0 = time.perf_counter()
            box["worker"] = Worker(chaos_dir, env, log)
            stats["restarts"] += 1
            stats["restart_s"].append(time.perf_counter() - t0)

        def killed(point: str, ticket: Ticket) -> None:
            box["worker"].kill()
            stats["kills"][point] += 1
            plan.remove(point)
            restart()
            recover(ticket)

        def recover(ticket: Ticket) -> None:
            st = box["worker"].call({"op": "status", "thread": ticket.thread, "user": ticket.user,
                                     "text": ticket.text})["result"]
            if not st["exists"]:
                ticket.phase = "new"
                stats["resubmitted"] += 1
            elif st["waiting"]:
                ticket.phase = {"request_approval": "awaiting_approval", "review_gate": "awaiting_review",
                                "escalate": "escalated"}[st["waiting"]]
            elif st["next"]:
                ticket.phase = "continue"
            else:
                ticket.phase = "done"

        def command(ticket: Ticket) -> dict[str, Any]:
            base = {"thread": ticket.thread, "user": ticket.user}
            by_phase: dict[str, dict[str, Any]] = {
                "new": {**base, "op": "ask", "text": ticket.text},
                "awaiting_approval": {**base, "op": "approve", "edit": {"amount": 1.0} if ticket.kind == "refund"
                                      else None},
                "awaiting_review": {**base, "op": "accept_review"},
                "escalated": {**base, "op": "respond"},
                "continue": {**base, "op": "continue"},
            }
            return by_phase[ticket.phase]

        def commands_left() -> int:
            return sum(1 if t.kind == "read" else 2 for t in mix if t.phase != "done")

        def applies(point: str, ticket: Ticket, cmd: dict[str, Any]) -> bool:
            if point == "awaiting_approval":
                return ticket.phase == "awaiting_approval"
            if point in ("in_write", "after_commit"):
                return cmd["op"] == "approve" and ticket.kind != "read"
            return True

        for ticket in mix:
            for _ in range(20):
                if ticket.phase == "done":
                    break
                cmd = command(ticket)
                fits = sorted({p for p in plan if applies(p, ticket, cmd)})
                chance = len(plan) / max(1, commands_left())
                point = rng.choice(fits) if fits and rng.random() < 3 * chance else None
                if point == "awaiting_approval" and ticket.phase == "awaiting_approval":
                    killed(point, ticket)
                    continue
                if point in ("in_write", "after_commit") and cmd["op"] == "approve" and ticket.kind != "read":
                    box["worker"].send({**cmd, "pause_at": point})
                    reply = box["worker"].next(120)
                    if reply and reply.get("event") == "paused":
                        killed(point, ticket)
                        continue
                elif point == "random":
                    box["worker"].send(cmd)
                    try:
                        reply = box["worker"].next(rng.uniform(0.0, 0.15))
                    except queue.Empty:
                        reply = None
                    killed(point, ticket)
                    continue
                else:
                    reply = box["worker"].call(cmd)
                if reply is None or "error" in reply:
                    recover(ticket)  # e.g. "not waiting": take the state from the checkpoint
                    continue
                stats["latencies"].append(reply["ms"])
                stats["ops"].append((reply["ms"], cmd["op"], ticket.kind, box["worker"].served))
                if box["worker"].served:  # the first run in a fresh process pays its lazy loading
                    stats["warm"].append(reply["ms"])
                box["worker"].served += 1
                status = reply["result"]["status"]
                ticket.phase = status if status in ("awaiting_approval", "awaiting_review", "escalated") else "done"
        for ticket in mix:
            ticket.final = box["worker"].call({"op": "status", "thread": ticket.thread, "user": ticket.user,
                                               "text": ticket.text})["result"]
        box["worker"].stop()
        log.close()
        audit = audit_shop(chaos_dir / "shop.sqlite", mix)
        shop = shop_state(chaos_dir / "shop.sqlite")
    return {"mix": mix, "stats": stats, "audit": audit, "shop": shop}


def audit_shop(path: Path, mix: list[Ticket]) -> dict[str, int]:
    """Effects in the shop against what the tickets' threads say was done."""
    conn = sqlite3.connect(path)
    try:
        dup = missing = 0
        for order in {t.order for t in mix if t.kind == "refund"}:
            done = sum(t.kind == "refund" and t.order == order and t.final.get("action_ok") is True for t in mix)
            rows = conn.execute(
                "SELECT count(*) FROM audit_log WHERE tool = 'issue_refund' AND outcome LIKE 'ok:%' "
                "AND json_extract(args_json, '$.order_id') = ?",
                (order,),
            ).fetchone()[0]
            refunds = conn.execute(
                "SELECT count(*) FROM refunds WHERE order_id = ? AND amount_cents = 100", (order,)
            ).fetchone()[0]
            dup += max(0, refunds - done) + max(0, rows - refunds)
            missing += max(0, done - refunds)
        for order in {t.order for t in mix if t.kind == "cancel"}:
            done = any(t.kind == "cancel" and t.order == order and t.final.get("action_ok") is True for t in mix)
            oks = conn.execute(
                "SELECT count(*) FROM audit_log WHERE tool = 'cancel_order' AND outcome LIKE 'ok:%' "
                "AND json_extract(args_json, '$.order_id') = ?",
                (order,),
            ).fetchone()[0]
            status = conn.execute("SELECT status FROM orders WHERE id = ?", (order,)).fetchone()[0]
            dup += max(0, oks - 1)
            missing += int(done and status != "cancelled")
        per_key = conn.execute(
            "SELECT count(*) FROM (SELECT outcome FROM audit_log WHERE outcome LIKE 'ok: %' "
            "GROUP BY outcome HAVING count(*) > 1)"
        ).fetchone()[0]
        replayed = conn.execute("SELECT count(*) FROM audit_log WHERE outcome LIKE 'replayed:%'").fetchone()[0]
        committed = conn.execute("SELECT count(*) FROM action_ledger").fetchone()[0]
        return {"duplicate_effects": dup + per_key, "missing_effects": missing, "replayed": replayed,
                "committed": committed}
    finally:
        conn.close()


def run(
    *,
    quick: bool = False,
    seed: int = 0,
    tickets: int | None = None,
    kills: int | None = None,
    fault_tickets: int | None = None,
) -> dict[str, Any]:
    """The three parts and the headline figures (see the module docstring)."""
    kill = run_kills(quick=quick, seed=seed, tickets=tickets, kills=kills)
    models, tools = run_in_process(quick=quick, seed=seed, fault_tickets=fault_tickets)
    parts = {"kill": kill, "model_faults": models, "tool_faults": tools}
    total = sum(p["tickets"] for p in parts.values())
    ok = sum(round(p["ended_ok_ratio"] * p["tickets"]) for p in parts.values())
    return {
        "kill_trials": kill["kill_trials"],
        "tickets_lost": kill["tickets_lost"],
        "duplicate_effects": kill["duplicate_effects"],
        "final_states_equal_clean_run": kill["final_states_equal_clean_run"],
        "fault_rate": models["fault_rate"],
        "tickets": total,
        "ended_ok_ratio": round(ok / total, 3),
        "breaker_opened": models["breaker_opened"],
        "breaker_trials_in_half_open": models["breaker_trials_in_half_open"],
        "p95_ms": models["p95_ms"],
        "ticket_budget_s": models["ticket_budget_s"],
        "tool_faults_ended_ok_ratio": tools["ended_ok_ratio"],
        "tool_crashes": len(tools["crashes"]),
        "quick": quick,
        "seed": seed,
        "parts": parts,
        "wall_s": round(kill["wall_s"] + models["wall_s"] + models["warmup_s"] + tools["wall_s"], 1),
    }


def run_in_process(
    *, quick: bool = False, seed: int = 0, fault_tickets: int | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parts 2 and 3 in this process, on one set of services (read from the settings' seeded data directory) with a
    fresh shop, working memory, audit log and lessons each, in a temporary directory."""
    import dataclasses

    from bench.chaos_models import run_model_faults
    from bench.chaos_tools import run_tool_faults
    from config.settings import Settings, log_level
    from graphs.services import build_services
    from memory.lessons import LessonQueue
    from memory.working import WorkingMemory
    from tools.shop import ShopDB

    settings = Settings.from_env()
    services = build_services(settings)
    quiet = logging.getLogger("switchboard")  # every injected fault logs a warning: expected here, so only errors
    level = quiet.level
    if log_level() is None:  # the operator chose no level
        quiet.setLevel(logging.ERROR)

    def fresh(work: Path) -> Any:
        shop = ShopDB(work / "shop.sqlite")
        shop.seed()
        return dataclasses.replace(
            services, shop=shop, working=WorkingMemory(work / "working.sqlite"),
            lessons=LessonQueue(work / "lessons.sqlite"),
        )

    with tempfile.TemporaryDirectory(prefix="switchboard-chaos-") as tmp:
        work = Path(tmp)
        (work / "models").mkdir()
        (work / "tools").mkdir()
        n = fault_tickets or (40 if quick else 200)
        try:
            models = run_model_faults(fresh(work / "models"), settings, work / "models", tickets=n, seed=seed)
            tools = run_tool_faults(fresh(work / "tools"), settings, work / "tools")
        finally:
            quiet.setLevel(level)
    return models, tools


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["worker"]:
        return worker_main(Path(argv[1]))
    parser = argparse.ArgumentParser(prog="app.py bench chaos")
    parser.add_argument("--quick", action="store_true", help="8 tickets / 4 kills, 40 model-fault tickets (< 60 s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tickets", type=int, help="tickets of the kill part (default 50, quick 8)")
    parser.add_argument("--kills", type=int, help="kill -9 trials (default 24, quick 4)")
    parser.add_argument("--fault-tickets", type=int, help="tickets of the model-fault part (default 200, quick 40)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = run(quick=args.quick, seed=args.seed, tickets=args.tickets, kills=args.kills,
                 fault_tickets=args.fault_tickets)
    print(json.dumps(report) if args.json else "\n".join(f"{k:28} {v}" for k, v in report.items() if k != "parts"))
    out = Path(__file__).with_name("reports")
    out.mkdir(exist_ok=True)
    (out / ("chaos-quick.json" if args.quick else "chaos.json")).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
