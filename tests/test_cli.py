"""The CLI contract (`ask`, `resume`) and its errors: one line on stderr, exit 2, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import app
from config.settings import Settings

REPO = Path(__file__).resolve().parents[1]
KEYS = {
    "thread_id",
    "trace_id",
    "status",
    "intent",
    "confidence",
    "decision",
    "route",
    "answer",
    "pending",
    "flags",
    "usage",
    "cost_usd",
    "latency_ms",
}


@pytest.fixture
def data_dir(seeded_settings: Settings, tmp_path: Path) -> Path:
    """A private copy of the seeded data directory (the CLI writes checkpoints and the shop)."""
    import shutil

    target = tmp_path / "data"
    shutil.copytree(seeded_settings.data_dir, target)
    return target


@pytest.fixture
def cli(data_dir: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run app.main in-process; returns (exit code, parsed stdout JSON or None, stderr)."""
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(data_dir))
    monkeypatch.setenv("SWITCHBOARD_MODEL_CACHE", str(model_cache))
    for var in ("OPENAI_API_KEY", "SWITCHBOARD_LLM_BASE_URL"):
        monkeypatch.delenv(var, raising=False)

    def _run(*argv: str) -> tuple[int, Any, str]:
        code = app.main(list(argv))
        out, err = capsys.readouterr()
        return code, (json.loads(out) if out.strip().startswith(("{", "[")) else None), err

    return _run


def checkpoint_rows(data_dir: Path) -> int:
    import sqlite3

    path = data_dir / "checkpoints.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]


def test_ask_prints_the_contract(cli: Any) -> None:
    code, out, _ = cli("ask", "How long does standard delivery take?", "--json")
    assert code == 0 and set(out) == KEYS
    assert out["status"] == "completed" and out["intent"] == "delivery_period"
    assert out["decision"] in ("auto", "review", "escalate")
    assert out["route"][0] == "guard_input" and out["route"][-1] == "remember"
    assert set(out["usage"]) == {"prompt_tokens", "completion_tokens", "llm_calls", "cost_usd"}
    assert out["usage"]["llm_calls"] == 0 and out["pending"] is None and out["answer"]
    assert out["cost_usd"] == 0.0 and len(out["trace_id"]) == 36


def test_approval_round_trip(cli: Any, data_dir: Path) -> None:
    code, out, _ = cli("ask", "Please cancel order 1008, I ordered the wrong keyboard.", "--json")
    assert code == 0 and out["status"] == "awaiting_approval" and out["answer"] is None
    assert out["pending"]["action_request"]["action"] == "cancel_order"
    thread = out["thread_id"]

    code, out, _ = cli("resume", thread, "--approve", "--json")
    assert code == 0 and out["status"] == "completed" and out["thread_id"] == thread
    assert "execute_action" in out["route"]
    from tools.shop import Caller, ShopDB, run_tool

    READER = Caller("retrieve_knowledge", "demo")

    assert (
        run_tool(ShopDB(data_dir / "shop.sqlite"), "get_order", {"order_id": 1008}, caller=READER).data["status"]
        == "cancelled"
    )

    code, _, err = cli("resume", thread, "--approve", "--json")
    assert code == 2 and "is not waiting" in err and len(err.strip().splitlines()) == 1


