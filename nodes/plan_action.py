"""plan_action: turns the ticket into one concrete, validated write action — but does not run it.

The workflow names the tool; arguments come from the task's slots. Missing or invalid arguments end the
plan here (the response asks for exactly what is missing). Then the tool's own preconditions run as a dry
run (`run_tool(..., dry_run=True)`): who owns the order, which statuses allow the change, what is still
refundable, in which currency. A failing precondition becomes an answer that says why and what the customer
can do instead — it never reaches an approval request. A question about whether something is possible
("can I still cancel it?") is answered with what would happen and an offer, not with an approval request.
A valid plan carries a preview of its effect and an idempotency key, so executing it twice changes the shop once.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Final, Literal

from langgraph.runtime import Runtime
from langgraph.types import Command
from pydantic import ValidationError

from dialogue.task import asks_only, is_howto, is_question, named_item
from graphs.context import Context, context_of
from graphs.services import ServicesProvider
from graphs.state import SupportState
from guards.vault import open_slots, owner_of, vault_for
from nodes.common import Node, thread_id, tool_caller, visited
from nodes.request_approval import needs_human
from tools.shop import TOOLS, run_tool

NAME: Final = "plan_action"


def build_args(tool: str, intent: str, ticket: str, entities: dict[str, Any]) -> dict[str, Any]:
    """Arguments for `tool` from the ticket's slots (only keys that are known)."""
    reason = (str(entities.get("request") or "") or ticket)[:200]
    pick: dict[str, Any] = {
        k: entities[k] for k in ("order_id", "amount", "currency", "address", "field", "value") if k in entities
    }
    match tool:
        case "cancel_order":
            return {**_only(pick, "order_id"), "reason": reason}
        case "issue_refund":
            return {**_only(pick, "order_id", "amount", "currency"), "reason": reason}
        case "update_shipping_address":
            return _only(pick, "order_id", "address")
        case "update_account":
            return _only(pick, "field", "value")
        case "delete_account":
            return {"reason": reason}
        case "set_newsletter_subscription":
            # Only what the customer said: "will I still get order emails?" subscribes nobody.
            return _only(entities, "subscribed")
        case "create_ticket":
            priority = "high" if intent == "complaint" else "normal"
            args: dict[str, Any] = {"subject": intent.replace("_", " "), "body": ticket, "priority": priority}
            return {**args, **_only(pick, "order_id")}
    raise ValueError(f"plan_action has no argument builder for tool {tool!r}")


def _only(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: d[k] for k in keys if k in d and d[k] is not None}


def describe(tool: str, args: dict[str, Any], preview: dict[str, Any] | None = None) -> str:
    """The effect, in Markdown, from the dry run's preview (what the approver and the customer are promised)."""
    p = preview or {}
    match tool:
        case "cancel_order":
            items = "; ".join(p.get("items") or [])
            return (
                f"**Cancel order {args.get('order_id')}** ({str(p.get('status', '?')).replace('_', ' ')}): "
                f"{items}; total {p.get('total', '?')}. {_upper_first(str(p.get('money', '')))}."
            )
        case "issue_refund":
            return (
                f"**Refund {p.get('currency', 'EUR')} {float(p.get('amount', 0)):.2f} to the customer's "
                f"{ {'card': 'card', 'paypal': 'PayPal account'}.get(p.get('method', ''), p.get('method', '?'))}** "
                f"for order {args.get('order_id')} ({p.get('currency', 'EUR')} "
                f"{float(p.get('refundable_before', 0)):.2f} still refundable)."
            )
        case "update_shipping_address":
            return (
                f"**Change the delivery address of order {args.get('order_id')}**\n\n"
                f"- old: {p.get('old_address', '?')}\n- new: {p.get('new_address', args.get('address'))}"
            )
        case "update_account":
            field = {"phone": "phone number", "email": "email address"}.get(str(args.get("field")), args.get("field"))
            return f"**Change the account's {field}** from {p.get('old_value')} to {p.get('new_value')}"
        case "delete_account":
            return (
                f"**Delete the customer's account**: erased on {p.get('erase_on', '?')} after a "
                f"{p.get('grace_days', 14)}-day grace period; the newsletter is unsubscribed at once."
            )
        case "set_newsletter_subscription":
            return ("Subscribe to" if args.get("subscribed", True) else "Unsubscribe from") + " the newsletter"
        case "create_ticket":
            return f"Open a {args.get('priority', 'normal')}-priority support ticket: {args.get('subject')}"
    return tool


