"""Human in the loop, in process: one request in two dialects (Agent Inbox, LangChain v1), both reply forms, what
the graph refuses (and that the thread then still waits, saying why), truthful status, streaming, time travel, and
assistant settings that only tighten. Server-side counterparts: tests/test_hitl_server.py."""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage
from langgraph.types import Command

from config.settings import ApprovalPolicy
from graphs.context import Context
from nodes import hitl
from tests.test_shop_tools import as_caller
from tools.shop import run_tool

CANCEL = "Please cancel order 1008, I ordered the wrong keyboard."
FULL_REFUND = "I want my money back for order 1004."
SMALL_REFUND = "I want a refund of EUR 6 for order 1004."
REVIEWER = Context(user_id="demo", role="agent", approver_id="rita")


def start(graph: Any, text: str, ctx: Context | None = None) -> tuple[str, Any]:
    thread = str(uuid.uuid4())
    config = {"configurable": {"thread_id": thread}}
    graph.invoke({"messages": [HumanMessage(text)]}, config, context=ctx or Context())
    return thread, graph.get_state(config)


def answer(graph: Any, thread: str, value: Any, ctx: Context = REVIEWER) -> Any:
    config = {"configurable": {"thread_id": thread}}
    graph.invoke(Command(resume=value), config, context=ctx)
    return graph.get_state(config)


def waiting(snap: Any) -> tuple[str | None, Any]:
    for task in snap.tasks:
        for intr in task.interrupts:
            return task.name, intr.value
    return None, None


def nulls(value: Any, path: str = "$") -> list[str]:
    """JSON paths holding null."""
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in nulls(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in nulls(v, f"{path}[{i}]")]
    return []


def order_status(services: Any, order_id: int) -> str:
    return run_tool(services.shop, "get_order", {"order_id": order_id}, caller=as_caller("get_order", "demo")).data[
        "status"
    ]


# ---------------------------------------------------------------- the request, in both dialects


def test_an_approval_request_speaks_agent_inbox_and_langchain_v1_without_nulls(
    with_intent: Any, make_graph: Any
) -> None:
    graph = make_graph(with_intent("get_refund"))
    _, snap = start(graph, FULL_REFUND)
    node, payload = waiting(snap)
    assert node == "request_approval" and snap.values["status"] == "awaiting_approval"
    args = {"order_id": 1004, "reason": FULL_REFUND}  # a full refund names no amount: it is left out, not null
    assert payload["action_request"] == {"action": "issue_refund", "args": args}
    assert payload["config"] == {"allow_accept": True, "allow_edit": True, "allow_respond": True, "allow_ignore": True}
    # `arguments` too: the real Agent Inbox (agent-inbox f38301b) reads a HITL action's arguments from there and
    # showed an empty Edit/Accept form without it (evals/reports/clients.md).
    assert payload["action_requests"] == [
        {"name": "issue_refund", "args": args, "arguments": args, "description": payload["description"]}
    ]
    (review,) = payload["review_configs"]
    assert review["action_name"] == "issue_refund" and review["allowed_decisions"] == ["approve", "edit", "reject"]
    assert "amount" in review["args_schema"]["properties"]
    assert payload["description"].startswith("**Refund EUR 393.90") and "**Customer wrote:**" in payload["description"]
    assert nulls(payload) == [] and json.loads(json.dumps(payload)) == payload
    assert "error" not in payload


def test_escalation_and_review_requests_advertise_what_they_allow(with_intent: Any, make_graph: Any) -> None:
    _, snap = start(make_graph(with_intent("track_order", 0.3)), "hmm the thing from last week??")
    node, payload = waiting(snap)
    assert node == "escalate" and snap.values["status"] == "escalated"
    flags = {"allow_accept": False, "allow_edit": False, "allow_respond": True, "allow_ignore": True}
    assert payload["config"] == flags
    (review,) = payload["review_configs"]
    assert review == {"action_name": "handoff_to_human", "allowed_decisions": ["respond", "reject"]}
    assert nulls(payload) == [], "the draft and the intent are left out while unknown, never sent as null"

    _, snap = start(make_graph(with_intent("delivery_options", 0.7)), "Can I get my parcel delivered to a locker?")
    node, payload = waiting(snap)
    assert node == "review_gate" and snap.values["status"] == "awaiting_review"
    assert payload["review_configs"][0]["allowed_decisions"] == ["approve", "edit", "reject", "respond"]
    assert payload["action_requests"][0]["args"]["draft"] == snap.values["draft"]
    assert nulls(payload) == []


