"""Answer-quality eval: multi-turn conversations with the seeded shop, scored turn by turn.

Every conversation of `answers_suite.yaml` runs through the real graph, offline (no language model), on
its own thread and a freshly reseeded shop, the way a client uses it: `graphs.tickets.ask` for a customer message
and `graphs.tickets.resume` for the human's answer to an interrupt. A customer message sent while the thread waits
for an approval or a human goes straight to the graph (as a chat channel would), so the suite can check what
happens to the waiting request; a waiting review is accepted first (the reviewer acts before the customer
reads anything).

Each turn is scored on status, intent, the approval request (tool and an args subset), the facts the
answer must contain and the text it must not contain. The report gives:

- first_response_accuracy: share of conversations whose every turn passes;
- turn_accuracy: share of turns that pass;
- wrong_action_proposals: turns that raised an approval request the expectation rules out (none expected,
  another tool, or other args);
- unsupported_claims: turns flagged `unsupported_claim`, or whose answer states an order number, amount or
  tracking number found neither in the suite's facts for that conversation nor in the conversation itself
  (reported apart; it does not fail a turn).

    python app.py eval answers [--json] [--limit N] [--data-dir SEEDED_DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

SUITE = Path(__file__).with_name("answers_suite.yaml")
REPORTS = Path(__file__).with_name("reports")
TENANT = "default"
Status = Literal["completed", "awaiting_approval", "awaiting_review", "escalated", "rejected"]
# Interrupts that are not write actions: a review of the draft and a hand-over to a person.
NOT_ACTIONS = {"review_response", "handoff_to_human"}


# ------------------------------------------------------------------------------------------ suite schema
class Resume(BaseModel):
    """The human's answer to the interrupt the thread waits on (Agent Inbox response)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["accept", "edit", "response", "ignore"]
    args: Any = None


class Expectation(BaseModel):
    """What one turn must produce. `intent` is checked only when given (`null` means: no intent)."""

    model_config = ConfigDict(extra="forbid")
    status: Status
    intent: str | list[str] | None = None
    action: str | None
    args: dict[str, Any] | None = None
    must: list[str]
    must_not: list[str]
    max_sentences: int | None = Field(None, ge=1)
    facts: list[str] = []

    @model_validator(mode="after")
    def _args_with_action(self) -> Expectation:
        if self.action is not None and self.args is None:
            raise ValueError(f"action {self.action!r} needs `args` (a subset, {{}} for none)")
        if self.action is None and self.args:
            raise ValueError("`args` without an action")
        return self

    @property
    def checks_intent(self) -> bool:
        return "intent" in self.model_fields_set


class Alternative(BaseModel):
    """Another acceptable outcome, merged over the turn's own expectation."""

    model_config = ConfigDict(extra="forbid")
    status: Status | None = None
    intent: str | list[str] | None = None
    action: str | None = None
    args: dict[str, Any] | None = None
    must: list[str] | None = None
    must_not: list[str] | None = None
    max_sentences: int | None = None


class Turn(Expectation):
    say: str | None = None
    resume: Resume | None = None
    user: str | None = None
    thread: str | None = None
    alternatives: list[Alternative] = Field(default_factory=list, alias="or")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _one_input(self) -> Turn:
        if (self.say is None) == (self.resume is None):
            raise ValueError("a turn has exactly one of `say` and `resume`")
        return self

    def expectations(self) -> list[Expectation]:
        """The turn's own expectation, then each alternative merged over it."""
        base = Expectation.model_validate(
            {k: getattr(self, k) for k in Expectation.model_fields if k in self.model_fields_set or k != "intent"}
        )
        out = [base]
        for alt in self.alternatives:
            data = base.model_dump(exclude_unset=True) | alt.model_dump(exclude_unset=True)
            if "action" in alt.model_fields_set and alt.action is None:
                data.pop("args", None)
            out.append(Expectation.model_validate(data))
        return out


class Conversation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    category: str
    user: str = "demo"
    orders: list[int] = []
    turns: list[Turn] = Field(min_length=1)

    @model_validator(mode="after")
    def _starts_with_say(self) -> Conversation:
        if self.turns[0].say is None:
            raise ValueError(f"conversation {self.id} must start with a customer message")
        return self


