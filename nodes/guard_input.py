"""guard_input: the trust boundary. Validates size, screens for prompt injection, redacts PII.

It also starts a new ticket: its trace id, its owner (from the run's identity) and cleared per-ticket state.

An entry point (`guards.intake.admit`: the CLI's `ask`, the served API's run handler) has already redacted the
message and sealed its slots (read from the raw text) for this customer; they are opened here. A message that
did not pass an entry point (a graph invoked directly) has its slots read and its text redacted here, and the
checkpoint serializer (`memory.serde`) never stores its raw text either. Either way, the slots that hold personal
data (`guards.vault.SEALED_SLOTS`: the new e-mail address of an account change, an address, ...) stay sealed in
`entities`; `plan_action` opens them for the tool's arguments.
"""

from __future__ import annotations

from typing import Final, Literal

from langchain_core.messages import HumanMessage
from langgraph.runtime import Runtime
from langgraph.types import Command, Overwrite

from dialogue.slots import extract_slots
from graphs.context import Context, context_of
from graphs.services import ServicesProvider
from graphs.state import SupportState
from guards.injection import guard_for
from guards.intake import PII_KEY, redacted_text
from guards.vault import SealError, owner_of, seal_slots, vault_for
from nodes.common import Node, last_human, text_of
from observability.tracing import current_trace_id, new_trace_id

NAME: Final = "guard_input"

REFUSAL_INJECTION = (
    "I can only help with questions about your orders, deliveries, payments, returns and account. "
    "I can't follow instructions that try to change how I work."
)


def fresh_ticket(trace_id: str) -> dict:
    """Per-ticket keys reset at the start of every customer message."""
    return {
        "trace_id": trace_id,
        "route": Overwrite([NAME]),
        "flags": Overwrite([]),
        "knowledge": Overwrite([]),
        "usage": Overwrite({}),
        "entities": Overwrite({}),
        "intent": None,
        "confidence": 0.0,
        "candidates": [],
        "decision": "escalate",
        "pending_specialists": [],
        "hops": 0,
        "lookups": {},
        "analysis": None,
        "action": None,
        "approval": None,
        "action_result": None,
        "draft": None,
        "draft_id": None,
        "citations": [],
        "review": None,
        "answer": None,
        "status": "in_progress",
        "hitl": Overwrite({}),
        "error": None,
        "cost_usd": 0.0,
    }


def make(services: ServicesProvider) -> Node:
    def guard_input(
        state: SupportState, runtime: Runtime[Context]
    ) -> Command[Literal["compress_context", "generate_response"]]:
        svc = services()
        limits = svc.policy.limits
        # The ticket's trace id was made as this node started (observability.instrument); a fresh one otherwise.
        update = fresh_ticket(current_trace_id() or new_trace_id())
        ctx = context_of(runtime)
        update["owner"] = {"tenant_id": ctx.tenant_id, "user_id": ctx.user_id}
        message = last_human(state.get("messages", []))
        raw = text_of(message).strip() if message else ""
        flags: list[str] = []
        if not raw:
            flags.append("empty_input")
        elif len(raw) > limits.max_input_chars:
            flags.append("input_too_long")
        if flags:
            update.update(flags=Overwrite(flags), status="rejected", ticket="", error=f"rejected input: {flags[0]}")
            return Command(goto="generate_response", update=update)

        vault, owner = vault_for(svc.settings), owner_of(ctx.tenant_id, ctx.user_id)
        admitted = (message.additional_kwargs or {}).get(PII_KEY) if message else None
        if isinstance(admitted, dict):  # redacted and sealed by an entry point
            try:
                entities = vault.unseal(admitted["slots"], owner) if admitted.get("slots") else {}
            except SealError as exc:
                update.update(flags=Overwrite(["sealed_slots_invalid"]), status="rejected", ticket="", error=str(exc))
                return Command(goto="generate_response", update=update)
            found = list(admitted.get("kinds") or [])
        else:
            entities, found = extract_slots(raw).entities(), []
        clean, kinds = redacted_text(raw)
        if kinds and message is not None:  # kinds come from raw, so there is a message
            # Replace the stored message (same id) so the checkpoint keeps only the redacted text.
            kept = message.additional_kwargs
            update["messages"] = [HumanMessage(content=clean, id=message.id, additional_kwargs=kept)]
        if found or kinds:
            flags.append("pii_redacted")
        entities = seal_slots(entities, vault, owner)
        verdict = guard_for(svc).screen(clean)
        if verdict.is_injection:
            flags.append("prompt_injection")
            update.update(
                flags=Overwrite(flags),
                status="rejected",
                ticket=clean,
                error="prompt injection: " + ", ".join(verdict.reasons[:3]),
            )
            return Command(goto="generate_response", update=update)
        update.update(flags=Overwrite(flags), ticket=clean, entities=Overwrite(dict(entities)))
        return Command(goto="compress_context", update=update)

    return guard_input
