"""retrieve_knowledge: the information retriever.

Finds the knowledge-base articles and resolved cases relevant to the ticket (long-term memory,
relevance blended with recency) and runs the read-only shop lookups the workflow allows
(e.g. `get_order` when the ticket names an order). Never writes anything.

When the workflow is about one order and the message gives no number, the order is resolved from the
customer's own orders (dialogue.task.resolve_order: "it", "the second one", "the one I placed
yesterday", "the headphones"); when that leaves several, they become the candidates the answer offers.

Retrieved articles and cases and the read tools' results are screened for indirect prompt injection
(guards.injection.screen_document, cached by content): a flagged article or case is dropped, a flagged tool
result is replaced by an error result, and the ticket is flagged `indirect_injection`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

from langgraph.runtime import Runtime

from dialogue.task import about_failed_payment, is_howto, order_by_item, refers_to_order, resolve_order
from graphs.context import Context, context_of
from graphs.services import ServicesProvider
from graphs.state import SupportState
from guards.injection import Guard, guard_for
from nodes.common import Node, tool_caller, visited
from tools.log_triage import triage
from tools.shop import TOOLS, run_tool

if TYPE_CHECKING:
    from graphs.services import Services
    from memory.knowledge import Hit
    from tools.registry import Caller

NAME: Final = "retrieve_knowledge"

# Write tools whose preconditions need only the order: candidates offered for them are dry-run first.
DRY_RUN_CANDIDATES = ("cancel_order", "issue_refund")
# Read tools and the entities they need; tools without needs run as they are.
TOOL_NEEDS = {"get_order": "order_id", "get_invoice": "order_id", "get_refund_status": "order_id"}


def make(services: ServicesProvider) -> Node:
    def retrieve_knowledge(state: SupportState, runtime: Runtime[Context]) -> dict:
        svc = services()
        ctx = context_of(runtime)
        caller = tool_caller(NAME, ctx, state)
        text = state.get("ticket", "")
        intent = state.get("intent")
        flow = svc.workflows.get(intent or "out_of_scope")
        items: list[dict] = []
        # Only a confident intent narrows the search; an unsure one must not hide the right article.
        confident = intent and intent != "out_of_scope" and state.get("decision") == "auto"
        group = list(state.get("intent_group") or ([intent] if intent else []))
        hits = svc.knowledge.search_knowledge(text, tenant_id=ctx.tenant_id, intents=group if confident else None)
        if confident and not hits:
            hits = svc.knowledge.search_knowledge(text, tenant_id=ctx.tenant_id)
        for hit in hits:
            item = _item(hit, "article")
            # The answer picks its sentences from the whole article, not only from the chunk that matched.
            item["text"] = svc.knowledge.article_text(item["id"], tenant_id=ctx.tenant_id) or item["text"]
            items.append(item)
        for hit in svc.knowledge.search_cases(text, tenant_id=ctx.tenant_id, user_id=ctx.user_id, k=2):
            items.append(_item(hit, "case"))
        guard = guard_for(svc)
        screened = [i for i in items if not guard.screen_document(i["text"]).is_injection]
        flags = ["indirect_injection"] if len(screened) < len(items) else []
        items = [i for i in screened if i["relevance"] >= svc.policy.retrieval.min_relevance] or screened[:1]

        lookups = dict(state.get("lookups") or {})
        entities = dict(state.get("entities", {}))
        update: dict = {**visited(NAME), "knowledge": items}
        task = dict(state.get("task") or {})
        wants_order = flow is not None and (flow.needs_order or refers_to_order(text) or bool(flow.order_statuses))
        fetched: dict[int, Any] = {}  # get_order results already read for this ticket, by order
        if flow is not None and "order_id" not in entities and wants_order:
            listed = run_tool(svc.shop, "list_orders", {}, caller=caller)
            if listed.ok:
                found = resolve_order(
                    text,
                    entities,
                    task=task,
                    orders=listed.data.get("orders", []),
                    statuses=flow.order_statuses,
                    today=svc.shop.now().date(),
                    last_order_id=_last_pinned(state),
                )
                if found.order_id is not None:
                    entities["order_id"] = found.order_id
                    update["entities"] = {"order_id": found.order_id, "order_id_from": found.how}
                    slots = {**(task.get("slots") or {}), "order_id": found.order_id}
                    update["task"] = {"order_id": found.order_id, "candidates": [], "missing": [], "slots": slots}
                elif (
                    not flow.needs_order and len(found.candidates) == 1 and flow.order_statuses
                    and _only_one_meant(text, found.candidates[0], svc, caller, fetched)
                ):
                    # The only order in the statuses this question is about (one failed payment), and the message
                    # is about that failure: that one.
                    entities["order_id"] = found.candidates[0]
                    update["entities"] = {"order_id": found.candidates[0], "order_id_from": "only candidate"}
                    update["task"] = {"order_id": found.candidates[0], "candidates": [], "missing": []}
                elif flow.needs_order and is_howto(text) and not refers_to_order(text) and not task.get("candidates"):
                    pass  # "how do I change an address?": a question to answer, not an order to pick
                elif flow.needs_order:
                    candidates = list(found.candidates)
                    if flow.action in DRY_RUN_CANDIDATES:
                        # Offer only the orders the action could really be done for (its own preconditions).
                        candidates = [
                            c for c in candidates
                            if run_tool(svc.shop, flow.action, {"order_id": c}, caller=caller, dry_run=True).ok
                        ]
                    lookups["list_orders"] = listed.model_dump()
                    update["task"] = {"missing": ["order_id"], "candidates": candidates}
        elif flow is not None and "order_id" not in entities and "get_order" in flow.read_tools:
            # "When will my new headphones get here?": the one order whose items the message names.
            listed = run_tool(svc.shop, "list_orders", {}, caller=caller)
            named = order_by_item(text, listed.data.get("orders", [])) if listed.ok else None
            if named is not None:
                entities["order_id"] = named
                update["entities"] = {"order_id": named, "order_id_from": "described"}
                update["task"] = {"order_id": named, "candidates": [], "missing": []}
        for tool in flow.read_tools if flow else ():
            spec = TOOLS.get(tool)
            if spec is None or spec.permission != "read":
                raise ValueError(f"workflow for {intent!r} lists {tool!r}, which is not a read tool")
            need = TOOL_NEEDS.get(tool)
            if need and need not in entities:
                continue
            if tool == "list_orders" and ("order_id" in entities or "list_orders" in lookups):
                continue  # the order in question is looked up on its own
            args = {need: entities[need]} if need else {}
            if tool == "get_order" and entities["order_id"] in fetched:
                lookups[tool] = fetched[entities["order_id"]]  # read once already, to see which order was meant
                continue
            lookups[tool] = run_tool(svc.shop, tool, args, caller=caller).model_dump()
        others = [int(o) for o in entities.get("order_ids") or [] if int(o) != entities.get("order_id")][:2]
        if others and flow is not None and "get_order" in flow.read_tools:
            # "orders 1008 and 1006": each one is looked up, and they are what "the first one" refers to next.
            lookups["get_order_more"] = [
                run_tool(svc.shop, "get_order", {"order_id": o}, caller=caller).model_dump() for o in others
            ]
            update["task"] = {"order_id": entities["order_id"], "missing": [],
                              "candidates": [entities["order_id"], *others]}
        if "order_id" in entities and "task" not in update:
            update["task"] = {"order_id": entities["order_id"], "missing": [], "candidates": []}
        for name, result in list(lookups.items()):
            if _carries_instructions(result, guard):
                lookups[name] = {"ok": False, "data": {}, "refusal": None,
                                 "error": "tool result withheld: it carries instructions to the assistant"}
                flags = [*flags, "indirect_injection"]
        update["lookups"] = lookups
        if flags:
            update["flags"] = flags
        return update

    return retrieve_knowledge


def _only_one_meant(text: str, order_id: int, svc: Services, caller: Caller, fetched: dict[int, Any]) -> bool:
    """Whether a message that names no order is about the one order in the workflow's statuses (its failed
    payment): it must speak of a payment that failed, not of the site failing at checkout, and any error code it
    reports must be that order's own (read with get_order, kept in `fetched` for the workflow's own lookup)."""
    if not triage(text).error_codes:
        return about_failed_payment(text)
    got = run_tool(svc.shop, "get_order", {"order_id": order_id}, caller=caller)
    fetched[order_id] = got.model_dump()
    payment = (got.data or {}).get("payment") or {} if got.ok else {}
    return about_failed_payment(text, (str(payment["error_code"]),) if payment.get("error_code") else ())


_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?")
"""An ISO date or timestamp (created_at, shipped_at): 20 characters, and never an instruction."""


def _strings(value: object) -> list[str]:
    """The free text in a tool result: strings of 20 characters or more, not timestamps."""
    if isinstance(value, str):
        return [value] if len(value) >= 20 and not _TIMESTAMP.fullmatch(value) else []
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _carries_instructions(result: object, guard: Guard) -> bool:
    """True when the free text in a tool result (notes, names, messages) reads as instructions to the assistant."""
    texts = _strings(result.get("data") if isinstance(result, dict) else result)
    return bool(texts) and guard.screen_document("\n".join(texts)).is_injection


def _last_pinned(state: SupportState) -> int | None:
    """The last order number the customer wrote in this conversation (pinned facts survive summaries)."""
    ids = (state.get("pinned") or {}).get("order_ids") or []
    try:
        return int(ids[-1]) if ids else None
    except ValueError:
        return None


def _item(hit: Hit, kind: str) -> dict:
    meta = dict(getattr(hit, "metadata", {}) or {})
    return {
        "id": getattr(hit, "article_id", None) or hit.id,
        "kind": meta.get("kind", kind) if kind == "article" else kind,
        "title": getattr(hit, "title", "") or meta.get("title", ""),
        "text": hit.text,
        "score": round(float(hit.score), 4),
        "relevance": round(float(hit.relevance), 4),
        "metadata": {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool))},
        "intents": [str(i) for i in meta.get("intents") or []],
    }