def test_reject_with_reason(cli: Any) -> None:
    _, out, _ = cli("ask", "Please cancel order 1009", "--json")
    code, out, _ = cli(
        "resume", out["thread_id"], "--reject", "--reason", "already shipped from the warehouse", "--json"
    )
    assert code == 0 and out["status"] == "rejected" and "already shipped" in out["answer"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("ask", "   ", "--json"), "empty"),
        (("ask", "x" * 5000, "--json"), "limit"),
        (("ask", "hello", "--user", "bad user!", "--json"), "invalid user"),
        (("resume", "no-such-thread", "--approve", "--json"), "unknown thread"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(cli: Any, data_dir: Path, argv: tuple, message: str) -> None:
    before = checkpoint_rows(data_dir)
    code, out, err = cli(*argv)
    assert code == 2 and out is None
    assert message in err and len(err.strip().splitlines()) == 1
    assert checkpoint_rows(data_dir) == before


def test_malformed_edit_json_writes_nothing(cli: Any, data_dir: Path) -> None:
    _, out, _ = cli("ask", "Please cancel order 1008", "--json")
    before = checkpoint_rows(data_dir)
    code, _, err = cli("resume", out["thread_id"], "--edit", "{not json", "--json")
    assert code == 2 and "not valid JSON" in err
    code, _, err = cli("resume", out["thread_id"], "--edit", '{"order_id": "abc"}', "--json")
    assert code == 2 and "order_id" in err
    assert checkpoint_rows(data_dir) == before
    code, out2, _ = cli("resume", out["thread_id"], "--approve", "--json")  # still waiting, still resumable
    assert code == 0 and out2["status"] == "completed"


def test_a_new_message_keeps_the_pending_approval(cli: Any) -> None:
    _, out, _ = cli("ask", "Please cancel order 1008", "--json")
    code, again, _ = cli("ask", "Where is my order 1006?", "--thread", out["thread_id"], "--json")
    assert code == 0 and again["status"] == "awaiting_approval"
    assert again["pending"]["action_request"] == out["pending"]["action_request"]
    assert "JJD000390010061006" in again["answer"] and "cancel order 1008 is still waiting" in again["answer"]
    code, done, _ = cli("resume", out["thread_id"], "--approve", "--json")
    assert code == 0 and done["status"] == "completed" and "order 1008 is cancelled" in done["answer"]


def test_ask_on_a_thread_waiting_for_a_human_is_refused(cli: Any) -> None:
    _, out, _ = cli("ask", "I want to talk to a real person please", "--json")
    assert out["status"] == "escalated" and out["pending"]
    code, _, err = cli("ask", "hello again", "--thread", out["thread_id"], "--json")
    assert code == 2 and "waiting" in err


def test_working_memory_is_inspectable(cli: Any) -> None:
    _, out, _ = cli("ask", "Where is my order 1006?", "--json")
    code, mem, _ = cli("memory", "--thread", out["thread_id"], "--json")
    assert code == 0 and mem["task"]["order_id"] == 1006 and mem["task"]["intent"] == out["intent"]
    assert mem["task"]["step"] == "answered"
    code, _, err = cli("memory", "--thread", "no-such-thread", "--json")
    assert code == 2 and "unknown thread" in err


def test_subprocess_entry_point(data_dir: Path, model_cache: Path) -> None:
    """The real command line a user types, in a fresh process."""
    env = {**os.environ, "SWITCHBOARD_DATA_DIR": str(data_dir), "SWITCHBOARD_MODEL_CACHE": str(model_cache)}
    env.pop("OPENAI_API_KEY", None)
    proc = subprocess.run(
        [sys.executable, str(REPO / "app.py"), "ask", "Where is my order 1006?", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["intent"] == "track_order" and "1006" in (out["answer"] or "")


def test_chat_asks_for_approval_at_the_prompt(
    cli: Any, data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("Where is my order 1006?\nPlease cancel order 1009\ny\n\n"))
    assert app.main(["chat", "--thread", "chat-1"]) == 0
    out = capsys.readouterr().out
    assert "Order 1006 (Aurora Wireless Headphones, EUR 129.00) has shipped with DHL" in out
    assert "approve? [y]es" in out and "Done: order 1009 is cancelled" in out
    from tools.shop import Caller, ShopDB, run_tool

    READER = Caller("retrieve_knowledge", "demo")

    shop = ShopDB(data_dir / "shop.sqlite")
    assert run_tool(shop, "get_order", {"order_id": 1009}, caller=READER).data["status"] == "cancelled"


def test_ingest_cli_is_idempotent_and_rejects_missing_paths(
    cli: Any, tmp_path: Path, data_dir: Path, embedder: Any
) -> None:
    doc = tmp_path / "docs" / "gift-wrap.md"
    doc.parent.mkdir()
    doc.write_text("# Gift wrapping\n\nWe wrap any order in recycled paper for EUR 2.50; choose it at checkout.\n")
    code, first, _ = cli("ingest", str(doc.parent), "--json")
    assert code == 0 and first["documents"] == 1 and first["chunks_added"] >= 1
    code, second, _ = cli("ingest", str(doc.parent), "--json")
    assert code == 0 and second["chunks_added"] == 0 and second["chunks_unchanged"] == first["chunks_added"]
    code, _, err = cli("ingest", str(tmp_path / "nope"), "--json")
    assert code == 2 and "no such file" in err
    from memory.knowledge import ChromaMemory

    hits = ChromaMemory.persistent(data_dir / "chroma", embedder).search_knowledge("Can you gift wrap my order?")
    assert "recycled paper" in hits[0].text


def test_lessons_are_reviewed_from_the_cli(cli: Any, data_dir: Path) -> None:
    from memory.lessons import LessonQueue

    queue = LessonQueue(data_dir / "lessons.sqlite")
    lesson_id = queue.propose(
        {"problem": "p", "cause": "c", "fix": "Lockers hold parcels for seven days before they return.", "intent": "x"},
        tenant_id="default",
    )
    code, rows, _ = cli("lessons", "list", "--json")
    assert code == 0 and [r["id"] for r in rows] == [lesson_id] and rows[0]["status"] == "pending"
    code, _, err = cli("lessons", "approve", "--json")
    assert code == 2 and "needs a lesson id" in err
    code, out, _ = cli("lessons", "reject", str(lesson_id), "--json")
    assert code == 0 and out["status"] == "rejected"
    code, _, err = cli("lessons", "approve", str(lesson_id), "--json")
    assert code == 2 and "already rejected" in err


def test_the_approver_is_recorded_in_the_decision_log(cli: Any, data_dir: Path) -> None:
    _, out, _ = cli("ask", "Please cancel order 1009", "--json")
    code, done, _ = cli("resume", out["thread_id"], "--approve", "--as", "rita", "--json")
    assert code == 0 and done["status"] == "completed"
    assert done["trace_id"] == out["trace_id"]  # a resumed ticket keeps its trace id
    code, records, _ = cli("decisions", "--trace", out["trace_id"], "--json")
    assert code == 0
    nodes = [r["node"] for r in records]
    assert nodes[0] == "guard_input" and nodes[-1] == "remember"
    asked = [r for r in records if r["node"] == "request_approval"]
    assert [r["outcome"] for r in asked] == ["awaiting_approval", "approved"]
    assert asked[-1]["details"]["approver"] == "rita" and asked[-1]["tool"] == "cancel_order"
    last = records[-1]
    assert (last["details"]["approval"], last["details"]["approver"], last["user_id"]) == ("accept", "rita", "demo")
    assert {r["trace_id"] for r in records} == {out["trace_id"]}
    assert {r["thread_id"] for r in records} == {out["thread_id"]}


def test_a_customer_role_cli_cannot_answer_and_the_thread_still_waits(
    cli: Any, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, out, _ = cli("ask", "Please cancel order 1008", "--json")
    monkeypatch.setenv("SWITCHBOARD_CLI_ROLE", "customer")
    before = checkpoint_rows(data_dir)
    code, _, err = cli("resume", out["thread_id"], "--approve", "--json")
    assert code == 2 and "only a human reviewer" in err and len(err.strip().splitlines()) == 1
    assert checkpoint_rows(data_dir) == before
    monkeypatch.setenv("SWITCHBOARD_CLI_ROLE", "agent")
    code, done, _ = cli("resume", out["thread_id"], "--approve", "--as", "rita", "--json")
    assert code == 0 and done["status"] == "completed"


def test_an_edit_the_tools_preconditions_refuse_exits_2_and_writes_nothing(cli: Any, data_dir: Path) -> None:
    _, out, _ = cli("ask", "I want my money back for order 1004.", "--json")
    assert out["status"] == "awaiting_approval"
    before = checkpoint_rows(data_dir)
    code, _, err = cli("resume", out["thread_id"], "--edit", '{"amount": 9999}', "--json")
    assert code == 2 and "exceeds" in err and checkpoint_rows(data_dir) == before
    code, done, _ = cli("resume", out["thread_id"], "--edit", '{"amount": 20}', "--json")
    assert code == 0 and done["status"] == "completed" and "20.00" in done["answer"]



def test_decisions_search_and_bad_input(cli: Any, data_dir: Path) -> None:
    for leftover in data_dir.glob("decisions.sqlite*"):  # the seeded copy may hold one from the session's services
        leftover.unlink()
    code, rows, _ = cli("decisions", "--search", "anything", "--json")
    assert code == 0 and rows == [] and not (data_dir / "decisions.sqlite").exists()  # reading creates nothing
    _, first, _ = cli("ask", "Please cancel order 1009", "--json")
    _, second, _ = cli("ask", "How long does standard delivery take?", "--json")
    code, rows, _ = cli("decisions", "--search", "cancel_order awaiting", "--json")
    assert code == 0 and rows and {r["trace_id"] for r in rows} == {first["trace_id"]}
    code, rows, _ = cli("decisions", "--search", 'delivery_period" (* -', "--json")  # FTS syntax is inert
    assert code == 0 and {r["trace_id"] for r in rows} == {second["trace_id"]}
    for argv, message in (
        (("decisions",), "one of the arguments"),
        (("decisions", "--search", "  "), "needs some text"),
        (("decisions", "--trace", "x", "--search", "y"), "not allowed with"),
        (("decisions", "--trace", "x", "--limit", "0"), "at least 1"),
    ):
        code, _, err = cli(*argv)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1