class OrderFacts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer: str
    status: str
    total: float
    payment: str
    placed: int
    delivered: int | None = None
    eta: int | None = None
    carrier: str | None = None
    tracking: str | None = None
    items: dict[str, float]
    refunded: float | None = None


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int
    orders: dict[int, OrderFacts]
    missing_orders: list[int] = []
    policy_amounts: list[float] = []
    always_must_not: list[str] = []
    conversations: list[Conversation]

    @model_validator(mode="after")
    def _unique_ids(self) -> Suite:
        seen = Counter(c.id for c in self.conversations)
        dupes = [k for k, n in seen.items() if n > 1]
        if dupes:
            raise ValueError(f"duplicate conversation ids: {dupes}")
        return self


def load_suite(path: Path = SUITE) -> Suite:
    return Suite.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


# ------------------------------------------------------------------------------------------ patterns
MONTHS = ("January February March April May June July August September October November December").split()
PLACEHOLDER = re.compile(r"\{(d[+-]\d+|eur:\d+(?:\.\d{1,2})?|cand:\d+)\}")
GENERIC_WORDS = {"with", "inch", "ml"}


def date_pattern(day: date) -> str:
    """A date in the usual formats: 2026-12-03, 3 December (2026), December 3rd, 03/12/2026, 3.12."""
    month, mon = MONTHS[day.month - 1], MONTHS[day.month - 1][:3]
    d = str(day.day)
    forms = [
        day.isoformat(),
        rf"{d}(?:st|nd|rd|th)?\.? (?:{month}|{mon}\.?)",
        rf"(?:{month}|{mon}\.?) {d}(?:st|nd|rd|th)?\b",
        rf"0?{d}[./-]{day.month:02d}\b",
        rf"0?{d}[./-]{day.month}\b",
    ]
    return r"(?<!\d)(?:" + "|".join(forms) + ")"


def eur_pattern(value: str) -> str:
    """An amount in euros: EUR 129.80, €129.80, EUR 129,80, 129.80 EUR, 129.80 euros (cents optional at .00)."""
    amount = Decimal(value).quantize(Decimal("0.01"))
    whole, cents = f"{amount:.2f}".split(".")
    grouped = f"{int(whole):,}".replace(",", "[,.]?")
    num = rf"{grouped}(?:[.,]{cents})" + ("?" if cents == "00" else "")
    return rf"(?:(?:EUR|€)\s?{num}(?!\d|[.,]\d)|(?<![\d.,]){num}\s?(?:EUR|€|euros?)\b)"


def candidate_pattern(order_id: int, facts: OrderFacts | None) -> str:
    """An order offered as a candidate: its number and, in the same sentence, its status or one of its items
    ("1010 (pending, placed yesterday)", "the keyboard and mouse (1008)")."""
    if facts is None:
        return rf"\b{order_id}\b"
    words = {facts.status, facts.status.replace("_", " ")}
    for name in facts.items:
        words |= {w.lower() for w in re.findall(r"[A-Za-z]{4,}", name) if w.lower() not in GENERIC_WORDS}
    near = "|".join(sorted(map(re.escape, words)))
    return rf"(?:\b{order_id}\b[^.?!\n]{{0,60}}?(?:{near})|(?:{near})[^.?!\n]{{0,60}}?\b{order_id}\b)"


class Matcher:
    """Compiles must/must_not items: `re:REGEX` or a literal substring, both with placeholders, case-insensitive.

    Placeholders: {d+N} a date N days after the seed day; {eur:X} an amount in euros; {cand:ID} an order
    offered as a candidate (number plus its status or an item nearby).
    """

    def __init__(self, anchor: date, orders: dict[int, OrderFacts] | None = None) -> None:
        self.anchor, self.orders = anchor, orders or {}
        self._cache: dict[str, re.Pattern[str]] = {}

    def expand(self, text: str) -> str:
        def sub(m: re.Match[str]) -> str:
            kind, _, value = m.group(1).partition(":")
            if kind == "eur":
                return eur_pattern(value)
            if kind == "cand":
                return candidate_pattern(int(value), self.orders.get(int(value)))
            return date_pattern(self.anchor + timedelta(days=int(m.group(1)[1:])))

        return PLACEHOLDER.sub(sub, text)

    def compile(self, item: str) -> re.Pattern[str]:
        if item not in self._cache:
            if item.startswith("re:"):
                pattern = self.expand(item[3:])
            else:
                parts, pos = [], 0
                for m in PLACEHOLDER.finditer(item):
                    parts += [re.escape(item[pos : m.start()]), self.expand(m.group(0))]
                    pos = m.end()
                pattern = "".join(parts) + re.escape(item[pos:])
            self._cache[item] = re.compile(pattern, re.IGNORECASE)
        return self._cache[item]

    def found(self, item: str, text: str) -> bool:
        return self.compile(item).search(text) is not None


