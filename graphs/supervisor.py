"""The main graph: a supervisor routing each ticket between specialist nodes.

    START -> guard_input -> compress_context -> classify_intent -> supervisor
    supervisor -> retrieve_knowledge | analyze_technical | plan_action | escalate  (fan-out with Send)
    analyze_technical = subgraph: triage_log -> match_known_issues  (nodes/analyze_technical.py)
    plan_action -> request_approval (interrupt) -> execute_action -> supervisor
    supervisor -> generate_response -> review_gate (auto | review interrupt | escalate interrupt)
        -> guard_output -> remember -> END

`build_supervisor()` returns the *uncompiled* graph; callers compile it with their checkpointer and
store (CLI: SQLite; tests: memory/SQLite/Postgres; `langgraph dev`: the server's own).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from langgraph.graph import START, StateGraph
from langgraph.pregel import Pregel
from langgraph.types import RetryPolicy

from auth.audit_nodes import audited
from config.permissions import NODE_NAMES as NODE_NAME_LIST
from config.settings import NodeRetry, Settings
from graphs.context import Context
from graphs.services import Services, ServicesProvider, built_services, get_services
from graphs.state import InputState, OutputState, SupportState
from graphs.validation import validated
from nodes import (
    analyze_technical,
    classify_intent,
    compress_context,
    escalate,
    execute_action,
    generate_response,
    guard_input,
    guard_output,
    plan_action,
    progress,
    remember,
    request_approval,
    retrieve_knowledge,
    review_gate,
    supervisor,
)
from nodes.common import Node
from observability.cache import classification_policy, retrieval_policy
from observability.metrics import instrument

NODE_NAMES = NODE_NAME_LIST  # one list of node names: config.permissions.NodeName

type Subgraph = Pregel[Any, Any, Any, Any]
"""A compiled graph a node runs inside it (analyze_technical's)."""

# I/O nodes retry only on what is worth retrying (a busy SQLite file); pure nodes carry no policy.
# Used for an I/O node that config/error-policies.yaml `nodes` leaves out; every policy is built by NodeRetry.
IO_RETRY = NodeRetry(attempts=3, initial_s=0.2, retry_on=("sqlite_busy",)).retry_policy()


def runs_subgraph[F: Callable[..., Any]](subgraph: Subgraph, fn: F) -> F:
    """`fn`, a node that runs the compiled `subgraph` inside it, as a node LangGraph knows runs it.

    LangGraph finds a subgraph called inside a node function by reading that function's own code and closure
    (`find_subgraph_pregel`); the wrappers around a node hide the call, so this outermost function names the
    subgraph itself. Then `get_subgraphs()`, `get_graph(xray=True)` (Studio's xray view), the API's
    `GET /assistants/{id}/subgraphs` and `get_state(subgraphs=True)` see it. It has no `__wrapped__` (the detection
    would read the innermost function's source against the next wrapper's closure) and takes `runtime` by name, as
    LangGraph injects it.
    """

    def node(state: Any, runtime: Any) -> Any:
        _ = subgraph  # named here, in the node's own code, for LangGraph's subgraph detection (see above)
        return fn(state, runtime=runtime)

    return cast(F, node)


def node_retry_policies(settings: Settings) -> dict[str, RetryPolicy]:
    """RetryPolicy per I/O node from config/error-policies.yaml (validated: an unknown node name fails)."""
    return settings.error_policies().node_retry_policies(NODE_NAMES)


def build_supervisor(
    services: Services | ServicesProvider | None = None,
) -> StateGraph[SupportState, Context, InputState, OutputState]:
    """The support graph, uncompiled. `services` may be a Services, a provider, or None (lazy, from env)."""
    if services is None:
        provider: ServicesProvider = get_services
    elif isinstance(services, Services):

        def provider() -> Services:
            return services
    else:
        provider = services

    # Cache keys computed on an event loop use the lazy services only once built (observability.cache._built).
    peek = built_services if services is None else None
    g = StateGraph(SupportState, context_schema=Context, input_schema=InputState, output_schema=OutputState)
    settings = services.settings if isinstance(services, Services) else Settings()
    retries = node_retry_policies(settings)
    cache = settings.observability().cache
    # Deterministic, expensive steps are cached when the graph is compiled with a cache (observability.cache).
    cached = (
        {
            "classify_intent": classification_policy(provider, cache.ttl_s, peek=peek),
            "retrieve_knowledge": retrieval_policy(provider, cache.ttl_s, peek=peek),
        }
        if cache.enabled
        else {}
    )

    def io_retry(name: str) -> RetryPolicy:
        return retries.get(name, IO_RETRY)

    def node(name: str, fn: Callable[..., Any], subgraph: Subgraph | None = None, **kwargs: Any) -> None:
        # Every node is traced, timed and counted, and writes its decision record (observability.metrics); it
        # reports on the `custom` stream what it found (nodes.progress); HITL decisions are audited; its output is
        # checked against the state's declared keys and types (graphs.validation). A node that runs a subgraph is
        # marked so LangGraph sees the subgraph (`runs_subgraph`).
        wrapped = instrument(
            name,
            audited(name, progress.reporting(name, validated(name, fn)), provider),
            ticket=name == "remember",
            starts_ticket=name == "guard_input",
            services=provider,
        )
        if subgraph is not None:
            wrapped = runs_subgraph(subgraph, wrapped)
        g.add_node(name, wrapped, cache_policy=cached.get(name), **kwargs)

    def specialist(
        name: str,
        fn: Node,
        retry: RetryPolicy | None = None,
        *,
        command: bool = False,
        subgraph: Subgraph | None = None,
    ) -> None:
        # Failures (raised on the last attempt, or a tool result not ok) are counted for the supervisor's limits.
        node(name, supervisor.watch(name, fn, retry, command=command), subgraph, retry_policy=retry)

    node("guard_input", guard_input.make(provider))
    node("compress_context", compress_context.make(provider))
    node("classify_intent", classify_intent.make(provider))
    node("supervisor", supervisor.make(provider))
    specialist("retrieve_knowledge", retrieve_knowledge.make(provider), io_retry("retrieve_knowledge"))
    # The technical analyst is a subgraph (triage_log -> match_known_issues) run inside its node; its steps' outputs
    # are checked against its own state and reported on `custom`; it checkpoints into the parent's checkpointer.
    technical = analyze_technical.subgraph(provider)
    specialist("analyze_technical", analyze_technical.make(provider, technical), subgraph=technical)
    specialist("plan_action", plan_action.make(provider), io_retry("plan_action"), command=True)
    node("request_approval", request_approval.make(provider))
    specialist("execute_action", execute_action.make(provider), io_retry("execute_action"))
    node("generate_response", generate_response.make(provider))
    node("review_gate", review_gate.make())
    node("escalate", escalate.make())
    node("guard_output", guard_output.make())
    node("remember", remember.make(provider), retry_policy=io_retry("remember"))

    g.add_edge(START, "guard_input")
    g.add_edge("compress_context", "classify_intent")
    g.add_edge("classify_intent", "supervisor")
    g.add_edge("retrieve_knowledge", "supervisor")
    g.add_edge("analyze_technical", "supervisor")
    g.add_edge("execute_action", "supervisor")
    g.add_edge("generate_response", "review_gate")
    g.add_edge("guard_output", "remember")
    return g
