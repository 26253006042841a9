"""The technical analyst is a subgraph (triage_log -> match_known_issues) that LangGraph and Studio see (issue 11).

What holds: `get_subgraphs()` and `get_graph(xray=True)` show it with its steps and typed schemas; its steps run
inside a ticket with the run's context and store, checked against the subgraph's state and reported on `custom`
(for a client that streams subgraphs); it checkpoints into the parent's checkpointer, so a replayed parent step
runs it again and a run killed inside it resumes there; a failing step is the specialist's failure, counted and
run again by the supervisor as before.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.store.memory import InMemoryStore

from graphs.context import Context
from graphs.supervisor import NODE_NAMES, build_supervisor
from graphs.validation import InvalidNodeOutput, check_update
from nodes import analyze_technical
from nodes.analyze_technical import STEPS, TechnicalState

TICKET = "Payment failed at checkout: error PAY-402 card declined (HTTP 402)."
KNOWN = "kb-ki-pay-402-card-declined"  # the seeded known issue for PAY-402 (default tenant)


def ticket(graph: Any, thread: str, tenant: str = "default", **kwargs: Any) -> dict[str, Any]:
    """Run the ticket on `thread`; the thread's state values afterwards."""
    config = {"configurable": {"thread_id": thread}}
    graph.invoke({"messages": [HumanMessage(TICKET)]}, config, context=Context(tenant_id=tenant), **kwargs)
    return graph.get_state(config).values


def known_issues(values: dict[str, Any]) -> list[str]:
    return [k["id"] for k in values["analysis"]["known_issues"]]


class Counting:
    """Wraps a function of nodes.analyze_technical: counts calls; can raise on the next call."""

    def __init__(self, fn: Any) -> None:
        self.fn, self.calls, self.raises = fn, 0, None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.raises is not None:
            exc, self.raises = self.raises, None
            raise exc
        return self.fn(*args, **kwargs)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, Counting]:
    """The two steps' tools, counted: `triage` (triage_log) and `match_known_issues` (match_known_issues)."""
    out = {name: Counting(getattr(analyze_technical, name)) for name in ("triage", "match_known_issues")}
    for name, fn in out.items():
        monkeypatch.setattr(analyze_technical, name, fn)
    return out


# ------------------------------------------------------------------ what LangGraph and Studio see


def test_the_technical_analyst_is_a_subgraph_that_xray_draws_with_its_steps(services: Any) -> None:
    graph = build_supervisor(services).compile()
    subgraphs = dict(graph.get_subgraphs())
    assert set(subgraphs) == {"analyze_technical"}
    inner = subgraphs["analyze_technical"]
    assert set(inner.get_graph().nodes) - {"__start__", "__end__"} == set(STEPS)

    drawn = graph.get_graph(xray=True)
    steps = {f"analyze_technical:{s}" for s in STEPS}
    assert set(drawn.nodes) - {"__start__", "__end__"} == (set(NODE_NAMES) - {"analyze_technical"}) | steps
    edges = {(e.source, e.target) for e in drawn.edges}
    assert {("supervisor", "analyze_technical:triage_log"),
            ("analyze_technical:triage_log", "analyze_technical:match_known_issues"),
            ("analyze_technical:match_known_issues", "supervisor")} <= edges  # fmt: skip
    assert set(graph.get_graph().nodes) - {"__start__", "__end__"} == set(NODE_NAMES)  # without xray: one node

    # Typed schemas, as Studio reads them (GET /assistants/{id}/subgraphs), none empty.
    assert set(inner.get_input_jsonschema()["properties"]) == {"ticket"}
    state = {"ticket", "triage", "analysis", "knowledge"}
    assert set(inner.get_output_jsonschema()["properties"]) == state == set(inner.stream_channels_list)
    assert "tenant_id" in (inner.get_context_jsonschema() or {})["properties"]


def test_a_steps_output_is_checked_against_the_subgraphs_state() -> None:
    check_update("triage_log", {"triage": {"severity": "low"}}, TechnicalState)
    with pytest.raises(InvalidNodeOutput, match="undeclared state key.* of TechnicalState: route"):
        check_update("triage_log", {"route": ["triage_log"]}, TechnicalState)  # a parent key is not the subgraph's
    with pytest.raises(InvalidNodeOutput, match="node 'match_known_issues' wrote knowledge"):
        check_update("match_known_issues", {"knowledge": "PAY-402"}, TechnicalState)