def count_sentences(text: str) -> int:
    text = re.sub(r"\[kb-[^\]]*\]", "", text)
    text = re.sub(r"(?<=\d)[.,](?=\d)", "", text)
    text = re.sub(r"\b(?:e\.g|i\.e|etc|approx|no)\.", "", text, flags=re.IGNORECASE)
    return len([s for s in re.split(r"[.!?]+(?:\s+|$)", text) if s.strip()])


# ------------------------------------------------------------------------------------------ claims
ORDER_ID_RE = re.compile(r"\border\s*(?:no\.?|number|#)?\s*#?(\d{3,9})\b|\b(10\d\d)\b", re.IGNORECASE)
POSTCODE_TAIL = re.compile(r"\s?[A-Z]{2}\b")  # "1015 CJ": a Dutch postcode, not order 1015
AMOUNT_RE = re.compile(
    r"(?:EUR|€)\s?(\d{1,3}(?:[,.]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?)"
    r"|(?<![\d.,])(\d+(?:[.,]\d{1,2})?)\s?(?:EUR|€|euros?)\b",
    re.IGNORECASE,
)
TRACKING_RE = re.compile(r"\b(?=[A-Z0-9]*\d)(?=[A-Z0-9]*[A-Z])[A-Z0-9]{10,}\b")


def parse_amount(text: str) -> float:
    """'1,500' and '1.500,00' are thousands; '12,50' and '12.50' are cents."""
    m = re.fullmatch(r"(\d{1,3}(?:[,.]\d{3})+)(?:[.,](\d{1,2}))?", text)
    if m:
        return float(re.sub(r"[,.]", "", m.group(1)) + (f".{m.group(2)}" if m.group(2) else ""))
    return float(text.replace(",", "."))


def order_ids_in(text: str) -> set[int]:
    """Order numbers a text states: 'order 1099', '#1006', or a bare 10xx that is not a postcode."""
    ids = set()
    for m in ORDER_ID_RE.finditer(text):
        raw = m.group(1) or m.group(2)
        if m.group(2) and POSTCODE_TAIL.match(text, m.end()):
            continue
        ids.add(int(raw))
    return ids


def claims_in(text: str) -> dict[str, set[Any]]:
    """Order ids, amounts (rounded to cents) and tracking numbers stated in a text."""
    amounts = {round(parse_amount(m.group(1) or m.group(2)), 2) for m in AMOUNT_RE.finditer(text)}
    return {"order": order_ids_in(text), "amount": amounts, "tracking": set(TRACKING_RE.findall(text))}


def order_fact_values(order_id: int, facts: OrderFacts) -> dict[str, set[Any]]:
    """What an answer may state about one order: its number, amounts (items, total, VAT) and tracking."""
    total = Decimal(str(facts.total))
    net = (total / Decimal("1.21")).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    amounts = {float(total), float(net), float(total - net)}
    subtotal = Decimal(0)
    for name, price in facts.items.items():
        qty = int(m.group(1)) if (m := re.search(r" x (\d+)$", name)) else 1
        amounts |= {price, round(price * qty, 2)}
        subtotal += Decimal(str(price)) * qty
    amounts |= {float(subtotal), float(total - subtotal)}
    if facts.refunded:
        amounts.add(facts.refunded)
    return {"order": {order_id}, "amount": {round(a, 2) for a in amounts}, "tracking": {facts.tracking} - {None}}


def unsupported(text: str, allowed: dict[str, set[Any]]) -> list[str]:
    """Claims in `text` that `allowed` does not contain, as 'kind value' strings."""
    found = claims_in(text)
    out = [f"order {v}" for v in sorted(found["order"] - allowed["order"])]
    out += [f"amount {v:.2f}" for v in sorted(found["amount"] - allowed["amount"])]
    out += [f"tracking {v}" for v in sorted(found["tracking"] - allowed["tracking"])]
    return out


def merge_claims(*parts: dict[str, set[Any]]) -> dict[str, set[Any]]:
    out: dict[str, set[Any]] = {"order": set(), "amount": set(), "tracking": set()}
    for part in parts:
        for k in out:
            out[k] |= part.get(k, set())
    return out


# ------------------------------------------------------------------------------------------ scoring
CUSTOMER_WROTE = re.compile(r"\W*customer wrote:", re.I)  # "Customer wrote: ..." or "**Customer wrote:** ..."