# ---------------------------------------------------------------- both reply forms


@pytest.mark.parametrize(
    "reply",
    [
        {"decisions": [{"type": "approve"}]},
        {"type": "accept"},
        [{"type": "accept", "args": None}],  # what the Agent Inbox sends: a list of one response
    ],
    ids=["v1-approve", "inbox-accept", "inbox-list"],
)
def test_approve_in_either_dialect_executes(reply: Any, with_intent: Any, make_graph: Any, services: Any) -> None:
    graph = make_graph(with_intent("cancel_order"))
    thread, _ = start(graph, CANCEL)
    snap = answer(graph, thread, reply)
    assert waiting(snap) == (None, None)
    assert snap.values["status"] == "completed" and snap.values["approval"]["type"] == "accept"
    assert snap.values["approval"]["approver"] == "rita"
    assert order_status(services, 1008) == "cancelled"


def test_v1_edit_is_validated_and_executed_with_the_edited_arguments(with_intent: Any, make_graph: Any) -> None:
    graph = make_graph(with_intent("get_refund"))
    thread, _ = start(graph, FULL_REFUND)
    edit = {"type": "edit", "edited_action": {"name": "issue_refund", "args": {"order_id": 1004, "amount": 25}}}
    snap = answer(graph, thread, {"decisions": [edit]})
    assert snap.values["status"] == "completed"
    assert snap.values["action"]["args"]["amount"] == 25.0 and snap.values["approval"]["via"] == "v1"
    assert snap.values["action_result"]["ok"] and snap.values["action_result"]["data"]["amount"] == 25.0


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ({"decisions": [{"type": "reject", "message": "Order is already packed."}]}, "already packed"),
        ({"type": "response", "args": "Order is already packed."}, "already packed"),
        ({"type": "ignore"}, ""),
    ],
    ids=["v1-reject", "inbox-response", "inbox-ignore"],
)
def test_refusals_in_either_dialect_change_nothing(
    reply: Any, reason: str, with_intent: Any, make_graph: Any, services: Any
) -> None:
    graph = make_graph(with_intent("cancel_order"))
    thread, _ = start(graph, CANCEL)
    snap = answer(graph, thread, reply)
    assert snap.values["status"] == "rejected" and "execute_action" not in snap.values["route"]
    assert order_status(services, 1008) == "processing"
    assert reason in snap.values["answer"]