def summary(tool: str, args: dict[str, Any], preview: dict[str, Any] | None = None) -> str:
    """A few words for the customer: 'cancel order 1008', 'refund EUR 6.00 for order 1004'."""
    p = preview or {}
    match tool:
        case "cancel_order":
            return f"cancel order {args.get('order_id')}"
        case "issue_refund":
            return f"refund {p.get('currency', 'EUR')} {float(p.get('amount', 0)):.2f} for order {args.get('order_id')}"
        case "update_shipping_address":
            return f"change the delivery address of order {args.get('order_id')}"
        case "update_account":
            return f"change your {args.get('field')}"
        case "delete_account":
            return "delete your account"
    return tool.replace("_", " ")


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def idempotency_key(thread_id: str, trace_id: str, tool: str, args: dict[str, Any]) -> str:
    raw = json.dumps([thread_id, trace_id, tool, args], sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def make(services: ServicesProvider) -> Node:
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
        # Personal slots (a new address or e-mail) are sealed in state; the tool's arguments need them opened.
        entities = open_slots(
            state.get("entities", {}), vault_for(svc.settings), owner_of(ctx.tenant_id, ctx.user_id)
        )
        task = dict(state.get("task") or {})
        ticket = state.get("ticket", "")
        args = build_args(flow.action, intent, ticket, entities)
        asked_text = f"{entities.get('request', '')} {ticket}"
        whole = re.search(r"\b(?:full|whole|entire|everything|all of it|complete)\b", asked_text, re.I)
        if flow.action == "issue_refund" and "amount" not in args and not whole:
            # "A refund for my monitor" of a monitor-and-webcam order is the monitor's price, not the whole order.
            order = ((state.get("lookups") or {}).get("get_order") or {}).get("data") or {}
            if order.get("order_id") == args.get("order_id"):
                item = named_item(asked_text, order.get("items") or [])
                if item is not None:
                    args["amount"] = float(item["line_total"])
        missing = [r for r in flow.requires if r not in args]
        if missing and set(missing) == set(flow.requires) and (
            flow.order == "optional" or is_howto(ticket) or ("order_id" not in missing and is_question(ticket))
        ):
            # Nothing of the action was given ("how do I add an address?"): a question to answer, not a task.
            return Command(goto="supervisor", update=update)
        plan: dict[str, Any] = {
            "tool": flow.action,
            "args": args,
            "missing": missing,
            "request": str(entities.get("request") or ticket)[:500],  # what the customer asked, for the approver
        }
        if not missing:
            try:
                args = spec.args_model.model_validate(args).model_dump(mode="json", exclude_none=True)
            except ValidationError as exc:
                bad = sorted({str(e["loc"][0]) for e in exc.errors() if e.get("loc")})
                plan.update(missing=bad or ["arguments"], invalid=True)
        if plan["missing"]:
            update["action"] = plan
            update["task"] = {"missing": plan["missing"], "step": "collecting"}
            return Command(goto="supervisor", update=update)

        dry = run_tool(svc.shop, flow.action, args, caller=tool_caller(NAME, ctx, state), dry_run=True)
        plan["args"] = args
        if not dry.ok:
            # The policy says no: the customer hears why and what they can do; nobody is asked to approve.
            plan.update(error=dry.error, refused=dry.refusal.model_dump() if dry.refusal else None)
            update["action"] = plan
            update["task"] = {"step": "answered", "missing": []}
            return Command(goto="supervisor", update=update)
        preview = dry.data.get("preview", {})
        plan.update(
            preview=preview,
            description=describe(flow.action, args, preview),
            summary=summary(flow.action, args, preview),
        )
        if asks_only(ticket) and task.get("step") != "confirming":
            # "Can I still cancel it?" asks whether, not to do it: say what would happen and offer to go ahead.
            plan["offer"] = True
            update["action"] = plan
            update["task"] = {"step": "confirming", "missing": [], "asked": ["confirm"]}
            return Command(goto="supervisor", update=update)

        needs_approval = flow.approval == "required" or spec.permission == "needs_approval"
        if needs_approval and not needs_human(flow.action, preview, svc.policy.approval, ctx):
            # Within the configured (and the assistant's) auto-approval limit: approved by policy, on record.
            needs_approval = False
            plan["approved_by_policy"] = "within the auto-approval limit (config/policy.yaml approval)"
        plan.update(
            approval="required" if needs_approval else "none",
            idempotency_key=idempotency_key(thread_id(), state.get("trace_id", ""), flow.action, args),
        )
        earlier = task.get("pending_action")
        if earlier and earlier.get("idempotency_key") != plan["idempotency_key"]:
            plan["replaces"] = earlier.get("summary") or earlier.get("tool")
        update["action"] = plan
        if needs_approval:
            update["status"] = "awaiting_approval"
            update["task"] = {"step": "awaiting_approval", "missing": [], "pending_action": plan}
        else:
            update["task"] = {"step": "answered", "missing": [], "pending_action": None}
        return Command(goto="request_approval", update=update)

    return plan_action