@dataclasses.dataclass
class Observed:
    """One turn's outcome, from the CLI's JSON contract."""

    status: str | None
    intent: str | None
    action: str | None
    args: dict[str, Any]
    text: str  # what the customer reads: the answer, or the draft under review
    description: str  # the interrupt's description, without the approver's copy of the customer's words
    flags: list[str]
    error: str | None = None

    @classmethod
    def from_result(cls, result: dict[str, Any], said: str | None = None) -> Observed:
        pending = result.get("pending") or {}
        request = pending.get("action_request") or {} if isinstance(pending, dict) else {}
        name = request.get("action")
        action = name if result.get("status") == "awaiting_approval" and name not in NOT_ACTIONS else None
        text = result.get("answer") or ""
        if not text and name == "review_response":
            text = str((request.get("args") or {}).get("draft") or "")
        description = str(pending.get("description") or "") if isinstance(pending, dict) else ""
        # The approver's copy of the customer's words is not the system's statement; the preview is.
        description = "\n".join(line for line in description.splitlines() if not CUSTOMER_WROTE.match(line))
        return cls(
            status=result.get("status"),
            intent=result.get("intent"),
            action=action,
            args=dict(request.get("args") or {}) if action else {},
            text=text,
            description=description,
            flags=list(result.get("flags") or []),
        )

    @classmethod
    def failed(cls, error: str) -> Observed:
        return cls(None, None, None, {}, "", "", [], error=error)


@dataclasses.dataclass
class Problem:
    kind: str  # status | intent | action | args | must | must_not | max_sentences | error
    key: str  # what the top-failures table counts
    message: str  # one line for the failure list


def value_matches(want: Any, got: Any) -> bool:
    if isinstance(want, bool) or isinstance(got, bool):
        return want == got
    if isinstance(want, (int, float)):
        try:
            return abs(float(got) - float(want)) < 0.005
        except (TypeError, ValueError):
            return False
    if isinstance(want, str):
        text = " ".join(str(got if got is not None else "").split()).strip(" .,;!")
        if want.startswith("re:"):
            return re.fullmatch(want[3:], text, re.IGNORECASE) is not None
        return text.lower() == " ".join(want.split()).lower()
    return want == got


def check(expect: Expectation, seen: Observed, match: Matcher, always_must_not: Iterable[str] = ()) -> list[Problem]:
    """Everything `seen` gets wrong against `expect` (empty: the turn passes)."""
    if seen.error:
        key = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<thread>", seen.error)
        return [Problem("error", re.sub(r"\(status \w+\)", "", key)[:80].strip(), seen.error)]
    problems: list[Problem] = []
    if seen.status != expect.status:
        key = f"status {seen.status} instead of {expect.status}"
        problems.append(Problem("status", key, f"status {seen.status} != {expect.status}"))
    if expect.checks_intent:
        wanted = expect.intent if isinstance(expect.intent, list) else [expect.intent]
        if seen.intent not in wanted:
            want = "|".join(map(str, wanted))
            key = f"intent {seen.intent} instead of {want}"
            problems.append(Problem("intent", key, f"intent {seen.intent} != {want}"))
    problems += action_problems(expect, seen)
    both = f"{seen.text}\n{seen.description}"
    for item in expect.must:
        if not match.found(item, both):
            problems.append(Problem("must", "required fact missing", f"missing {item!r}"))
    for item in expect.must_not:
        if match.found(item, both):
            problems.append(Problem("must_not", f"forbidden: {item}", f"contains {item!r}"))
    for item in always_must_not:
        if match.found(item, seen.text):
            problems.append(Problem("must_not", f"forbidden: {item}", f"contains {item!r}"))
    if expect.max_sentences and count_sentences(seen.text) > expect.max_sentences:
        n = count_sentences(seen.text)
        problems.append(
            Problem("max_sentences", "clarifying question too long", f"{n} sentences > {expect.max_sentences}")
        )
    return problems


def action_problems(expect: Expectation, seen: Observed) -> list[Problem]:
    if expect.action is None:
        if seen.action is not None:
            return [Problem("action", f"approval request for {seen.action} where none is due",
                            f"proposed {seen.action}({_args_text(seen.args)}), expected no approval request")]
        return []
    if seen.action is None:
        return [Problem("action", f"no approval request (expected {expect.action})",
                        f"no approval request, expected {expect.action}")]
    if seen.action != expect.action:
        return [Problem("action", f"approval request for {seen.action} instead of {expect.action}",
                        f"proposed {seen.action}, expected {expect.action}")]
    expected = expect.args or {}
    wrong = [k for k, v in expected.items() if not value_matches(v, seen.args.get(k))]
    return [
        Problem("args", f"approval args differ: {k}", f"{k}={seen.args.get(k)!r}, expected {expected[k]!r}")
        for k in wrong
    ]


