"""supervisor: deterministic routing from config/workflows.yaml.

For the ticket's intent the workflow names the specialists to run, in order. The supervisor sends
the ticket to the next one (fanning out with Send when retrieval and technical analysis are both
due), counts hops against the budget, and hands over to the response generator when the workflow is
done. Low confidence goes straight to a human. It never guesses: an unknown intent or specialist is
an error, not a default route.
"""

from __future__ import annotations

from typing import Literal

from langgraph.runtime import Runtime
from langgraph.types import Command, Send

from graphs.context import Context
from graphs.services import ServicesProvider
from graphs.state import SupportState
from nodes.common import visited

NAME = "supervisor"

Destination = Literal["retrieve_knowledge", "analyze_technical", "plan_action", "escalate", "generate_response"]
PARALLEL = ("retrieve_knowledge", "analyze_technical")


def make(services: ServicesProvider):
    def supervisor(state: SupportState, runtime: Runtime[Context]) -> Command[Destination]:
        svc = services()
        hops = state.get("hops", 0) + 1
        update: dict = {**visited(NAME), "hops": hops}
        if hops > svc.policy.limits.max_hops:
            update.update(error="hop budget exhausted", decision="escalate")
            return Command(goto="escalate", update=update)

        intent = state.get("intent") or "out_of_scope"
        if intent not in svc.workflows:
            raise ValueError(f"no workflow for intent {intent!r}; add it to config/workflows.yaml")
        if hops == 1:
            flow = svc.workflows[intent]
            if {"task_dropped", "task_ack"} & set(state.get("flags") or []):
                # "Never mind" / "ok, thanks": nothing to look up or do; the response says what was dropped or
                # that the approval still stands.
                pending = []
            elif state.get("decision") == "escalate":
                # Too unsure to act: gather knowledge for the human, then hand over.
                pending = ["retrieve_knowledge", "escalate"]
            else:
                pending = list(flow.specialists)
                if flow.escalate and "escalate" not in pending:
                    pending.append("escalate")
        else:
            pending = list(state.get("pending_specialists", []))

        if not pending:
            update["pending_specialists"] = []
            return Command(goto="generate_response", update=update)
        if pending[:2] == list(PARALLEL) or pending[:2] == list(reversed(PARALLEL)):
            update["pending_specialists"] = pending[2:]
            return Command(goto=[Send(p, {**state, **update}) for p in pending[:2]], update=update)
        nxt = pending[0]
        if nxt not in ("retrieve_knowledge", "analyze_technical", "plan_action", "escalate"):
            raise ValueError(f"unknown specialist {nxt!r} in workflow for {intent!r}")
        update["pending_specialists"] = pending[1:]
        return Command(goto=nxt, update=update)

    return supervisor