# ---------------------------------------------------------------- refused replies: the thread still waits


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        ("accept", "unknown reply"),
        (42, "unknown reply"),
        ({"kind": "accept"}, "expected 'type'"),
        ({"type": "maybe"}, "malformed Agent Inbox response"),
        ({"type": "accept", "extra": 1}, "malformed"),
        ({"decisions": []}, "send 1 decision"),
        ({"decisions": [{"type": "approve"}, {"type": "approve"}]}, "send 1 decision"),
        ({"decisions": [{"type": "edit"}]}, "edited_action"),
        ({"decisions": [{"type": "respond", "message": "hi"}]}, "does not allow the decision 'respond'"),
        ({"decisions": [{"type": "approve"}], "type": "accept"}, "not both"),
        ([{"type": "accept"}, {"type": "ignore"}], "exactly one"),
        ({"type": "edit", "args": "amount 5"}, "JSON object"),
        ({"type": "response", "args": "   "}, "non-empty"),
        ({"type": "edit", "args": {"order_id": "abc"}}, "edited order_id"),
        ({"type": "edit", "args": {"amount": 9999}}, "exceeds"),  # the tool's preconditions, as a dry run
        ({"decisions": [{"type": "edit", "edited_action": {"name": "cancel_order", "args": {}}}]}, "cannot change"),
    ],
)
def test_a_refused_reply_decides_nothing_and_the_thread_still_waits_saying_why(
    reply: Any, says: str, with_intent: Any, make_graph: Any, services: Any
) -> None:
    graph = make_graph(with_intent("get_refund"))
    thread, _ = start(graph, FULL_REFUND)
    snap = answer(graph, thread, reply)
    node, payload = waiting(snap)
    assert node == "request_approval" and snap.values["status"] == "awaiting_approval"
    assert says in payload["error"], payload["error"]
    assert payload["description"].startswith(f"**Your last answer was refused:** {payload['error']}")
    assert "execute_action" not in snap.values["route"] and snap.values.get("action_result") is None
    assert (
        run_tool(
            services.shop, "get_refund_status", {"order_id": 1004}, caller=as_caller("get_refund_status", "demo")
        ).data["refunds"]
        == []
    )

    snap = answer(graph, thread, {"decisions": [{"type": "approve"}]})  # a good answer still works
    assert snap.values["status"] == "completed" and snap.values["action_result"]["ok"]
    assert snap.values["hitl"] == {}, "no refusal outstanding once answered"


def test_only_a_reviewer_may_answer_whatever_the_client(with_intent: Any, make_graph: Any, services: Any) -> None:
    graph = make_graph(with_intent("cancel_order"))
    thread, _ = start(graph, CANCEL)
    snap = answer(graph, thread, {"decisions": [{"type": "approve"}]}, ctx=Context(user_id="demo"))
    node, payload = waiting(snap)
    assert node == "request_approval" and "only a human reviewer" in payload["error"]
    assert order_status(services, 1008) == "processing"
    # The refused answer is never replayed later as if a reviewer had given it: a reviewer's reject wins.
    snap = answer(graph, thread, {"type": "ignore"}, ctx=Context(user_id="demo", role="admin", approver_id="root"))
    assert snap.values["status"] == "rejected" and order_status(services, 1008) == "processing"


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        ({"type": "edit", "args": {"text": "Hi"}}, "allow_edit is false"),
        ({"type": "accept"}, "allow_accept is false"),
        ({"decisions": [{"type": "approve"}]}, "does not allow the decision 'approve'"),
        ({"decisions": [{"type": "edit", "edited_action": {"name": "handoff_to_human", "args": {}}}]}, "'edit'"),
    ],
)
def test_an_escalation_refuses_what_it_does_not_allow(reply: Any, says: str, with_intent: Any, make_graph: Any) -> None:
    graph = make_graph(with_intent("track_order", 0.3))
    thread, _ = start(graph, "hmm the thing from last week??")
    snap = answer(graph, thread, reply)
    node, payload = waiting(snap)
    assert node == "escalate" and snap.values["status"] == "escalated" and says in payload["error"]
    assert snap.values.get("answer") is None

    snap = answer(graph, thread, {"decisions": [{"type": "respond", "message": "Hi Dana, it arrives Friday."}]})
    assert snap.values["answer"] == "Hi Dana, it arrives Friday." and snap.values["status"] == "completed"


def test_review_replies_in_both_dialects(with_intent: Any, make_graph: Any) -> None:
    graph = make_graph(with_intent("delivery_options", 0.7))
    question = "Can I get my parcel delivered to a locker near my office?"
    fixed = "Yes: choose Parcel locker at checkout; lockers hold parcels for 7 days."

    thread, _ = start(graph, question)
    edit = {"type": "edit", "edited_action": {"name": "review_response", "args": {"draft": fixed}}}
    snap = answer(graph, thread, {"decisions": [edit]})
    assert snap.values["answer"] == fixed and snap.values["status"] == "completed"

    thread, _ = start(graph, question)
    snap = answer(graph, thread, {"type": "edit", "args": {"action": "review_response", "args": {"draft": "  "}}})
    assert waiting(snap)[0] == "review_gate" and "non-empty" in waiting(snap)[1]["error"]
    snap = answer(graph, thread, {"decisions": [{"type": "reject", "message": "needs a specialist"}]})
    node, _ = waiting(snap)
    assert node == "escalate" and snap.values["status"] == "escalated"
    assert snap.values["review"] == {
        "type": "ignore",
        "draft": snap.values["review"]["draft"],
        "reviewer": "rita",
        "via": "v1",
        "note": "needs a specialist",
    }