def _args_text(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items() if k != "reason")[:120]


@dataclasses.dataclass
class TurnScore:
    passed: bool
    problems: list[Problem]
    wrong_proposal: bool
    unsupported: list[str]

    @property
    def reason(self) -> str:
        return "; ".join(p.message for p in self.problems)[:300]


def score_turn(
    turn: Turn,
    seen: Observed,
    match: Matcher,
    *,
    allowed: dict[str, set[Any]] | None = None,
    always_must_not: Iterable[str] = (),
) -> TurnScore:
    """Score one turn: it passes when its own expectation or any alternative holds.

    A raised approval request is a wrong proposal when no acceptable expectation asks for that tool with
    those args. Claims (order ids, amounts, tracking numbers) not in `allowed` are reported apart.
    """
    always = list(always_must_not)
    options = turn.expectations()
    results = [check(e, seen, match, always) for e in options]
    passed = any(not r for r in results)
    wrong = seen.action is not None and all(action_problems(e, seen) for e in options)
    claims = [f"flag {f}" for f in seen.flags if f == "unsupported_claim"]
    if allowed is not None and seen.text:
        claims += unsupported(seen.text, allowed)
    return TurnScore(passed, [] if passed else results[0], wrong, claims)


# ------------------------------------------------------------------------------------------ running
def prepare_data(source: Any, work: Path, embedder: Any = None) -> Any:
    """Settings for a private copy under `work`: the source's knowledge base and classifier when it is seeded
    (copied, never written), else a fresh seed. Offline: no language model."""
    from config.settings import Settings
    from graphs.services import seed

    base = source if isinstance(source, Settings) else Settings.from_env().model_copy(update={"data_dir": Path(source)})
    settings = base.model_copy(
        update={
            "data_dir": work,
            "model_cache_dir": base.embedder_cache,
            "openai_api_key": None,
            "llm_base_url": None,
            "checkpointer_url": None,
        }
    )
    work.mkdir(parents=True, exist_ok=True)
    src_clf, src_kb = base.intent_model_dir, base.data_dir / "chroma"
    if (src_clf / "manifest.json").exists() and src_kb.is_dir():
        shutil.copytree(src_kb, work / "chroma")
        shutil.copytree(src_clf, settings.intent_model_dir)
        from tools.shop import ShopDB

        with ShopDB(work / "shop.sqlite") as shop:
            shop.seed(reset=True)
    else:
        seed(settings, embedder=embedder)
    return settings


