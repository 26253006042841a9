"""Graph state. Small, typed, documented per key; keys several nodes write carry reducers.

`typing_extensions.TypedDict` (not `typing.TypedDict`) so the dev server publishes real schemas.

One convention starts a key anew: a node writes `langgraph.types.Overwrite(value)`, which replaces the value and
skips the reducer (guard_input at every new ticket: route, flags, knowledge, usage, entities, hitl; the supervisor's
failures on hop 1; classify_intent's new task; nodes.hitl's refusal record). Overwrite is LangGraph's own: it
survives checkpoints and the server's JSON (``{"type": "__overwrite__", "value": ...}``); two in one super-step are
an error, so only a node that runs alone in its step writes one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, NotRequired

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from langgraph.types import Command, Overwrite
from typing_extensions import TypedDict

Decision = Literal["auto", "review", "escalate"]
Status = Literal["in_progress", "completed", "awaiting_approval", "awaiting_review", "escalated", "rejected"]
"""What the thread is doing: `in_progress` while a ticket runs, `awaiting_approval` / `awaiting_review` /
`escalated` while it waits for a human (set upstream of the interrupt), then how the ticket ended."""

def route_log(left: list[str] | None, right: list[str] | None) -> list[str]:
    """Append node names (a new ticket's route starts with `Overwrite`)."""
    return list(left or []) + list(right or [])


def merge_flags(left: list[str] | None, right: list[str] | None) -> list[str]:
    """Union of flags in first-seen order."""
    return list(dict.fromkeys((left or []) + (right or [])))


def merge_knowledge(left: list[dict] | None, right: list[dict] | None) -> list[dict]:
    """Retrieved items keyed by id (parallel specialists may both add). The same article from two specialists is
    one item with what both know of it (the retriever's `intents`, the analyst's match), the later one's values
    first."""
    out: dict[str, dict] = {item["id"]: item for item in (left or [])}
    for item in right or []:
        out[item["id"]] = {**out.get(item["id"], {}), **item}
    return list(out.values())


def sum_usage(*usages: Mapping[str, float] | None) -> dict[str, float]:
    """Token and cost counters added up key by key, rounded to 6 places (the one usage-summing helper: the
    `usage` reducer, nodes that make several model calls, the decision log)."""
    out: dict[str, float] = {}
    for usage in usages:
        for k, v in (usage or {}).items():
            out[k] = round(out.get(k, 0) + v, 6)
    return out


def add_usage(left: dict | None, right: dict | None) -> dict:
    """Sum token/cost counters across the nodes of one ticket."""
    return sum_usage(left, right)


def merge_dict(left: dict | None, right: dict | None) -> dict:
    """Shallow merge (later wins)."""
    return {**(left or {}), **(right or {})}


def written(update: Any) -> dict[str, Any]:
    """What a node's return value writes: a dict, or a Command's update, with each `Overwrite` unwrapped to its
    value (for the decision log, progress events and the audit, which read what a node wrote)."""
    body = update.update if isinstance(update, Command) else update
    if not isinstance(body, Mapping):
        return {}
    return {str(k): v.value if isinstance(v, Overwrite) else v for k, v in body.items()}


class InputState(TypedDict):
    """What a caller sends: LangChain messages (Studio sends message dicts)."""

    messages: Annotated[list[AnyMessage], add_messages]


class OutputState(TypedDict):
    """What a run returns to the caller."""

    messages: Annotated[list[AnyMessage], add_messages]
    status: NotRequired[Status]
    answer: NotRequired[str | None]
    intent: NotRequired[str | None]
    confidence: NotRequired[float]
    decision: NotRequired[Decision]
    route: NotRequired[Annotated[list[str], route_log]]
    flags: NotRequired[Annotated[list[str], merge_flags]]
    trace_id: NotRequired[str]
    usage: NotRequired[Annotated[dict[str, float], add_usage]]
    cost_usd: NotRequired[float]


class SupportState(TypedDict):
    """Full working state of one support thread."""

    messages: Annotated[list[AnyMessage], add_messages]
    """The conversation (session memory, checkpointed)."""
    ticket: NotRequired[str]
    """The current customer message, after input guards (PII redacted)."""
    trace_id: NotRequired[str]
    """One id per ticket (observability.tracing), carried into logs, metrics, spans and the decision log."""
    owner: NotRequired[dict[str, str]]
    """Whom the ticket is for, {tenant_id, user_id}, from the run's identity at the ticket's start (cache keys)."""
    route: NotRequired[Annotated[list[str], route_log]]
    """Node names visited for the current ticket, in order."""
    flags: NotRequired[Annotated[list[str], merge_flags]]
    """Guard findings: prompt_injection, pii_redacted, input_too_long, ..."""
    intent: NotRequired[str | None]
    confidence: NotRequired[float]
    candidates: NotRequired[list[dict[str, Any]]]
    intent_group: NotRequired[list[str]]
    """Top intents with calibrated probabilities [{intent, p}]."""
    decision: NotRequired[Decision]
    entities: NotRequired[Annotated[dict[str, Any], merge_dict]]
    """Slots for this ticket: the task's slots plus what this message adds (order_id, amount, address, ...)."""
    task: NotRequired[Annotated[dict[str, Any], merge_dict]]
    """The conversation's active task, kept across tickets (dialogue.task): intent, slots, missing, step,
    asked, candidates, order under discussion, an action still waiting for approval."""
    intent_confidence: NotRequired[float]
    """The classifier's confidence in the intent; `confidence` is the answer's (intent x grounding)."""
    grounding: NotRequired[dict[str, Any]]
    """What grounds the answer: slots resolved, preconditions checked, facts and articles found."""
    pending_specialists: NotRequired[list[str]]
    """Specialists the supervisor still has to run for this ticket (from the workflow)."""
    hops: NotRequired[int]
    """Supervisor hops for the current ticket (`limits.max_hops`)."""
    ticket_started_at: NotRequired[float]
    """Wall-clock start (epoch s) of the ticket's budget (`limits.ticket_budget_s`), set by the supervisor on hop 1
    and restarted after an executed approval."""
    failures: NotRequired[Annotated[dict[str, dict[str, Any]], merge_dict]]
    """Consecutive failures per specialist for the current ticket: {node: {count, error}} (`limits.
    max_specialist_failures`); written by `nodes.supervisor.watch` around each specialist (parallel ones too)."""
    knowledge: NotRequired[Annotated[list[dict[str, Any]], merge_knowledge]]
    """Retrieved articles, cases and tool lookups [{id, kind, title, text, score}]."""
    lookups: NotRequired[dict[str, Any]]
    """Read-tool results by tool name."""
    analysis: NotRequired[dict[str, Any] | None]
    """Technical triage: codes, exceptions, statuses, matched known issues."""
    action: NotRequired[dict[str, Any] | None]
    """The write action planned: {tool, args, description, approval, idempotency_key}."""
    approval: NotRequired[dict[str, Any] | None]
    """The human's answer to the approval request (Agent Inbox response)."""
    action_result: NotRequired[dict[str, Any] | None]
    draft: NotRequired[str | None]
    draft_id: NotRequired[str | None]
    """The id of the model message whose tokens streamed on `messages` as `draft`, unchanged (None otherwise):
    guard_output gives the answer's message this id when it sends that text as it is (docs/ARCHITECTURE.md)."""
    citations: NotRequired[list[str]]
    review: NotRequired[dict[str, Any] | None]
    hitl: NotRequired[Annotated[dict[str, Any], merge_dict]]
    """The last reply a human-in-the-loop node refused, while it asks again: {node, error, attempts} (nodes.hitl)."""
    answer: NotRequired[str | None]
    status: NotRequired[Status]
    summary: NotRequired[str]
    """Rolling summary of turns that left the window (session memory)."""
    pinned: NotRequired[Annotated[dict[str, Any], merge_dict]]
    """Key facts pinned across summarisation: order ids, preferences, ..."""
    usage: NotRequired[Annotated[dict[str, float], add_usage]]
    """Token and cost counters for the current ticket."""
    cost_usd: NotRequired[float]
    """The ticket's model cost in US dollars (0.0 offline), settled by remember."""
    error: NotRequired[str | None]