# ---------------------------------------------------------------- truthful state and streaming


def test_the_state_never_says_completed_before_it_is(with_intent: Any, make_graph: Any) -> None:
    graph = make_graph(with_intent("cancel_order"))
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    seen = [
        v.get("status")
        for v in graph.stream({"messages": [HumanMessage(CANCEL)]}, config, context=Context(), stream_mode="values")
    ]
    assert "completed" not in seen and seen[-1] == "awaiting_approval" and "in_progress" in seen
    written = [
        (node, update["status"])
        for chunk in graph.stream(Command(resume={"type": "accept"}), config, context=REVIEWER, stream_mode="updates")
        for node, update in chunk.items()
        if isinstance(update, dict) and "status" in update
    ]
    assert written[0] == ("execute_action", "in_progress"), "executed, but the answer is still to come"
    assert [n for n, status in written if status == "completed"] == ["guard_output"], written
    assert graph.get_state(config).values["status"] == "completed"


def test_nodes_report_progress_on_the_custom_stream(with_intent: Any, make_graph: Any) -> None:
    graph = make_graph(with_intent("cancel_order"))
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    events = list(graph.stream({"messages": [HumanMessage(CANCEL)]}, config, context=Context(), stream_mode="custom"))
    by_node = {e["node"]: e for e in events if e["event"] == "done"}
    # The ticket's reset (confidence 0, the fail-safe "escalate") is not reported as what guard_input found.
    assert by_node["guard_input"] == {"node": "guard_input", "event": "done", "next": ["compress_context"],
                                      "status": "in_progress", "hops": 0}
    assert by_node["classify_intent"]["intent"] == "cancel_order"
    assert by_node["plan_action"]["tool"] == "cancel_order" and by_node["plan_action"]["next"] == ["request_approval"]
    assert by_node["retrieve_knowledge"]["lookups"] == ["get_order"]
    assert events[-1] == {"node": "request_approval", "event": "waiting", "actions": ["cancel_order"]}
    assert all(json.loads(json.dumps(e)) == e for e in events)


def test_with_a_model_the_response_generator_streams_tokens_on_messages(
    with_intent: Any, make_graph: Any, scripted: Any
) -> None:
    from llm import LLM

    text = "Standard delivery takes 2 to 4 business days."
    model = scripted(text)
    services = dataclasses.replace(with_intent("delivery_period"), llm=LLM(models=[("primary", model)]))
    graph = make_graph(services)
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    chunks = [
        (msg, meta)
        for msg, meta in graph.stream(
            {"messages": [HumanMessage("How long does delivery take?")]},
            config,
            context=Context(),
            stream_mode="messages",
        )
        if meta.get("langgraph_node") == "generate_response"
    ]
    tokens = [m for m, _ in chunks if isinstance(m, AIMessageChunk)]
    assert len(tokens) > 1, "the model's reply streams token by token"
    assert "".join(str(m.content) for m in tokens) == text
    assert model.prompts[0].endswith("CUSTOMER: How long does delivery take?")  # streamed from the one real call


# ---------------------------------------------------------------- time travel


def test_time_travel_a_new_decision_from_an_earlier_checkpoint_is_taken(
    with_intent: Any, make_graph: Any, services: Any
) -> None:
    graph = make_graph(with_intent("cancel_order"))
    thread, _ = start(graph, CANCEL)
    config = {"configurable": {"thread_id": thread}}
    assert answer(graph, thread, {"type": "ignore"}).values["status"] == "rejected"
    assert order_status(services, 1008) == "processing"

    asked = [h for h in graph.get_state_history(config) if h.next == ("request_approval",)][-1]
    fork = graph.update_state(asked.config, None, as_node="__copy__")  # a new branch waiting on the same request
    graph.invoke(Command(resume={"decisions": [{"type": "approve"}]}), fork, context=REVIEWER)
    final = graph.get_state(config)
    assert final.values["status"] == "completed" and final.values["approval"]["type"] == "accept"
    assert order_status(services, 1008) == "cancelled"