class ConversationRunner:
    """Runs conversations on one compiled graph; each gets fresh threads and a reseeded shop."""

    def __init__(self, settings: Any, embedder: Any = None) -> None:
        from langgraph.checkpoint.memory import InMemorySaver
        from langgraph.store.memory import InMemoryStore

        from graphs import tickets
        from graphs.services import build_services
        from graphs.supervisor import build_supervisor

        self.tickets, self.settings = tickets, settings
        services = build_services(settings, embedder=embedder, auto_seed=False)
        self.services = dataclasses.replace(services, llm=None)
        self.store = InMemoryStore()  # per-user preferences and working memory, as open_switchboard has
        graph = build_supervisor(self.services).compile(checkpointer=InMemorySaver(), store=self.store)
        self.board = tickets.Switchboard(graph, self.services)

    def anchor(self) -> date:
        row = self.services.shop.query("SELECT value FROM shop_meta WHERE key = 'anchor_date'")
        return date.fromisoformat(row[0]["value"])

    def reset(self, users: Iterable[str]) -> None:
        """A freshly seeded shop, and no learned cases or preferences of these users (a case a human resolved
        in one conversation must not show up in the next)."""
        self.services.shop.seed(reset=True)
        from memory.user_store import forget_user

        for user in sorted(set(users)):
            self.services.knowledge.forget_user(TENANT, user)
            forget_user(self.store, TENANT, user)

    def waiting(self, thread: str) -> str | None:
        node, _ = self.tickets.pending_of(self.board.graph.get_state(self.board.config(thread)))
        return node

    def say(self, thread: str, user: str, text: str) -> dict[str, Any]:
        from graphs.context import Context

        if self.waiting(thread) == "review_gate":  # the reviewer acts before the customer reads on
            self.resume(thread, user, Resume(type="accept"))
        if self.waiting(thread) is None:
            return self.tickets.ask(self.settings, text, user=user, thread=thread, channel="eval", board=self.board)
        started = time.perf_counter()
        self.board.graph.invoke(
            {"messages": [{"role": "user", "content": text}]},
            self.board.config(thread),
            context=Context(user_id=user, tenant_id=TENANT, channel="eval"),
        )
        return self.tickets.result_of(self.board, thread, started)

    def resume(self, thread: str, user: str, answer: Resume) -> dict[str, Any]:
        node = self.waiting(thread)
        ns = argparse.Namespace(
            approve=False, reject=False, reason=None, respond=None, edit=None, user=user, tenant=TENANT
        )
        if answer.type == "accept":
            ns.approve = True
        elif answer.type == "edit":
            ns.edit = json.dumps(answer.args)
        elif answer.type == "ignore":
            ns.reject = True
        elif node == "escalate":
            ns.respond = str(answer.args or "")
        else:
            ns.reject, ns.reason = True, str(answer.args or "") or None
        return self.tickets.resume(self.settings, thread, ns, board=self.board)

    def run(self, conv: Conversation, suite: Suite) -> list[dict[str, Any]]:
        self.reset({conv.user, *(t.user for t in conv.turns if t.user), *(o.customer for o in suite.orders.values())})
        match = Matcher(self.anchor(), suite.orders)
        facts = conversation_facts(conv, suite)
        threads: dict[str, str] = {}
        history: list[str] = []
        rows: list[dict[str, Any]] = []
        broken: str | None = None
        for index, turn in enumerate(conv.turns):
            user = turn.user or conv.user
            thread = threads.setdefault(turn.thread or "main", str(uuid.uuid4()))
            started = time.perf_counter()
            if broken:
                seen, result = Observed.failed(f"not run: {broken}"), None
            else:
                try:
                    if turn.say is not None:
                        result = self.say(thread, user, turn.say)
                    else:
                        assert turn.resume is not None
                        result = self.resume(thread, user, turn.resume)
                    seen = Observed.from_result(result, turn.say)
                except self.tickets.UsageError as exc:
                    seen, result = Observed.failed(f"refused: {exc}"), None
                except Exception as exc:  # noqa: BLE001 - a crash is a failed turn, and ends the conversation
                    broken = f"turn {index + 1} raised {type(exc).__name__}"
                    seen, result = Observed.failed(f"error: {type(exc).__name__}: {str(exc)[:160]}"), None
            history.append(turn.say if turn.say is not None else json.dumps(turn.resume.args if turn.resume else ""))
            allowed = merge_claims(facts, turn_facts(turn), *(claims_in(h) for h in history))
            score = score_turn(turn, seen, match, allowed=allowed, always_must_not=suite.always_must_not)
            history.append(seen.text)
            rows.append(turn_row(conv, index, turn, seen, score, result, time.perf_counter() - started))
        return rows


def conversation_facts(conv: Conversation, suite: Suite) -> dict[str, set[Any]]:
    """Facts an answer in this conversation may state: its orders (named or mentioned), the orders of its
    customers (identity-checked data the shop holds for them, e.g. candidates in a clarifying question) and
    published amounts."""
    customers = {conv.user, *(t.user for t in conv.turns if t.user)}
    ids = set(conv.orders) | {i for i, o in suite.orders.items() if o.customer in customers}
    for turn in conv.turns:
        texts = [turn.say or "", *turn.must, *turn.facts, json.dumps(turn.args or {})]
        for text in texts:
            ids |= order_ids_in(text)
        if turn.args and isinstance(turn.args.get("order_id"), int):
            ids.add(turn.args["order_id"])
    parts = [order_fact_values(i, suite.orders[i]) for i in sorted(ids) if i in suite.orders]
    return merge_claims({"amount": {round(a, 2) for a in suite.policy_amounts}}, *parts)


def turn_facts(turn: Turn) -> dict[str, set[Any]]:
    """Values the turn's own expectation names (its must items and `facts`)."""

    def literal(m: re.Match[str]) -> str:
        kind, _, value = m.group(1).partition(":")
        return f"order {value}" if kind == "cand" else f"EUR {value}" if kind == "eur" else ""

    return merge_claims(*(claims_in(PLACEHOLDER.sub(literal, t)) for t in (*turn.facts, *turn.must)))


