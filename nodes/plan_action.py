"""plan_action: turns the ticket into one concrete, validated write action — but does not run it.

The workflow names the tool; arguments come from the ticket's slots. Missing or invalid arguments,
or an order the customer does not own, end the plan here (the response asks or explains). A valid
plan carries an idempotency key so executing it twice changes the shop once.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from langgraph.runtime import Runtime
from langgraph.types import Command
from pydantic import ValidationError

from graphs.context import Context, context_of
from graphs.services import ServicesProvider
from graphs.state import SupportState
from nodes.common import thread_id, visited
from tools.shop import TOOLS, run_tool

NAME = "plan_action"

DESCRIPTIONS = {
    "cancel_order": "Cancel order {order_id}",
    "issue_refund": "Refund {amount_text} for order {order_id}",
    "update_shipping_address": "Change the shipping address of order {order_id} to: {address}",
    "update_account": "Change the account's {field} to {value}",
    "delete_account": "Delete the customer's account",
    "set_newsletter_subscription": "{subscribe_text} the newsletter",
    "create_ticket": "Open a {priority}-priority support ticket: {subject}",
}


def build_args(tool: str, intent: str, ticket: str, entities: dict[str, Any]) -> dict[str, Any]:
    """Arguments for `tool` from the ticket's slots (only keys that are known)."""
    reason = ticket[:200]
    pick = {k: entities[k] for k in ("order_id", "amount", "address", "field", "value") if k in entities}
    match tool:
        case "cancel_order":
            return {**_only(pick, "order_id"), "reason": reason}
        case "issue_refund":
            return {**_only(pick, "order_id", "amount"), "reason": reason}
        case "update_shipping_address":
            return _only(pick, "order_id", "address")
        case "update_account":
            return _only(pick, "field", "value")
        case "delete_account":
            return {"reason": reason}
        case "set_newsletter_subscription":
            return {"subscribed": entities.get("subscribed", True)}
        case "create_ticket":
            priority = "high" if intent == "complaint" else "normal"
            return {"subject": intent.replace("_", " "), "body": ticket, "priority": priority}
    raise ValueError(f"plan_action has no argument builder for tool {tool!r}")


def _only(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: d[k] for k in keys if k in d}


def describe(tool: str, args: dict[str, Any]) -> str:
    amount = args.get("amount")
    fields = {
        **args,
        "amount_text": f"EUR {amount:.2f}" if isinstance(amount, (int, float)) else "the full paid amount",
        "subscribe_text": "Subscribe to" if args.get("subscribed", True) else "Unsubscribe from",
    }
    return DESCRIPTIONS.get(tool, tool).format_map(_Default(fields))


class _Default(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def idempotency_key(thread_id: str, trace_id: str, tool: str, args: dict[str, Any]) -> str:
    raw = json.dumps([thread_id, trace_id, tool, args], sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def make(services: ServicesProvider):
    def plan_action(
        state: SupportState, runtime: Runtime[Context]
    ) -> Command[Literal["request_approval", "supervisor"]]:
        svc = services()
        ctx = context_of(runtime)
        intent = state.get("intent") or "out_of_scope"
        flow = svc.workflows[intent]
        update: dict = {**visited(NAME)}
        if not flow.action:
            return Command(goto="supervisor", update=update)
        spec = TOOLS.get(flow.action)
        if spec is None or spec.permission == "read":
            raise ValueError(f"workflow for {intent!r} names {flow.action!r}, which is not a write tool")
        entities = state.get("entities", {})
        args = build_args(flow.action, intent, state.get("ticket", ""), entities)
        missing = [r for r in flow.requires if r not in args]
        plan: dict[str, Any] = {"tool": flow.action, "args": args, "missing": missing}
        if not missing:
            try:
                args = spec.args_model.model_validate(args).model_dump(mode="json")
            except ValidationError as exc:
                bad = sorted({str(e["loc"][0]) for e in exc.errors() if e.get("loc")})
                plan.update(missing=bad or ["arguments"], invalid=True)
        if not plan["missing"] and args.get("order_id") is not None:
            check = run_tool(svc.shop, "get_order", {"order_id": args["order_id"]}, user_id=ctx.user_id)
            if not check.ok:
                plan["error"] = check.error
            else:
                update["lookups"] = {**(state.get("lookups") or {}), "get_order": check.model_dump()}
        if plan["missing"] or plan.get("error"):
            update["action"] = plan
            return Command(goto="supervisor", update=update)

        thread = thread_id()
        needs_approval = flow.approval == "required" or spec.permission == "needs_approval"
        plan.update(
            args=args,
            description=describe(flow.action, args),
            approval="required" if needs_approval else "none",
            idempotency_key=idempotency_key(thread, state.get("trace_id", ""), flow.action, args),
        )
        update["action"] = plan
        return Command(goto="request_approval", update=update)

    return plan_action
