"""request_approval: the human-in-the-loop gate in front of every write action.

Its interrupt payload follows the Agent Inbox schema (`action_request`, `config`, `description`) and
it accepts Agent Inbox responses: accept, edit (new args), response (a refusal with a reason) or
ignore. It has no side effect: on resume it re-runs from the top, and the write happens in
`execute_action`. Low-impact actions whose workflow says `approval: none` pass with a policy record.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt
from pydantic import BaseModel, ConfigDict, ValidationError

from graphs.context import Context, context_of
from graphs.services import ServicesProvider
from graphs.state import SupportState
from nodes.common import tool_caller, visited
from tools.shop import TOOLS, run_tool

NAME = "request_approval"


class HumanResponse(BaseModel):
    """An Agent Inbox response."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["accept", "edit", "response", "ignore"]
    args: Any = None


def parse_response(value: Any) -> HumanResponse:
    """Accept a response dict, or the Agent Inbox's list of one response."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    return HumanResponse.model_validate(value)


def approval_request(action: dict[str, Any], *, intent: str | None, ticket: str) -> dict[str, Any]:
    """Agent Inbox payload: the tool and its arguments (no nulls), and the effect the approver agrees to."""
    args = {k: v for k, v in action["args"].items() if v is not None}
    return {
        "action_request": {"action": action["tool"], "args": args},
        "config": {"allow_accept": True, "allow_edit": True, "allow_respond": True, "allow_ignore": True},
        "description": f"{action['description']}\n\nCustomer wrote: {ticket[:500]}\n\nIntent: {intent}",
    }


def make(services: ServicesProvider):
    def request_approval(
        state: SupportState, runtime: Runtime[Context]
    ) -> Command[Literal["execute_action", "generate_response"]]:
        action = dict(state.get("action") or {})
        update: dict = {**visited(NAME)}
        if not action.get("tool"):
            raise ValueError("request_approval reached without a planned action")
        if action.get("approval") == "none":
            update["approval"] = {"type": "accept", "by": "policy"}
            return Command(goto="execute_action", update=update)

        asked = action.get("request") or state.get("ticket", "")
        raw = interrupt(approval_request(action, intent=state.get("intent"), ticket=asked))
        approver = context_of(runtime).approver_id  # who answered, from their own credentials (or the CLI's --as)
        try:
            response = parse_response(raw)
        except ValidationError as exc:
            # A malformed answer never executes anything: it counts as a refusal, with the reason kept.
            update.update(
                approval={"type": "invalid", "by": "human", "approver": approver, "reason": exc.errors()[0]["msg"]},
                status="rejected",
                flags=["invalid_approval_response"],
                task={"step": "done", "pending_action": None},
            )
            return Command(goto="generate_response", update=update)

        if response.type == "accept":
            update["approval"] = {"type": "accept", "by": "human", "approver": approver}
            return Command(goto="execute_action", update=update)
        if response.type == "edit":
            try:
                args = validate_edit(action, response.args)
                # The edited action must pass the same preconditions as the planned one (read-only dry run).
                dry = run_tool(
                    services().shop, action["tool"], args, caller=tool_caller(NAME, context_of(runtime), state),
                    dry_run=True,
                )
                if not dry.ok:
                    raise ValueError(f"the edited action is not allowed: {dry.error}")
            except ValueError as exc:
                update.update(
                    approval={"type": "invalid", "by": "human", "approver": approver, "reason": str(exc)},
                    status="rejected",
                    flags=["invalid_approval_response"],
                    task={"step": "done", "pending_action": None},
                )
                return Command(goto="generate_response", update=update)
            from nodes.plan_action import describe

            preview = dry.data.get("preview", {})
            action.update(args=args, preview=preview, description=describe(action["tool"], args, preview))
            update.update(action=action, approval={"type": "edit", "by": "human", "approver": approver, "args": args})
            return Command(goto="execute_action", update=update)
        reason = str(response.args) if response.type == "response" and response.args else ""
        update.update(
            approval={"type": response.type, "by": "human", "approver": approver, "reason": reason},
            status="rejected",
            task={"step": "done", "pending_action": None},
        )
        return Command(goto="generate_response", update=update)

    return request_approval


def validate_edit(action: dict[str, Any], args: Any) -> dict[str, Any]:
    """The planned args with a human's edit applied, validated by the tool's schema.

    Agent Inbox sends {"action": ..., "args": {...}}; a bare args dict is accepted too.
    Raises ValueError with a one-line reason when the edit is unusable.
    """
    if isinstance(args, dict) and isinstance(args.get("args"), dict):
        args = args["args"]
    if not isinstance(args, dict):
        raise ValueError("an edit must carry the new arguments as a JSON object")
    spec = TOOLS[action["tool"]]
    try:
        return spec.args_model.model_validate({**action["args"], **args}).model_dump(mode="json")
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
        raise ValueError(f"edited {where}: {err['msg']}") from exc