def turn_row(
    conv: Conversation, index: int, turn: Turn, seen: Observed, score: TurnScore, result: Any, seconds: float
) -> dict[str, Any]:
    intent = turn.intent if isinstance(turn.intent, str) else (turn.intent[0] if turn.intent else None)
    return {
        "conversation": conv.id,
        "category": conv.category,
        "turn": index + 1,
        "input": turn.say if turn.say is not None else f"resume {turn.resume.type if turn.resume else '?'}",
        "expected_status": turn.status,
        "expected_intent": intent if turn.checks_intent else None,
        "expected_action": turn.action,
        "status": seen.status,
        "intent": seen.intent,
        "action": seen.action,
        "args": seen.args,
        "answer": seen.text,
        "description": seen.description,
        "flags": seen.flags,
        "passed": score.passed,
        "reason": score.reason,
        "problems": [dataclasses.asdict(p) for p in score.problems],
        "wrong_proposal": score.wrong_proposal,
        "unsupported": score.unsupported,
        "confidence": (result or {}).get("confidence"),
        "seconds": round(seconds, 3),
    }


# ------------------------------------------------------------------------------------------ report
def summarize(rows: list[dict[str, Any]], suite: Suite, n_conversations: int, seconds: float) -> dict[str, Any]:
    by_conv: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_conv.setdefault(r["conversation"], []).append(r)
    n_turns = len(rows)
    passed_convs = [c for c, rs in by_conv.items() if all(r["passed"] for r in rs)]
    categories: dict[str, dict[str, Any]] = {}
    for conv_id, rs in by_conv.items():
        cat = categories.setdefault(rs[0]["category"], {"conversations": 0, "passed": 0})
        cat["conversations"] += 1
        cat["passed"] += conv_id in passed_convs
    intents: dict[str, dict[str, Any]] = {}
    for r in rows:
        it = intents.setdefault(r["expected_intent"] or "(unchecked)", {"turns": 0, "passed": 0})
        it["turns"] += 1
        it["passed"] += r["passed"]
    for table, n in ((categories, "conversations"), (intents, "turns")):
        for v in table.values():
            v["rate"] = round(v["passed"] / v[n], 4)
    keys = Counter(k for r in rows for k in dict.fromkeys(p["key"] for p in r["problems"]))
    checks = Counter(p["kind"] for r in rows for p in r["problems"])
    return {
        "suite": SUITE.name,
        "conversations": n_conversations,
        "multi_turn": sum(len(rs) > 1 for rs in by_conv.values()),
        "turns": n_turns,
        "first_response_accuracy": round(len(passed_convs) / max(n_conversations, 1), 4),
        "turn_accuracy": round(sum(r["passed"] for r in rows) / max(n_turns, 1), 4),
        "wrong_action_proposals": sum(r["wrong_proposal"] for r in rows),
        "unsupported_claims": sum(bool(r["unsupported"]) for r in rows),
        "failed_turns": sum(not r["passed"] for r in rows),
        "problem_counts": dict(checks.most_common()),
        "top_failure_reasons": [[k, n] for k, n in keys.most_common(10)],
        "top_missing_facts": [
            [k, n] for k, n in Counter(p["message"] for r in rows for p in r["problems"] if p["kind"] == "must")
            .most_common(10)
        ],
        "by_category": dict(sorted(categories.items())),
        "by_intent": dict(sorted(intents.items())),
        "seconds": round(seconds, 1),
        "failures": [
            {"conversation": r["conversation"], "turn": r["turn"], "input": r["input"][:80], "reason": r["reason"]}
            for r in rows
            if not r["passed"]
        ],
        "unsupported": [
            {"conversation": r["conversation"], "turn": r["turn"], "claims": r["unsupported"]}
            for r in rows
            if r["unsupported"]
        ],
    }


