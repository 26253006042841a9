"""request_approval: the human-in-the-loop gate in front of every write action.

The interrupt speaks Agent Inbox and LangChain v1 at once (`nodes.hitl`); a reviewer approves, edits the arguments,
or refuses (Inbox `response` with a reason or `ignore`; v1 `reject` with an optional message). The graph enforces
the request: only a reviewer's run may answer, only what the request allows is taken, and an edit is validated
against the tool's schema and its preconditions (a dry run) before anything runs. A refused reply asks again with
the reason; the thread stays waiting. There is no side effect here: on resume the node re-runs from the top, and the
write happens in `execute_action`. An action whose workflow says `approval: none`, or a refund within the
auto-approval limit (`needs_human`), passes with a policy record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

from langgraph.runtime import Runtime
from langgraph.types import Command
from pydantic import ValidationError

from config.settings import ApprovalPolicy
from graphs.context import Context, context_of, refund_limit_of
from graphs.services import ServicesProvider
from graphs.state import SupportState
from nodes import hitl
from nodes.common import Node, thread_id, tool_caller, visited
from tools.registry import Caller
from tools.shop import TOOLS, ShopDB, run_tool

NAME: Final = "request_approval"
INBOX: tuple[hitl.Kind, ...] = ("approve", "edit", "respond", "reject")
V1 = ("approve", "edit", "reject")


def needs_human(tool: str, preview: Mapping[str, Any], policy: ApprovalPolicy, ctx: Context) -> bool:
    """Whether a planned write that needs approval waits for a human (False: approved by policy)."""
    if tool in policy.always_human:
        return True
    if tool == "issue_refund" and preview.get("currency", "EUR") == "EUR":
        try:
            amount = float(preview["amount"])
        except (KeyError, TypeError, ValueError):
            return True
        return amount > refund_limit_of(policy.refund_auto_approve_eur, ctx)
    return True


def approval_request(
    action: dict[str, Any], *, intent: str | None, ticket: str, error: str | None = None
) -> dict[str, Any]:
    """The request: the tool and its arguments (no nulls), and the effect the approver agrees to (Markdown)."""
    tool = action["tool"]
    description = (
        f"{action.get('description') or tool}\n\n**Customer wrote:** {_quote(ticket[:500])}\n\n**Intent:** `{intent}`"
    )
    return hitl.request(
        action=tool,
        args=action["args"],
        description=description,
        inbox=INBOX,
        v1=V1,
        args_schema=TOOLS[tool].args_model.model_json_schema() if tool in TOOLS else None,
        error=error,
    )


def make(services: ServicesProvider) -> Node:
    def request_approval(
        state: SupportState, runtime: Runtime[Context]
    ) -> Command[Literal["execute_action", "generate_response", "request_approval"]]:
        action = dict(state.get("action") or {})
        update: dict = {**visited(NAME)}
        if not action.get("tool"):
            raise ValueError("request_approval reached without a planned action")
        if action.get("approval") == "none":
            reason = action.get("approved_by_policy")
            update["approval"] = {"type": "accept", "by": "policy", **({"reason": reason} if reason else {})}
            return Command(goto="execute_action", update=update)

        asked = action.get("request") or state.get("ticket", "")
        req = approval_request(action, intent=state.get("intent"), ticket=asked, error=hitl.error_for(state, NAME))
        checked: dict[str, Any] = {}

        def check(reply: hitl.Reply) -> hitl.Reply:
            if reply.kind == "edit":
                caller = tool_caller(NAME, context_of(runtime), state)
                checked["args"], checked["preview"] = check_edit(services().shop, action, reply.args, caller=caller)
            return reply

        reply = hitl.await_reply(NAME, state, runtime, req, update, check=check)
        if isinstance(reply, Command):
            return reply
        approver = context_of(runtime).approver_id  # who answered, from their own credentials (or the CLI's --as)

        update["hitl"] = hitl.cleared()
        who = {"by": "human", "approver": approver, "via": reply.dialect}
        if reply.kind == "approve":
            update["approval"] = {"type": "accept", **who}
            return Command(goto="execute_action", update=update)
        if reply.kind == "edit":
            from nodes.plan_action import describe, idempotency_key, summary

            tool, args, preview = action["tool"], checked["args"], checked["preview"]
            action.update(
                args=args,
                preview=preview,
                description=describe(tool, args, preview),
                summary=summary(tool, args, preview),
                # Other arguments are another action: a replayed (time-travelled) edit must not reuse the plan's key.
                idempotency_key=idempotency_key(thread_id(), state.get("trace_id", ""), tool, args),
            )
            update.update(action=action, approval={"type": "edit", **who, "args": args})
            return Command(goto="execute_action", update=update)
        # A refusal, with the reviewer's reason when they gave one (told to the customer).
        update.update(
            approval={"type": "response" if reply.kind == "respond" else "ignore", **who, "reason": reply.text},
            status="rejected",
            task={"step": "done", "pending_action": None},
        )
        return Command(goto="generate_response", update=update)

    return request_approval


def validate_edit(action: Mapping[str, Any], args: Any) -> dict[str, Any]:
    """The planned args with a human's edit applied, validated by the tool's schema (no preconditions).

    Agent Inbox sends {"action": ..., "args": {...}}; a bare args dict is accepted too. An argument set to null is
    removed (e.g. `{"amount": null}`: the full refundable amount). Raises ValueError with a one-line reason.
    """
    if isinstance(args, dict) and isinstance(args.get("args"), dict):
        args = args["args"]
    if not isinstance(args, dict):
        raise hitl.ReplyError("an edit must carry the new arguments as a JSON object")
    spec = TOOLS[action["tool"]]
    try:
        return spec.args_model.model_validate({**action["args"], **args}).model_dump(mode="json", exclude_none=True)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
        raise hitl.ReplyError(f"edited {where}: {err['msg']}") from exc


def check_edit(
    shop: ShopDB, action: Mapping[str, Any], args: Any, *, caller: Caller
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(args, preview) of an edited action: the tool's schema, then its preconditions as a read-only dry run.

    The same check the graph enforces and the CLI runs before it resumes; ReplyError says what is wrong.
    """
    new_args = validate_edit(action, args)
    dry = run_tool(shop, action["tool"], new_args, caller=caller, dry_run=True)
    if not dry.ok:
        raise hitl.ReplyError(f"the edited action is not allowed: {dry.error}")
    return new_args, dict((dry.data or {}).get("preview") or {})


def _quote(text: str) -> str:
    return " ".join(text.split()) or "(nothing)"