def test_a_step_that_writes_a_bad_value_is_stopped_at_its_boundary(
    services: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken:
        def model_dump(self) -> str:
            return "not a triage"

    monkeypatch.setattr(analyze_technical, "triage", lambda *a, **k: Broken())
    with pytest.raises(InvalidNodeOutput, match="node 'triage_log' wrote triage"):
        analyze_technical.subgraph(lambda: services).invoke({"ticket": TICKET}, context=Context())


# ------------------------------------------------------------------ inside a ticket


def test_the_steps_run_with_the_runs_context_and_store_and_report_progress(
    with_intent: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langgraph.runtime import get_runtime

    seen: list[Any] = []
    real = analyze_technical.triage

    def triage(*args: Any, **kwargs: Any) -> Any:
        seen.append(get_runtime(Context))  # the Runtime the triage_log step runs with
        return real(*args, **kwargs)

    monkeypatch.setattr(analyze_technical, "triage", triage)
    store = InMemoryStore()
    graph = build_supervisor(with_intent("payment_issue")).compile(checkpointer=None, store=store)
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    ctx = Context(user_id="demo", tenant_id="default", channel="web")
    parts = list(graph.stream({"messages": [HumanMessage(TICKET)]}, config, context=ctx,
                              stream_mode=["updates", "custom"], subgraphs=True))  # fmt: skip
    (runtime,) = seen
    assert runtime.context == ctx and runtime.store is store

    inner = [(ns, mode, data) for ns, mode, data in parts if ns and ns[0].startswith("analyze_technical:")]
    updates = {step: out for _, mode, data in inner if mode == "updates" for step, out in data.items()}
    assert list(updates) == list(STEPS)  # in order, under the subgraph's namespace
    assert updates["triage_log"]["triage"]["error_codes"] == ["PAY-402"]
    assert KNOWN in [k["id"] for k in updates["match_known_issues"]["analysis"]["known_issues"]]
    events = [data for _, mode, data in inner if mode == "custom"]
    assert events[0] == {"node": "triage_log", "event": "done", "severity": events[0]["severity"],
                         "error_codes": ["PAY-402"], "http_statuses": [402]}  # fmt: skip
    assert events[1]["node"] == "match_known_issues" and KNOWN in events[1]["knowledge"]
    parent = [data for ns, mode, data in parts if not ns and mode == "custom"]
    assert {"node": "analyze_technical", "event": "done"}.items() <= next(
        e for e in parent if e["node"] == "analyze_technical").items()  # fmt: skip

    # A client that does not stream subgraphs sees what it saw before: the specialist's event, not its steps'.
    plain = list(graph.stream({"messages": [HumanMessage(TICKET)]}, {"configurable": {"thread_id": str(uuid.uuid4())}},
                              context=ctx, stream_mode="custom"))  # fmt: skip
    nodes = [e["node"] for e in plain]
    assert "analyze_technical" in nodes and not set(STEPS) & set(nodes)


def test_the_known_issues_are_the_runs_tenants(with_intent: Any, make_graph: Any) -> None:
    graph = make_graph(with_intent("payment_issue"))
    assert KNOWN in known_issues(ticket(graph, str(uuid.uuid4())))
    assert known_issues(ticket(graph, str(uuid.uuid4()), tenant="acme")) == []  # acme has none seeded


# ------------------------------------------------------------------ checkpoints: the parent's


def test_a_replayed_step_runs_the_subgraph_again_on_every_checkpointer(
    with_intent: Any, make_graph: Any, checkpointer: Any, counted: dict[str, Counting]
) -> None:
    graph = make_graph(with_intent("payment_issue"), checkpointer)
    thread = str(uuid.uuid4())
    first = ticket(graph, thread)
    assert counted["triage"].calls == 1 and KNOWN in known_issues(first)
    namespaces = {t.config["configurable"]["checkpoint_ns"] for t in checkpointer.list(
        {"configurable": {"thread_id": thread}})}  # fmt: skip
    assert {ns.split(":")[0] for ns in namespaces} == {"", "analyze_technical"}  # the subgraph's, in the same saver

    config = {"configurable": {"thread_id": thread}}
    before = next(s for s in graph.get_state_history(config) if "analyze_technical" in s.next)
    graph.invoke(None, before.config, context=Context())
    assert counted["triage"].calls == 2 and counted["match_known_issues"].calls == 2  # run again, not reused
    replayed = graph.get_state(config).values
    assert replayed["analysis"] == first["analysis"] and replayed["route"] == first["route"]


def test_a_run_killed_inside_the_subgraph_resumes_there(
    with_intent: Any, make_graph: Any, checkpointer: Any, counted: dict[str, Counting]
) -> None:
    class Killed(BaseException):
        """Not an Exception: nothing in the graph handles it, as with a process that dies."""

    graph = make_graph(with_intent("payment_issue"), checkpointer)
    thread = str(uuid.uuid4())
    counted["match_known_issues"].raises = Killed()
    with pytest.raises(Killed):
        ticket(graph, thread, durability="sync")
    config = {"configurable": {"thread_id": thread}}
    stopped = graph.get_state(config, subgraphs=True)
    assert "analyze_technical" in stopped.next
    (inside,) = [t.state for t in stopped.tasks if t.name == "analyze_technical"]
    assert set(inside.values) == {"ticket", "triage"} and inside.next == ("match_known_issues",)

    graph.invoke(None, config, context=Context(), durability="sync")
    done = graph.get_state(config).values
    assert counted["triage"].calls == 1 and counted["match_known_issues"].calls == 2  # only the step that died
    assert done["status"] == "completed" and KNOWN in known_issues(done)
    assert done["route"].count("analyze_technical") == 1


def test_a_failing_step_is_the_specialists_failure_and_it_runs_again(
    with_intent: Any, make_graph: Any, counted: dict[str, Counting]
) -> None:
    graph = make_graph(with_intent("payment_issue"))
    counted["match_known_issues"].raises = RuntimeError("knowledge base unavailable")
    values = ticket(graph, str(uuid.uuid4()))
    # supervisor.watch counted it (failures), the supervisor ran the specialist again, and the ticket completed.
    assert values["route"].count("analyze_technical") == 2 and values["failures"]["analyze_technical"] == {"count": 0}
    assert values["status"] == "completed" and KNOWN in known_issues(values)
