"""Issue 9, durability: per-thread leases, `resume THREAD` continuing a crashed run, and idempotent replay of a write
whose checkpoint was lost (the crash falls after the tool committed and before the step's checkpoint)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.types import Command

import app
import nodes.execute_action
import nodes.supervisor
from config.settings import Settings
from graphs import tickets
from graphs.context import Context
from memory.locks import HOST, Lease, ThreadBusy, hold, open_leases
from tests.test_cli import cli, data_dir  # noqa: F401 - fixtures
from tests.test_graph import TICKETS, waiting_on

CANCEL = TICKETS["cancel_order"]


class Crash(BaseException):
    """A process dying mid-step: not an Exception, so no node, retry policy or failure counter catches it."""


def crash_after_commit(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """execute_action's tool runs and commits, then the 'process dies' before the step's checkpoint is written."""
    real, results = nodes.execute_action.run_tool, []

    def run_then_die(*args: Any, **kwargs: Any) -> Any:
        results.append(real(*args, **kwargs))
        raise Crash("killed between the tool's commit and the checkpoint")

    monkeypatch.setattr(nodes.execute_action, "run_tool", run_then_die)
    return results


def ledger(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return [tuple(r) for r in conn.execute("SELECT key, tool FROM action_ledger ORDER BY key")]


def audit_outcomes(conn: sqlite3.Connection, tool: str) -> list[str]:
    return [r[0] for r in conn.execute("SELECT outcome FROM audit_log WHERE tool = ? ORDER BY id", (tool,))]


# ------------------------------------------------------------------ leases


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def lease_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory"
    if request.param == "sqlite":
        return str(tmp_path / "checkpoints.sqlite")
    return request.getfixturevalue("pg_url")  # a database of this test's own


def test_a_held_lease_refuses_a_second_run_until_released(lease_target: str) -> None:
    thread = f"t-{uuid.uuid4().hex[:8]}"
    with hold(lease_target, thread, ttl_s=60):
        with pytest.raises(ThreadBusy, match=f"^thread {thread} is busy"):
            with hold(lease_target, thread, ttl_s=60):
                pass
        with hold(lease_target, f"other-{thread}", ttl_s=60):  # other threads are not affected
            pass
    with hold(lease_target, thread, ttl_s=60):  # released: free again
        pass


def test_racing_takers_of_a_free_lease_never_both_win(lease_target: str) -> None:
    thread = f"t-{uuid.uuid4().hex[:8]}"
    start, results, lock = threading.Barrier(6), [], threading.Lock()
    leases = [open_leases(lease_target) for _ in range(6)]

    def take(i: int) -> None:
        start.wait()
        try:
            leases[i].acquire(thread, f"holder-{i}", 60)
            outcome = f"won-{i}"
        except ThreadBusy:
            outcome = "busy"
        with lock:
            results.append(outcome)

    workers = [threading.Thread(target=take, args=(i,)) for i in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for lease in leases:
        lease.close()
    winners = [r for r in results if r != "busy"]
    assert len(results) == 6 and len(winners) == 1
    tidy = open_leases(lease_target)
    tidy.release(thread, winners[0].replace("won-", "holder-"))
    assert tidy.current(thread) is None
    tidy.close()


def test_an_expired_lease_is_taken_over(lease_target: str) -> None:
    thread, now = f"t-{uuid.uuid4().hex[:8]}", [1_000.0]
    leases = open_leases(lease_target, clock=lambda: now[0])
    try:
        leases.acquire(thread, "holder-on-another-machine", 30)
        with pytest.raises(ThreadBusy):
            leases.acquire(thread, "me", 30)
        now[0] += 31
        assert leases.acquire(thread, "me", 30).holder == "me"
    finally:
        leases.release(thread, "me")
        leases.close()


def test_the_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(tmp_path: Path) -> None:
    target = str(tmp_path / "checkpoints.sqlite")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = Lease("t1", f"{HOST}:{gone.stdout.strip()}:x", HOST, int(gone.stdout), 10**12)
    leases = open_leases(target)
    leases.conn.execute(  # type: ignore[attr-defined]
        "INSERT INTO thread_leases VALUES (?, ?, ?, ?, ?)",
        (dead.thread_id, dead.holder, dead.host, dead.pid, dead.expires_at),
    )
    with hold(target, "t1", ttl_s=60) as lease:
        assert lease.pid != dead.pid
    leases.close()


# ------------------------------------------------------------------ the CLI takes the lease


def test_a_second_ask_on_a_busy_thread_exits_2(cli: Any, data_dir: Path) -> None:  # noqa: F811
    code, out, _ = cli("ask", "How long does standard delivery take?", "--json")
    thread = out["thread_id"]
    with hold(data_dir / "checkpoints.sqlite", thread, ttl_s=60):
        for argv in (("ask", "And to Belgium?", "--thread", thread), ("resume", thread, "--approve")):
            code, out, err = cli(*argv, "--json")
            assert code == 2 and out is None
            assert err.startswith(f"error: thread {thread} is busy") and len(err.strip().splitlines()) == 1
    code, out, _ = cli("ask", "And to Belgium?", "--thread", thread, "--json")
    assert code == 0 and out["thread_id"] == thread


def test_concurrent_asks_on_one_thread_one_runs_the_other_is_refused(
    cli: Any, data_dir: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """Two real runs in two threads, no sleeps: the first is held inside the graph until the second was refused."""
    thread = str(uuid.uuid4())
    inside, go_on = threading.Event(), threading.Event()
    real_clock = nodes.supervisor.clock

    def held_clock() -> float:
        inside.set()
        assert go_on.wait(30), "the second run never came"
        return real_clock()

    monkeypatch.setattr(nodes.supervisor, "clock", held_clock)
    settings = Settings.from_env()
    first: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: first.update(tickets.ask(settings, "How long does delivery take?", user="demo", thread=thread))
    )
    runner.start()
    assert inside.wait(30)
    code, out, err = cli("ask", "Where is my order 1006?", "--thread", thread, "--json")
    go_on.set()
    runner.join(30)
    assert code == 2 and err.startswith(f"error: thread {thread} is busy")
    assert first["status"] == "completed" and first["route"].count("guard_input") == 1
    code, out, _ = cli("ask", "Where is my order 1006?", "--thread", thread, "--json")
    assert code == 0


# ------------------------------------------------------------------ crash, resume, exactly one effect


def test_resume_without_a_decision_continues_a_crashed_run_and_the_write_happens_once(
    cli: Any, data_dir: Path, seeded_settings: Any, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    clean = data_dir.parent / "clean"
    shutil.copytree(seeded_settings.data_dir, clean)
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(clean))
    _, out, _ = cli("ask", CANCEL, "--json")
    code, clean_out, _ = cli("resume", out["thread_id"], "--approve", "--json")
    assert code == 0 and clean_out["status"] == "completed"

    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(data_dir))
    _, out, _ = cli("ask", CANCEL, "--json")
    thread = out["thread_id"]
    with monkeypatch.context() as m:
        committed = crash_after_commit(m)
        with pytest.raises(Crash):
            cli("resume", thread, "--approve", "--json")
    assert committed and committed[0].ok and not committed[0].data["replayed"]

    code, _, err = cli("resume", thread, "--approve", "--json")  # the decision was already taken and saved
    assert code == 2 and "--approve" not in err and "not waiting" in err
    code, out, _ = cli("resume", thread, "--json")
    assert code == 0 and out["status"] == "completed" and out["thread_id"] == thread
    assert out["answer"] == clean_out["answer"]
    assert out["route"][-6:] == clean_out["route"][-6:]

    with sqlite3.connect(data_dir / "shop.sqlite") as conn:
        assert len(ledger(conn)) == 1
        assert [o.split(":")[0] for o in audit_outcomes(conn, "cancel_order")] == ["ok", "replayed"]
        assert conn.execute("SELECT status FROM orders WHERE id = 1008").fetchone()[0] == "cancelled"

    code, _, err = cli("resume", thread, "--json")
    assert code == 2 and "nothing to continue" in err


def test_resume_without_a_decision_on_a_waiting_thread_asks_for_one(cli: Any) -> None:  # noqa: F811
    _, out, _ = cli("ask", CANCEL, "--json")
    code, _, err = cli("resume", out["thread_id"], "--json")
    assert code == 2 and "is waiting (awaiting_approval)" in err and "--approve" in err


def test_crash_between_commit_and_checkpoint_replays_on_every_checkpointer(
    with_intent: Any, make_graph: Any, checkpointer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = with_intent("cancel_order")
    graph = make_graph(services, checkpointer)
    thread = str(uuid.uuid4())
    config = {"configurable": {"thread_id": thread}}
    ctx = Context(user_id="demo", role="agent")  # a reviewer answers the approval (and continues the run)
    graph.invoke({"messages": [HumanMessage(CANCEL)]}, config, context=Context(user_id="demo"), durability="sync")
    with monkeypatch.context() as m:
        committed = crash_after_commit(m)
        with pytest.raises(Crash):
            graph.invoke(Command(resume={"type": "accept"}), config, context=ctx, durability="sync")
    snap = graph.get_state(config)
    assert snap.next == ("execute_action",), "the approval's step was checkpointed before the write ran"
    assert waiting_on(snap) == (None, None)

    graph.invoke(None, config, context=ctx, durability="sync")
    snap = graph.get_state(config)
    assert snap.values["status"] == "completed" and snap.values["action_result"]["data"]["replayed"] is True
    with services.shop.reading() as conn:
        assert committed[0].ok and ledger(conn) == [(snap.values["action"]["idempotency_key"], "cancel_order")]
        assert len(audit_outcomes(conn, "cancel_order")) == 2


def test_resume_help_describes_the_continue_form(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        app.main(["resume", "--help"])
    assert "With no decision, continue an interrupted or crashed run" in " ".join(capsys.readouterr().out.split())