# ---------------------------------------------------------------- policy thresholds and strict assistants


def test_a_strict_context_reviews_what_the_default_sends(with_intent: Any, make_graph: Any) -> None:
    graph = make_graph(with_intent("delivery_period"))
    _, relaxed = start(graph, "How long does delivery take?")
    assert relaxed.values["status"] == "completed" and relaxed.values["decision"] == "auto"
    _, strict = start(graph, "How long does delivery take?", Context(auto_threshold=0.99))
    assert waiting(strict)[0] == "review_gate" and strict.values["status"] == "awaiting_review"
    _, loose = start(graph, "How long does delivery take?", Context(auto_threshold=0.1))
    assert loose.values["decision"] == "auto", "a context below config's threshold changes nothing"


def with_refund_limit(services: Any, limit: float) -> Any:
    approval = ApprovalPolicy(refund_auto_approve_eur=limit)
    return dataclasses.replace(services, policy=services.policy.model_copy(update={"approval": approval}))


def test_refunds_within_the_configured_limit_are_approved_by_policy(with_intent: Any, make_graph: Any) -> None:
    services = with_refund_limit(with_intent("get_refund"), 10)
    graph = make_graph(services)
    _, small = start(graph, SMALL_REFUND)
    assert waiting(small) == (None, None) and small.values["status"] == "completed"
    assert small.values["approval"]["by"] == "policy" and small.values["action_result"]["data"]["amount"] == 6.0
    _, big = start(graph, FULL_REFUND)
    assert waiting(big)[0] == "request_approval", "EUR 393.90 is above the limit"
    _, strict = start(graph, SMALL_REFUND, Context(refund_auto_approve_eur=0))
    assert waiting(strict)[0] == "request_approval", "a strict context lowers the limit"
    _, loose = start(graph, FULL_REFUND, Context(refund_auto_approve_eur=10_000))
    assert waiting(loose)[0] == "request_approval", "a context cannot raise config's limit"


def test_account_deletion_always_waits_for_a_human(with_intent: Any, make_graph: Any) -> None:
    graph = make_graph(with_refund_limit(with_intent("delete_account"), 10_000))
    _, snap = start(graph, "Please delete my account.", Context(user_id="erin", refund_auto_approve_eur=10_000))
    assert waiting(snap)[0] == "request_approval"
    with pytest.raises(ValueError, match="delete_account"):
        ApprovalPolicy(always_human=())


# ---------------------------------------------------------------- the parser alone


REQ = hitl.request(action="x", args={"a": 1, "b": None}, description="d", inbox=("approve", "reject"), v1=("approve",))


def test_parse_reply_maps_both_dialects_to_one_meaning() -> None:
    assert hitl.parse_reply({"type": "accept"}, REQ).kind == "approve"
    assert hitl.parse_reply([{"type": "ignore"}], REQ).kind == "reject"
    assert hitl.parse_reply({"decisions": [{"type": "approve"}]}, REQ) == hitl.Reply("approve", "v1", "approve")
    with pytest.raises(hitl.ReplyError, match="does not allow the decision 'reject'"):
        hitl.parse_reply({"decisions": [{"type": "reject"}]}, REQ)  # allowed by the Inbox flags, not by v1 here
    with pytest.raises(hitl.ReplyError, match="allow_edit is false"):
        hitl.parse_reply({"type": "edit", "args": {"a": 2}}, REQ)
    assert REQ["action_request"]["args"] == {"a": 1}
    with pytest.raises(ValueError, match="unknown reply kinds"):
        hitl.request(action="x", args={}, description="d", inbox=("accept",), v1=())  # type: ignore[arg-type]
