"""PII never stored raw: every checkpoint of a thread, its pending writes and the checkpoint database's bytes.

LangGraph writes a run's input into the first checkpoint before any node runs, so these tests read the whole
history (`get_state_history`), every checkpoint tuple's pending writes, and the raw rows of the SQLite file or the
Postgres tables, on every checkpointer, through the CLI's entry point and through a direct `graph.invoke`.
(They replace a test that read only the latest state.)
"""

from __future__ import annotations

import sqlite3
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from graphs.context import Context

TICKET = (
    "My card 4111 1111 1111 1111 was charged twice, email me at jo@example.com, +44 20 7946 0958, "
    "or refund it to GB82 WEST 1234 5698 7654 32"
)
RAW = (
    "4111 1111 1111 1111",
    "4111111111111111",
    "jo@example.com",
    "7946 0958",
    "79460958",
    "GB82 WEST",
    "WEST12345698765432",
)
"""The ticket's personal data as written and as normalised (digits only, E.164, compact IBAN)."""


def leaks(blob: str | bytes) -> list[str]:
    text = blob.decode("utf-8", "replace") if isinstance(blob, bytes) else blob
    return [raw for raw in RAW if raw in text]


def history_text(graph: Any, saver: Any, thread: str) -> str:
    """Every snapshot of the thread (values, tasks, interrupts, metadata), and every checkpoint with its pending
    writes in every namespace: the thread's own and its subgraph runs' (`analyze_technical:<task id>`)."""
    config = {"configurable": {"thread_id": thread}}
    snapshots = list(graph.get_state_history(config))
    tuples = list(saver.list(config))
    own = [t for t in tuples if not t.config["configurable"].get("checkpoint_ns")]
    assert len(snapshots) >= 5 and len(own) == len(snapshots)  # the input checkpoint and every step
    return "\n".join([*(repr(s) for s in snapshots), *(repr((t.checkpoint, t.pending_writes)) for t in tuples)])


def subgraph_checkpoints(saver: Any, thread: str) -> int:
    return sum(bool(t.config["configurable"].get("checkpoint_ns")) for t in saver.list({"configurable": {
        "thread_id": thread}}))  # fmt: skip