def plot(report: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cats, intents = report["by_category"], report["by_intent"]
    fig, axes = plt.subplots(1, 2, figsize=(16, max(5, 0.28 * len(intents) + 1.5)))
    for ax, table, title, unit in (
        (axes[0], cats, "Conversations passing, by category", "conversations"),
        (axes[1], intents, "Turns passing, by expected intent", "turns"),
    ):
        names = sorted(table, key=lambda k: (table[k]["rate"], k))
        rates = [table[k]["rate"] for k in names]
        ax.barh([f"{k} ({table[k][unit]})" for k in names], rates, color="tab:blue")
        ax.set(xlim=(0, 1), xlabel="pass rate", title=title)
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle(
        f"Answers eval: first-response accuracy {report['first_response_accuracy']:.1%}, "
        f"turn accuracy {report['turn_accuracy']:.1%}, wrong approval requests {report['wrong_action_proposals']}"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def run(
    settings_or_data_dir: Any,
    out_dir: Path | str = REPORTS,
    *,
    limit: int | None = None,
    only: Collection[str] = (),
    suite_path: Path = SUITE,
    embedder: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run the suite on a private copy of `settings_or_data_dir` (Settings or a data dir; seeded when it is
    not), write answers.json and answers.png to `out_dir` and return the report."""
    suite = load_suite(suite_path)
    conversations = suite.conversations[:limit] if limit else suite.conversations
    if only:
        conversations = [c for c in conversations if c.id in only]
        if missing := set(only) - {c.id for c in conversations}:
            raise ValueError(f"no such conversation in {suite_path.name}: {', '.join(sorted(missing))}")
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="switchboard-answers-") as tmp:
        settings = prepare_data(settings_or_data_dir, Path(tmp) / "data", embedder)
        runner = ConversationRunner(settings, embedder)
        for i, conv in enumerate(conversations):
            rows += runner.run(conv, suite)
            if progress:
                progress(i + 1, len(conversations))
        runner.services.shop.close()
    report = summarize(rows, suite, len(conversations), time.perf_counter() - started)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "answers.json").write_text(json.dumps(report | {"turn_results": rows}, indent=2, default=str), "utf-8")
    plot(report, out / "answers.png")
    return report


def fresh_seed_settings(empty_dir: Path) -> Any:
    """Settings that make `run` seed from scratch (reproducible: no ingested documents, no learned cases),
    reusing the environment's encoder cache so the ONNX model is not rebuilt."""
    from config.settings import Settings

    env = Settings.from_env()
    return env.model_copy(update={"data_dir": empty_dir, "model_cache_dir": env.embedder_cache})


def print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    table = Table(title="Answers eval")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("conversations", "multi_turn", "turns", "first_response_accuracy", "turn_accuracy",
                "wrong_action_proposals", "unsupported_claims", "seconds"):
        table.add_row(key, str(report[key]))
    console.print(table)
    reasons = Table(title="Most common failure reasons")
    reasons.add_column("turns", justify="right")
    reasons.add_column("reason", overflow="fold")
    for key, n in report["top_failure_reasons"]:
        reasons.add_row(str(n), key)
    console.print(reasons)
    fails = Table(title=f"Failing turns ({len(report['failures'])})")
    for col in ("conversation", "turn", "reason"):
        fails.add_column(col, overflow="fold")
    for f in report["failures"]:
        fails.add_row(f["conversation"], str(f["turn"]), f["reason"])
    console.print(fails)


def main(argv: list[str] | None = None) -> int:
    """`python app.py eval answers [--json] [--limit N] [--data-dir DIR] [--out DIR]`."""
    parser = argparse.ArgumentParser(prog="app.py eval answers", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON report (without per-turn rows)")
    parser.add_argument("--out", type=Path, default=REPORTS, help="where answers.json and answers.png go")
    parser.add_argument("--limit", type=int, default=None, help="run only the first N conversations")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="a seeded data dir to copy (default: a fresh seed in a temp dir)"
    )
    parser.add_argument("--suite", type=Path, default=SUITE)
    parser.add_argument("--only", default="", help="comma-separated conversation ids to run (debugging)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    only = [c.strip() for c in args.only.split(",") if c.strip()]

    with tempfile.TemporaryDirectory(prefix="switchboard-answers-src-") as fresh:
        source = args.data_dir or fresh_seed_settings(Path(fresh))
        if args.json or not sys.stderr.isatty():
            report = run(source, args.out, limit=args.limit, only=only, suite_path=args.suite)
        else:
            from rich.console import Console
            from rich.progress import Progress

            with Progress(console=Console(stderr=True), transient=True) as bar:  # stdout stays the report
                task = bar.add_task("conversations", total=args.limit or len(load_suite(args.suite).conversations))
                report = run(source, args.out, limit=args.limit, only=only, suite_path=args.suite,
                             progress=lambda done, total: bar.update(task, completed=done, total=total))
    if args.json:
        print(json.dumps(report, default=str))
    else:
        print_table(report)
    return 0
