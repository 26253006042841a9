"""One human-in-the-loop protocol for every interrupt node (request_approval, review_gate, escalate).

A request speaks both dialects at once, so every client can show it and answer it:

- Agent Inbox's HumanInterrupt: `action_request` {action, args}, `config` {allow_accept, allow_edit,
  allow_respond, allow_ignore}, `description` (Markdown);
- LangChain v1's HITLRequest (`HumanInTheLoopMiddleware`, read by the Agent Chat UI): `action_requests`
  [{name, args, description}] (plus `arguments`, the copy of `args` the Agent Inbox reads) and
  `review_configs` [{action_name, allowed_decisions, args_schema?}].

The payload holds no null anywhere (unset arguments are left out: Agent Inbox's detail view cannot render a
null argument). A reply comes in either dialect:

| meaning | Agent Inbox                            | LangChain v1 (`{"decisions": [decision]}`)                |
|---------|----------------------------------------|-----------------------------------------------------------|
| approve | `{"type": "accept"}`                   | `{"type": "approve"}`                                     |
| edit    | `{"type": "edit", "args": {...}}`      | `{"type": "edit", "edited_action": {"name", "args"}}`     |
| respond | `{"type": "response", "args": "text"}` | `{"type": "respond", "message": "text"}`                  |
| reject  | `{"type": "ignore"}`                   | `{"type": "reject", "message": "why"}` (message optional) |

(Agent Inbox also sends a list of one response.) `parse_reply` checks the reply against the request it answers:
a type the request does not allow in that dialect (`config` flag false, or not in `allowed_decisions`) is refused,
as is anything malformed or unknown, and so is a reply from a run whose role is not a human reviewer
(`agent`/`admin`). A refused reply never decides anything: the node asks again (`ask_again`), with the reason in
the new request (`error`, and at the top of the description), and the thread stays waiting. Asking again is a
new run of the node (a Command back to itself), so a refused reply is never replayed and judged again later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from langgraph.types import Command, Overwrite, interrupt
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from auth.identity import STAFF
from graphs.context import context_of
from guards.text import well_formed

Kind = Literal["approve", "edit", "respond", "reject"]
_V1_KINDS: dict[str, Kind] = {"approve": "approve", "reject": "reject", "respond": "respond"}  # v1 decision -> kind
KINDS: tuple[Kind, ...] = ("approve", "edit", "respond", "reject")

INBOX_TYPE: dict[str, Kind] = {"accept": "approve", "edit": "edit", "response": "respond", "ignore": "reject"}
INBOX_FLAG: dict[str, str] = {
    "accept": "allow_accept",
    "edit": "allow_edit",
    "response": "allow_respond",
    "ignore": "allow_ignore",
}
FLAG_OF_KIND: dict[Kind, str] = {INBOX_TYPE[t]: flag for t, flag in INBOX_FLAG.items()}
V1_TYPES = ("approve", "edit", "reject", "respond")


class ReplyError(ValueError):
    """A reply the graph refuses: the node asks again with this message."""


@dataclass(frozen=True)
class Reply:
    """A human's answer, whatever the dialect: what they decided and what they sent with it."""

    kind: Kind
    dialect: Literal["inbox", "v1"]
    type: str  # the type as sent: accept | edit | response | ignore | approve | reject | respond
    args: dict[str, Any] | None = None  # edit: the new arguments
    text: str = ""  # respond: the text; reject: the reason (may be empty)


# ---------------------------------------------------------------- request