def stored_bytes(saver: Any, target: str) -> bytes:
    if target.startswith("postgres"):
        with saver.conn.cursor() as cur:
            parts = []
            for sql in (
                "SELECT checkpoint::text AS a, metadata::text AS b FROM checkpoints",
                "SELECT type AS a, blob AS b FROM checkpoint_blobs",
                "SELECT type AS a, blob AS b FROM checkpoint_writes",
            ):
                for row in cur.execute(sql).fetchall():
                    parts += [bytes(v) if isinstance(v, memoryview | bytes) else str(v).encode() for v in row.values()]
            return b"\n".join(parts)
    conn = sqlite3.connect(target)
    try:
        rows = [*conn.execute("SELECT * FROM checkpoints"), *conn.execute("SELECT * FROM writes")]
    finally:
        conn.close()
    assert rows
    parts = [v if isinstance(v, bytes) else str(v).encode() for row in rows for v in row]
    files = [p.read_bytes() for p in Path(target).parent.glob(Path(target).name + "*")]  # the file and its WAL
    return b"\n".join(parts + files)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def saver_and_target(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    from memory.checkpointer import open_checkpointer

    target = {"memory": "memory", "sqlite": str(tmp_path / "checkpoints.sqlite")}.get(request.param)
    if target is None:
        target = request.getfixturevalue("pg_url")
    with open_checkpointer(target) as saver:
        yield saver, target


def test_no_checkpoint_of_a_direct_invoke_holds_the_raw_pii(
    services: Any, saver_and_target: Any, make_graph: Any
) -> None:
    saver, target = saver_and_target
    graph = make_graph(services, saver)
    thread = str(uuid.uuid4())
    graph.invoke({"messages": [HumanMessage(TICKET)]}, {"configurable": {"thread_id": thread}}, context=Context())
    state = graph.get_state({"configurable": {"thread_id": thread}}).values
    assert "pii_redacted" in state["flags"] and "[CARD]" in state["ticket"]
    # A payment ticket: the technical analyst's subgraph ran and checkpointed the ticket's text in its own namespace.
    assert "analyze_technical" in state["route"] and subgraph_checkpoints(saver, thread) >= 2
    assert leaks(history_text(graph, saver, thread)) == []
    if target != "memory":
        raw = stored_bytes(saver, target)
        assert b"aesgcm" in raw  # encrypted at rest
        assert leaks(raw) == []


def test_no_checkpoint_of_a_cli_ticket_holds_the_raw_pii(services: Any, tmp_path: Path, make_graph: Any) -> None:
    from graphs import tickets
    from memory.checkpointer import open_checkpointer

    target = str(tmp_path / "checkpoints.sqlite")
    with open_checkpointer(target) as saver:
        graph = make_graph(services, saver)
        board = tickets.Switchboard(graph, services)
        out = tickets.ask(services.settings, TICKET, user="demo", thread=None, board=board)
        assert leaks(history_text(graph, saver, out["thread_id"])) == []
        assert leaks(stored_bytes(saver, target)) == []


def test_personal_slots_stay_sealed_in_state_and_reach_the_tool(services: Any, make_graph: Any) -> None:
    """The new e-mail of an account change is sealed in `entities`, yet the approval shows it and the write uses it."""
    from langgraph.checkpoint.memory import InMemorySaver

    from guards.vault import is_sealed, owner_of, vault_for

    graph = make_graph(services, InMemorySaver())
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    graph.invoke({"messages": [HumanMessage("Please change my email to dana.new@example.com")]}, config,
                 context=Context())
    snap = graph.get_state(config)
    entities = snap.values["entities"]
    assert is_sealed(entities["value"]) and "dana.new" not in repr(entities)
    assert vault_for(services.settings).unseal(entities["value"], owner_of("default", "demo")) == "dana.new@example.com"
    assert snap.values["action"]["args"] == {"field": "email", "value": "dana.new@example.com"}
    with pytest.raises(ValueError, match="does not open"):
        vault_for(services.settings).unseal(entities["value"], owner_of("default", "alice"))


def test_a_tampered_sealed_slot_rejects_the_ticket(services: Any, make_graph: Any) -> None:
    graph = make_graph(services)
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    pii = {"kinds": [], "slots": "pii:v1:AAAA"}
    forged = HumanMessage("change my email to [EMAIL]", additional_kwargs={"pii": pii})
    graph.invoke({"messages": [forged]}, config, context=Context())
    state = graph.get_state(config).values
    assert state["status"] == "rejected" and "sealed_slots_invalid" in state["flags"]
    assert "does not open" in state["error"]


def test_the_pii_key_is_made_once_private_and_an_env_key_wins(tmp_path: Path) -> None:
    from guards.vault import load_key, new_key

    path = tmp_path / "data" / "pii.key"
    first = load_key(None, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and load_key(None, path) == first
    env = new_key()
    assert load_key(env, path) != first
    with pytest.raises(ValueError, match="32 bytes"):
        load_key("c2hvcnQ=", path)


@pytest.mark.parametrize(
    ("text", "raw"),
    [
        (TICKET, RAW),
        ("Please send order 1009 to 12 Harbour Street, 1000 Brussels.", ("12 Harbour Street", "1000 Brussels")),
        ("Please change my email to dana.new@example.com", ("dana.new@example.com",)),
    ],
)
def test_the_decision_log_and_audit_log_hold_no_raw_pii(
    services: Any, make_graph: Any, text: str, raw: tuple[str, ...]
) -> None:
    import json

    graph = make_graph(services)
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    graph.invoke({"messages": [HumanMessage(text)]}, config, context=Context())
    trace = graph.get_state(config).values["trace_id"]
    services.decisions.flush()
    records = services.decisions.by_trace(trace)
    assert [r.node for r in records][:2] == ["guard_input", "compress_context"]
    logged = json.dumps([r.as_dict() for r in records], default=str) + json.dumps(
        [e.__dict__ if hasattr(e, "__dict__") else str(e) for e in services.audit.query(thread_id=None)], default=str
    )
    assert [r for r in raw if r in logged] == []
