"""Least privilege: config/permissions.yaml is validated at start-up and enforced by the one door at run time."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from langchain_core.messages import HumanMessage
from langgraph.types import Command

import tools.registry as registry
from auth.audit import MemoryAuditLog
from config.permissions import NODE_NAMES, Permissions, load_permissions
from config.settings import CONFIG_DIR, Settings
from graphs.context import Context
from tools.registry import ToolNotPermitted
from tools.shop import TOOLS, Caller, ShopDB, run_tool

ALL = tuple(sorted(TOOLS))
READS = tuple(sorted(n for n, s in TOOLS.items() if s.kind == "read"))


@pytest.fixture
def db(tmp_path: Path) -> ShopDB:
    shop = ShopDB(tmp_path / "shop.sqlite", audit=MemoryAuditLog())
    shop.seed()
    return shop


def status(db: ShopDB, order_id: int) -> str:
    return db.query("SELECT status FROM orders WHERE id = ?", (order_id,))[0]["status"]


# ---------------------------------------------------------------- the file


def test_the_shipped_file_is_valid_and_names_real_nodes() -> None:
    from graphs.supervisor import NODE_NAMES as GRAPH_NODES

    assert set(NODE_NAMES) == set(GRAPH_NODES)
    permissions = Settings().permissions()
    assert set(permissions.nodes) <= set(GRAPH_NODES)
    assert permissions.tools_of("execute_action") == {n for n, s in TOOLS.items() if s.is_write}
    assert permissions.tools_of("generate_response", "dry_run") == frozenset()  # not listed: nothing


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / f"permissions-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        ({"nodes": {"retriever": {"call": ["get_order"]}}}, "unknown node 'retriever' (graph nodes: guard_input"),
        ({"nodes": {"execute_action": {"call": ["drop_tables"]}}}, "nodes.execute_action.call: unknown tool(s)"),
        ({"nodes": {"plan_action": {"dry_run": ["get_order"]}}}, "['get_order'] are read tools"),
        ({"nodes": {"plan_action": {"write": ["cancel_order"]}}}, "nodes.plan_action.write: Extra inputs"),
        ({"version": 2, "nodes": {}}, "version: Input should be 1"),
    ],
)
def test_a_bad_file_stops_start_up_with_one_line(tmp_path: Path, data: Any, phrase: str) -> None:
    with pytest.raises(ValueError) as info:
        load_permissions(write(tmp_path, data), ALL, READS)
    assert phrase in str(info.value) and "\n" not in str(info.value)


def test_a_workflow_needing_a_grant_the_file_lacks_is_a_start_up_error(tmp_path: Path) -> None:
    shipped = yaml.safe_load((CONFIG_DIR / "permissions.yaml").read_text())
    shipped["nodes"]["execute_action"]["call"].remove("issue_refund")
    config = tmp_path / "config"
    config.mkdir()
    for name in ("policy.yaml", "workflows.yaml", "error-policies.yaml"):
        (config / name).write_text((CONFIG_DIR / name).read_text())
    (config / "permissions.yaml").write_text(yaml.safe_dump(shipped))
    with pytest.raises(ValueError, match="workflow 'get_refund' needs execute_action to call 'issue_refund'"):
        Settings(config_dir=config).permissions()


# ---------------------------------------------------------------- enforcement at the door


@pytest.mark.parametrize(
    ("node", "tool", "args", "dry_run"),
    [
        ("retrieve_knowledge", "cancel_order", {"order_id": 1008}, False),  # may only dry-run it
        ("retrieve_knowledge", "update_account", {"field": "name", "value": "Mallory"}, True),  # not even that
        ("plan_action", "cancel_order", {"order_id": 1008}, False),  # plans, never writes
        ("request_approval", "issue_refund", {"order_id": 1004, "amount": 5}, False),
        ("execute_action", "get_account", {}, False),  # writes only
        ("generate_response", "get_order", {"order_id": 1004}, False),  # no tools at all
        ("escalate", "create_ticket", {"subject": "help", "body": "x"}, False),
    ],
)
def test_a_call_outside_the_nodes_grant_is_refused_audited_and_raised(
    db: ShopDB, node: Any, tool: str, args: dict, dry_run: bool
) -> None:
    before = db.dump()
    with pytest.raises(ToolNotPermitted, match=f"node '{node}' may not .* tool '{tool}'"):
        run_tool(db, tool, args, caller=Caller(node, "demo", thread_id="t1", trace_id="tr1"), dry_run=dry_run)
    assert db.dump() == before, "nothing written to the shop, not even its journal"
    [event] = db.audit.query()
    assert (event.kind, event.action, event.outcome, event.node) == ("tool_call", tool, "denied", node)
    assert (event.actor, event.thread_id, event.trace_id) == ("demo", "t1", "tr1")


def test_granted_calls_pass(db: ShopDB) -> None:
    assert run_tool(db, "cancel_order", {"order_id": 1008}, caller=Caller("plan_action", "demo"), dry_run=True).ok
    assert status(db, 1008) == "processing"
    assert run_tool(db, "cancel_order", {"order_id": 1008}, caller=Caller("execute_action", "demo")).ok
    assert status(db, 1008) == "cancelled"
    assert [e.outcome for e in db.audit.query()] == ["ok", "ok"]


def test_the_node_is_typed_and_required() -> None:
    with pytest.raises(ValueError, match="unknown node 'shell'"):
        Caller("shell", "demo")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="caller must be a tools.registry.Caller"):
        run_tool(ShopDB(":memory:"), "get_order", {"order_id": 1}, caller="execute_action")  # type: ignore[arg-type]


def test_the_graph_cannot_write_without_the_grant(
    services: Any, make_graph: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Approved or not, execute_action without its grant changes nothing: the denial is audited and the
    specialist failure is routed (the ticket does not complete the action)."""
    shipped = Settings().permissions()
    nodes = {**shipped.nodes, "execute_action": shipped.nodes["execute_action"].model_copy(update={"call": set()})}
    monkeypatch.setattr(registry, "default_permissions", lambda tools: Permissions(nodes=nodes))
    graph = make_graph(services)
    config = {"configurable": {"thread_id": "perm-1"}}
    ctx = Context(user_id="demo")
    graph.invoke({"messages": [HumanMessage("Please cancel order 1008, wrong keyboard.")]}, config, context=ctx)
    assert graph.get_state(config).next == ("request_approval",)
    reviewer = Context(user_id="demo", role="agent", approver_id="rita")  # only staff may answer an approval
    graph.invoke(Command(resume={"type": "accept"}), config, context=reviewer)
    state = graph.get_state(config).values
    assert state.get("action_result") is None
    assert "ToolNotPermitted" in str(state.get("failures", {}).get("execute_action"))
    assert services.shop.query("SELECT status FROM orders WHERE id = 1008")[0]["status"] == "processing"
    denied = [e for e in services.audit.query(thread_id="perm-1") if e.outcome == "denied"]
    assert [(e.node, e.action) for e in denied] == [("execute_action", "cancel_order")]
    assert denied[0].trace_id == state["trace_id"]


def test_the_cli_stops_at_start_up_on_a_bad_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    import app

    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (config / "permissions.yaml").write_text(yaml.safe_dump({"nodes": {"retriever": {"call": ["get_order"]}}}))
    monkeypatch.setenv("SWITCHBOARD_CONFIG_DIR", str(config))
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path / "data"))
    assert app.main(["ask", "Where is my order 1004?", "--json"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "unknown node 'retriever'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "data" / "shop.sqlite").exists(), "nothing was seeded or written"
