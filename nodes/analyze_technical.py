"""analyze_technical: the technical analyst, a subgraph of two one-job steps.

    START -> triage_log -> match_known_issues -> END

- `triage_log` triages pasted error logs and stack traces deterministically (`tools.log_triage.triage`: error
  codes, exception types, HTTP statuses, timeouts; long logs cut to the relevant lines) into `triage`;
- `match_known_issues` reads the tenant's known issues from the knowledge base (as stored now: seeded or ingested,
  on every ticket) and matches them against the triage (`tools.log_triage.match_known_issues`): `analysis` (the
  triage and the best three matches) and `knowledge` (those matches as knowledge items).

No model is needed for this job. `build(services)` returns the subgraph uncompiled (state and output
`TechnicalState`, input `TechnicalInput`, context `Context`); each step's update is checked against
`TechnicalState` (graphs.validation) and reported on the `custom` stream (nodes.progress). `subgraph(services)`
compiles it without a checkpointer of its own, so it checkpoints into the parent's (namespace
`analyze_technical:<task id>`) and a parent step replayed from an earlier checkpoint runs it again.
`make(services, graph)` is the parent graph's node (the Node contract): it runs the compiled subgraph on the ticket
with the run's context (the store and stream reach the steps through the parent's config) and writes what the
specialist writes, its name on `route`, `analysis`, and `knowledge` when a known issue matched; graphs/supervisor.py
adds it with every node's wrappers and marks it as running the subgraph (Studio's xray view,
`GET /assistants/{id}/subgraphs`).
"""

from __future__ import annotations

from typing import Any, Final, Literal, NotRequired, Protocol, get_args

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict

from graphs.context import Context
from graphs.services import ServicesProvider
from graphs.state import SupportState
from graphs.validation import validated
from nodes import progress
from nodes.common import Node, visited
from tools.log_triage import Triage, match_known_issues, triage

NAME: Final = "analyze_technical"

Step = Literal["triage_log", "match_known_issues"]
STEPS: tuple[Step, ...] = get_args(Step)
"""The subgraph's nodes, in order (drawn as `analyze_technical:<step>` by `get_graph(xray=True)`)."""

MAX_MATCHES = 3
"""Known issues kept per ticket (best first)."""


class TechnicalInput(TypedDict):
    """What the parent hands the technical analyst."""

    ticket: str
    """The customer's message as guard_input left it (PII redacted)."""


class TechnicalState(TypedDict):
    """Working state of one technical analysis (one run of the subgraph per call of the specialist)."""

    ticket: str
    """The customer's message (PII redacted)."""
    triage: NotRequired[dict[str, Any]]
    """What `triage_log` found: `tools.log_triage.Triage` as a dict (codes, exceptions, statuses, timeouts, lines)."""
    analysis: NotRequired[dict[str, Any]]
    """The triage plus `known_issues` [{id, score, reasons}], best first (SupportState `analysis`)."""
    knowledge: NotRequired[list[dict[str, Any]]]
    """The matched known-issue articles as knowledge items [{id, kind, title, text, score, relevance, metadata}]."""


class StepFn(Protocol):
    """A step of the subgraph: its state and the run's Runtime (injected by name) -> its update."""

    def __call__(self, state: TechnicalState, runtime: Runtime[Context]) -> dict[str, Any]: ...


type Subgraph = CompiledStateGraph[TechnicalState, Context, TechnicalInput, TechnicalState]


def make_triage_log(services: ServicesProvider) -> StepFn:
    def triage_log(state: TechnicalState, runtime: Runtime[Context]) -> dict[str, Any]:
        found = triage(state["ticket"], max_lines=services().policy.limits.max_log_lines)
        return {"triage": found.model_dump()}

    return triage_log


def make_match_known_issues(services: ServicesProvider) -> StepFn:
    def match_known_issues_step(state: TechnicalState, runtime: Runtime[Context]) -> dict[str, Any]:
        found = Triage.model_validate(state["triage"])
        # Read from the tenant's knowledge base on every ticket, so issues added by `app.py ingest` count at once.
        known = services().knowledge.known_issues(tenant_id=runtime.context.tenant_id)
        matches = match_known_issues(found, known)[:MAX_MATCHES]
        by_id = {a["id"]: a for a in known}
        knowledge = []
        for m in matches:
            article = by_id.get(m.article_id, {})
            knowledge.append(
                {
                    "id": m.article_id,
                    "kind": "known_issue",
                    "title": article.get("title", ""),
                    "text": article.get("body", ""),
                    "score": round(float(m.score), 4),
                    "relevance": 1.0,
                    "metadata": {"reasons": "; ".join(m.reasons)},
                }
            )
        analysis = {
            **state["triage"],
            "known_issues": [{"id": m.article_id, "score": m.score, "reasons": list(m.reasons)} for m in matches],
        }
        return {"analysis": analysis, "knowledge": knowledge}

    return match_known_issues_step


def build(services: ServicesProvider) -> StateGraph[TechnicalState, Context, TechnicalInput, TechnicalState]:
    """The technical analyst's subgraph, uncompiled (see the module docstring)."""
    # The output is the whole state: the `updates` and `values` streams (Studio's view of the subgraph) carry only
    # output keys, and each step's own key should show there; the parent node takes `analysis` and `knowledge`.
    g = StateGraph(TechnicalState, context_schema=Context, input_schema=TechnicalInput)
    steps: dict[Step, StepFn] = {
        "triage_log": make_triage_log(services),
        "match_known_issues": make_match_known_issues(services),
    }
    for name, fn in steps.items():
        # Each step's update is checked against TechnicalState and reported on the `custom` stream (seen by a
        # client that streams subgraphs). Timing, the decision record, failure counting and retries are the parent
        # node's: the analysis is one specialist call.
        g.add_node(name, progress.reporting(name, validated(name, fn, schema=TechnicalState)))
    g.add_edge(START, "triage_log")
    g.add_edge("triage_log", "match_known_issues")
    g.add_edge("match_known_issues", END)
    return g


def subgraph(services: ServicesProvider) -> Subgraph:
    """The subgraph compiled for a parent graph: no checkpointer of its own (it uses the parent's)."""
    return build(services).compile(name=NAME)


def make(services: ServicesProvider, graph: Subgraph | None = None) -> Node:
    """The parent's node: runs `graph` (default: `subgraph(services)`) on the ticket."""
    technical = graph if graph is not None else subgraph(services)

    def analyze_technical(state: SupportState, runtime: Runtime[Context]) -> dict:
        out = technical.invoke({"ticket": state.get("ticket", "")}, context=runtime.context)
        update: dict = {**visited(NAME), "analysis": out["analysis"]}
        if out.get("knowledge"):
            update["knowledge"] = out["knowledge"]
        return update

    return analyze_technical