def drop_nulls(value: Any) -> Any:
    """`value` without None anywhere (dict entries whose value is None are left out; lists keep their other items)."""
    if isinstance(value, Mapping):
        return {str(k): drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [drop_nulls(v) for v in value if v is not None]
    return value


def request(
    *,
    action: str,
    args: Mapping[str, Any],
    description: str,
    inbox: Iterable[Kind],
    v1: Iterable[str],
    args_schema: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """The interrupt payload in both dialects. `inbox` are the kinds the Agent Inbox flags allow, `v1` the
    LangChain decision types; `error` is why the previous reply was refused (shown first)."""
    allowed = set(inbox)
    decisions = list(dict.fromkeys(v1))
    unknown = (allowed - set(KINDS)) | (set(decisions) - set(V1_TYPES))
    if unknown:
        raise ValueError(f"unknown reply kinds {sorted(unknown)}")
    clean = drop_nulls(dict(args))
    text = f"**Your last answer was refused:** {error}\n\n{description}" if error else description
    review: dict[str, Any] = {"action_name": action, "allowed_decisions": decisions}
    if args_schema is not None and "edit" in decisions:
        review["args_schema"] = drop_nulls(args_schema)
    payload: dict[str, Any] = {
        "action_request": {"action": action, "args": clean},
        "config": {flag: kind in allowed for kind, flag in FLAG_OF_KIND.items()},
        "description": text,
        # `arguments` mirrors `args` for the Agent Inbox, whose HITL reader takes `arguments` (agent-inbox
        # f38301b, contexts/utils.ts normalizeInterrupt): without it the Inbox shows no fields to edit.
        "action_requests": [{"name": action, "args": clean, "arguments": clean, "description": text}],
        "review_configs": [review],
    }
    if error:
        payload["error"] = error
    return payload


def error_for(state: Mapping[str, Any], node: str) -> str | None:
    """Why the last reply to `node` was refused, when the thread is asking again."""
    last = state.get("hitl") or {}
    return str(last["error"]) if last.get("node") == node and last.get("error") else None


def ask_again(node: str, state: Mapping[str, Any], error: ReplyError | str, update: dict[str, Any]) -> Command:
    """Refuse a reply: run `node` again (a fresh interrupt) with the reason; nothing else changes."""
    last = state.get("hitl") or {}
    attempts = int(last.get("attempts", 0)) + 1 if last.get("node") == node else 1
    record = {"node": node, "error": str(error), "attempts": attempts}
    return Command(goto=node, update={**update, "hitl": Overwrite(record)})


def await_reply(
    node: str,
    state: Mapping[str, Any],
    runtime: Any,
    req: Mapping[str, Any],
    update: dict[str, Any],
    check: Callable[[Reply], Reply] | None = None,
) -> Reply | Command:
    """Interrupt with `req` and take the answer: a human reviewer's reply, checked against `req` (and by `check`,
    which raises ReplyError for what the node refuses), or the Command that asks again (`ask_again`)."""
    raw = interrupt(req)
    try:
        require_reviewer(context_of(runtime).role)
        reply = parse_reply(raw, req)
        return check(reply) if check is not None else reply
    except ReplyError as exc:
        return ask_again(node, state, exc, update)


def cleared() -> Overwrite:
    """The `hitl` update of a node that took a reply: no refusal outstanding."""
    return Overwrite({})


# ---------------------------------------------------------------- reply


class _InboxResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["accept", "edit", "response", "ignore"]
    args: None | str | dict[str, Any] = None


class _EditedAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    args: dict[str, Any]


class _Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["approve", "edit", "reject", "respond"]
    edited_action: _EditedAction | None = None
    message: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> _Decision:
        if self.type == "edit" and self.edited_action is None:
            raise ValueError("an edit decision needs edited_action {name, args}")
        if self.type != "edit" and self.edited_action is not None:
            raise ValueError(f"a {self.type} decision takes no edited_action")
        if self.type == "approve" and self.message:
            raise ValueError("an approve decision takes no message")
        return self


class _Decisions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decisions: list[_Decision]


def require_reviewer(role: str) -> None:
    """Only a human reviewer answers an interrupt (also enforced by the served API's auth)."""
    if role not in STAFF:
        raise ReplyError(f"only a human reviewer (role agent or admin) may answer; this run acts as role {role!r}")


def parse_reply(raw: Any, req: Mapping[str, Any]) -> Reply:
    """The reply `raw` to request `req`, checked against what `req` allows; ReplyError otherwise."""
    if isinstance(raw, list):
        if len(raw) != 1:
            raise ReplyError(f"send exactly one response (an Agent Inbox list holds one); got a list of {len(raw)}")
        raw = raw[0]
    if not isinstance(raw, Mapping):
        raise ReplyError(
            f"unknown reply {_brief(raw)}: send an Agent Inbox response {{\"type\": \"accept\"|\"edit\"|\"response\"|"
            "\"ignore\", \"args\": ...} or LangChain decisions {\"decisions\": [{\"type\": \"approve\"|\"edit\"|"
            "\"reject\", ...}]}"
        )
    if "decisions" in raw and "type" in raw:
        raise ReplyError("a reply is either an Agent Inbox response (type) or LangChain decisions, not both")
    if "decisions" in raw:
        return _v1(raw, req)
    if "type" in raw:
        return _inbox(raw, req)
    raise ReplyError(
        f"unknown reply with keys {sorted(map(str, raw))}: expected 'type' (Agent Inbox) or 'decisions' (LangChain)"
    )


def _inbox(raw: Mapping[str, Any], req: Mapping[str, Any]) -> Reply:
    try:
        msg = _InboxResponse.model_validate(dict(raw))
    except ValidationError as exc:
        raise ReplyError(f"malformed Agent Inbox response: {_first(exc)}") from None
    config = req.get("config") or {}
    if not config.get(INBOX_FLAG[msg.type]):
        allowed = [t for t, flag in INBOX_FLAG.items() if config.get(flag)]
        raise ReplyError(
            f"this request does not allow {msg.type!r} ({INBOX_FLAG[msg.type]} is false); allowed: {', '.join(allowed)}"
        )
    kind = INBOX_TYPE[msg.type]
    action = (req.get("action_request") or {}).get("action")
    if kind == "edit":
        args = msg.args
        if isinstance(args, dict) and isinstance(args.get("args"), dict):  # an ActionRequest {action, args}
            if args.get("action") not in (None, action):
                raise ReplyError(f"an edit cannot change the action ({action!r} to {args.get('action')!r})")
            args = args["args"]
        if not isinstance(args, dict):
            raise ReplyError("an edit must carry the new arguments as a JSON object (args)")
        return Reply("edit", "inbox", msg.type, args=dict(args))
    if kind == "respond":
        if not isinstance(msg.args, str) or not msg.args.strip():
            raise ReplyError("a response must carry its text as a non-empty string (args)")
        return Reply("respond", "inbox", msg.type, text=well_formed(msg.args.strip()))
    return Reply(kind, "inbox", msg.type)


def _v1(raw: Mapping[str, Any], req: Mapping[str, Any]) -> Reply:
    try:
        msg = _Decisions.model_validate(dict(raw))
    except ValidationError as exc:
        raise ReplyError(f"malformed decisions: {_first(exc)}") from None
    actions = req.get("action_requests") or []
    if len(msg.decisions) != len(actions):
        raise ReplyError(f"send {len(actions)} decision(s), one per action request; got {len(msg.decisions)}")
    (decision,) = msg.decisions
    review = (req.get("review_configs") or [{}])[0]
    allowed = list(review.get("allowed_decisions") or [])
    if decision.type not in allowed:
        raise ReplyError(f"this request does not allow the decision {decision.type!r}; allowed: {', '.join(allowed)}")
    if decision.type == "edit":
        edited = decision.edited_action
        assert edited is not None  # checked by _Decision
        if edited.name != review.get("action_name"):
            raise ReplyError(f"an edit cannot change the action ({review.get('action_name')!r} to {edited.name!r})")
        return Reply("edit", "v1", "edit", args=dict(edited.args))
    text = well_formed((decision.message or "").strip())
    if decision.type == "respond" and not text:
        raise ReplyError("a respond decision must carry its text as a non-empty message")
    kind = _V1_KINDS[decision.type]
    return Reply(kind, "v1", decision.type, text=text)


def _first(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"{where}: {err['msg']}" if where else err["msg"]


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
