"""Issue 9, limits: the hop budget bounds every loop, a wall-clock budget per ticket, and escalation after
N consecutive failures of a specialist. The clock is injected (`nodes.supervisor.clock`); nothing sleeps."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import nodes.execute_action
import nodes.retrieve_knowledge
import nodes.supervisor
from graphs.supervisor import build_supervisor
from tests.clock import FakeClock
from tests.test_graph import TICKETS, resume, run, waiting_on
from tools.registry import ToolResult


def limited(services: Any, **limits: Any) -> Any:
    policy = services.policy
    return dataclasses.replace(
        services, policy=policy.model_copy(update={"limits": policy.limits.model_copy(update=limits)})
    )




@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(nodes.supervisor, "clock", fake)
    return fake


class BrokenKnowledge:
    """Long-term memory whose article search raises for the first `failures` calls, then works."""

    def __init__(self, inner: Any, failures: int) -> None:
        self.inner, self.failures, self.calls = inner, failures, 0

    def search_knowledge(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("knowledge base unavailable")
        return self.inner.search_knowledge(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def escalation_reason(snap: Any) -> str:
    node, payload = waiting_on(snap)
    assert node == "escalate", (node, snap.values.get("route"))
    return payload["action_request"]["args"]["reason"]


# ------------------------------------------------------------------ hop budget


def test_every_cycle_passes_through_the_supervisor_or_the_one_data_bounded_reask(services: Any) -> None:
    """Hops are counted by the supervisor, so a cycle that skips it would not be bounded by `max_hops`. The one
    that does (remember -> request_approval: an approval still waiting is asked again after a new message) runs at
    most once per ticket: remember takes that edge only while `task.pending_action` differs from `action`, and it
    sets `action` to it. The interrupt nodes' edges to themselves (a refused reply is asked again, nodes.hitl) each
    wait for a new human reply first, so the agent never loops on them by itself."""
    drawn = build_supervisor(services).compile().get_graph()
    edges = {(e.source, e.target) for e in drawn.edges}
    assert ("remember", "request_approval") in edges
    asks_again = {(n, n) for n in ("request_approval", "review_gate", "escalate")}
    assert asks_again <= edges
    rest = {
        (a, b)
        for a, b in edges
        if "supervisor" not in (a, b) and (a, b) != ("remember", "request_approval") and (a, b) not in asks_again
    }
    graph: dict[str, set[str]] = {}
    for a, b in rest:
        graph.setdefault(a, set()).add(b)

    def cyclic(node: str, path: tuple[str, ...]) -> bool:
        return any(nxt in path or cyclic(nxt, (*path, nxt)) for nxt in graph.get(node, ()))

    assert not any(cyclic(n, (n,)) for n in graph)


def test_a_specialist_that_always_fails_is_stopped_by_the_hop_budget(with_intent: Any, make_graph: Any) -> None:
    services = with_intent("delivery_period")
    services = limited(services, max_hops=4, max_specialist_failures=100)
    services = dataclasses.replace(services, knowledge=BrokenKnowledge(services.knowledge, failures=10**6))
    snap, _ = run(make_graph(services), "How long does delivery take?")
    assert escalation_reason(snap) == "hop budget exhausted"
    route = snap.values["route"]
    assert route.count("supervisor") == 5 and route.count("retrieve_knowledge") == 4, route


@pytest.mark.parametrize("max_hops", [1, 2, 3])
def test_hop_budget_counts_hops_after_an_approval_too(with_intent: Any, make_graph: Any, max_hops: int) -> None:
    # cancel_order needs 3 hops: -> retrieve_knowledge, -> plan_action, (approval, execute_action) -> generate.
    graph = make_graph(limited(with_intent("cancel_order"), max_hops=max_hops))
    snap, thread = run(graph, TICKETS["cancel_order"])
    if max_hops >= 2:
        assert waiting_on(snap)[0] == "request_approval"
        snap = resume(graph, thread, {"type": "accept"})
    if max_hops < 3:
        assert escalation_reason(snap) == "hop budget exhausted"
    else:
        assert waiting_on(snap) == (None, None) and snap.values["status"] == "completed"
    assert snap.values["route"].count("supervisor") <= max_hops + 1


# ------------------------------------------------------------------ wall-clock budget


def test_spent_wall_clock_budget_takes_the_cant_complete_exit(
    with_intent: Any, make_graph: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = limited(with_intent("delivery_period"), ticket_budget_s=120)
    search = services.knowledge.search_knowledge

    def slow_search(*args: Any, **kwargs: Any) -> Any:
        clock.now += 121  # the retrieval "took" longer than the whole ticket may
        return search(*args, **kwargs)

    services = dataclasses.replace(services, knowledge=BrokenKnowledge(services.knowledge, failures=0))
    monkeypatch.setattr(services.knowledge, "search_knowledge", slow_search)
    snap, _ = run(make_graph(services), "How long does delivery take?")
    assert escalation_reason(snap) == "ticket time budget exhausted (121 s > 120 s)"
    assert snap.values["ticket_started_at"] == 1_000_000.0
    assert snap.values["route"][-2:] == ["retrieve_knowledge", "supervisor"]  # escalate waits at its interrupt


def test_within_budget_completes_and_the_budget_is_per_ticket(
    with_intent: Any, make_graph: Any, clock: FakeClock
) -> None:
    graph = make_graph(limited(with_intent("delivery_period"), ticket_budget_s=120))
    snap, thread = run(graph, "How long does delivery take?")
    assert snap.values["status"] == "completed" and waiting_on(snap) == (None, None)
    clock.now += 10_000  # the next message comes much later: a new ticket, a new budget
    snap, _ = run(graph, "How long does delivery take?", thread=thread)
    assert waiting_on(snap) == (None, None) and snap.values["ticket_started_at"] == clock.now


def test_waiting_for_an_approval_does_not_spend_the_budget(with_intent: Any, make_graph: Any, clock: FakeClock) -> None:
    graph = make_graph(limited(with_intent("cancel_order"), ticket_budget_s=120))
    _, thread = run(graph, TICKETS["cancel_order"])
    clock.now += 3_600  # the approver answers an hour later
    snap = resume(graph, thread, {"type": "accept"})
    assert waiting_on(snap) == (None, None) and snap.values["status"] == "completed"
    assert snap.values["action_result"]["ok"]


# ------------------------------------------------------------------ consecutive specialist failures


def test_a_failing_specialist_runs_again_then_the_ticket_goes_to_a_human(with_intent: Any, make_graph: Any) -> None:
    services = limited(with_intent("delivery_period"), max_specialist_failures=2)
    broken = BrokenKnowledge(services.knowledge, failures=10**6)
    snap, _ = run(make_graph(dataclasses.replace(services, knowledge=broken)), "How long does delivery take?")
    assert escalation_reason(snap) == (
        "retrieve_knowledge failed 2 times in a row: RuntimeError: knowledge base unavailable"
    )
    assert broken.calls == 2
    assert snap.values["failures"]["retrieve_knowledge"]["count"] == 2
    again = ["retrieve_knowledge", "supervisor"]
    assert snap.values["route"][4:] == [*again, *again]


def test_one_failure_below_the_limit_is_retried_and_the_count_resets(with_intent: Any, make_graph: Any) -> None:
    services = limited(with_intent("delivery_period"), max_specialist_failures=2)
    broken = BrokenKnowledge(services.knowledge, failures=1)
    snap, _ = run(make_graph(dataclasses.replace(services, knowledge=broken)), "How long does delivery take?")
    assert waiting_on(snap) == (None, None) and snap.values["status"] == "completed"
    assert snap.values["failures"] == {"retrieve_knowledge": {"count": 0}}
    assert snap.values["citations"]


def test_a_tool_result_that_is_not_ok_counts_as_a_failure(
    with_intent: Any, make_graph: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = nodes.retrieve_knowledge.run_tool

    def flaky(db: Any, name: str, *args: Any, **kwargs: Any) -> ToolResult:
        if name == "get_order":
            return ToolResult(ok=False, error="internal error in get_order: OperationalError")
        return real(db, name, *args, **kwargs)

    monkeypatch.setattr(nodes.retrieve_knowledge, "run_tool", flaky)
    graph = make_graph(limited(with_intent("track_order"), max_specialist_failures=3))
    snap, _ = run(graph, "Where is my order 1006?")
    assert escalation_reason(snap) == (
        "retrieve_knowledge failed 3 times in a row: internal error in get_order: OperationalError"
    )


def test_a_business_refusal_is_an_answer_not_a_failure(with_intent: Any, make_graph: Any) -> None:
    snap, _ = run(make_graph(with_intent("cancel_order")), "Please cancel order 1011 right now.")
    assert waiting_on(snap) == (None, None)
    assert all(f["count"] == 0 for f in snap.values["failures"].values()), snap.values["failures"]


def test_a_failed_write_is_not_retried_without_a_human(
    with_intent: Any, make_graph: Any, monkeypatch: pytest.MonkeyPatch, services: Any
) -> None:
    calls: list[str] = []

    def broken(db: Any, name: str, *args: Any, **kwargs: Any) -> ToolResult:
        calls.append(name)
        return ToolResult(ok=False, error=f"internal error in {name}: OperationalError")

    monkeypatch.setattr(nodes.execute_action, "run_tool", broken)
    graph = make_graph(with_intent("cancel_order"))
    _, thread = run(graph, TICKETS["cancel_order"])
    snap = resume(graph, thread, {"type": "accept"})
    assert escalation_reason(snap) == "execute_action failed once: internal error in cancel_order: OperationalError"
    assert calls == ["cancel_order"]
