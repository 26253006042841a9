"""Lessons learned from human answers: neutral, reviewed, then shared like an article.

When a human edits a draft at review or answers an escalation, that reply was written for one customer. It is
never quoted to anyone else. Instead `make_lesson()` turns it into a lesson for the knowledge base — problem,
cause, fix, in neutral words: greetings, sign-offs and names around them dropped, personal data redacted, order
numbers and amounts generalised — and `LessonQueue` keeps it *pending* until a reviewer approves it
(`python app.py lessons approve ID`). Only then is it upserted into the tenant's knowledge base as an article of
kind `lesson` (id `lesson-N`), retrieved and cited like any other article. Rejected lessons stay on record.
The queue lives in the data directory (`lessons.sqlite`) or, with a database URL, in Postgres
(`Settings.lessons_target`), so a lesson queued by one instance is reviewed from any other.

A lesson is shared text, so it is screened for indirect prompt injection (guards.injection.screen_document):
a reply that carries instructions to the assistant yields no lesson, and a flagged lesson cannot be approved.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from dialogue.slots import ORDER_ID_RE
from guards.pii import redact
from storage.sql import connect, create_schema

Status = Literal["pending", "approved", "rejected"]

_GREETING = re.compile(
    r"^\s*(?:(?:hi|hello|hey|dear|good (?:morning|afternoon|evening))\b[^.!?\n,]{0,40}[,.!]?\s*|"
    r"(?:[A-Z][a-z]+ (?:here|from (?:the )?(?:support|customer service)[^.!?\n]{0,30})[.!,]\s*)|"
    r"(?:thanks?(?: you)? for (?:reaching out|contacting us|your (?:message|patience))[^.!?\n]{0,40}[.!]\s*))+",
    re.I,
)
_SIGNOFF = re.compile(
    r"(?:\s*(?:best(?: regards| wishes)?|kind regards|regards|cheers|thanks(?: again)?|thank you|"
    r"many thanks|all the best|take care)\b[^\n]{0,40})\s*$|\s*[-–—]\s*[A-Z][a-z]+\s*$",
    re.I,
)
_AMOUNT = re.compile(r"(?:€|\$|£|\b(?:eur|usd|gbp)\s?)\s?\d[\d,]*(?:\.\d{1,2})?|\b\d[\d,]*(?:\.\d{1,2})?\s?"
                     r"(?:€|eur|euros?|usd|dollars?)\b", re.I)
_PLACEHOLDER = re.compile(r"\[(?:EMAIL|PHONE|CARD|IBAN|SSN|IP)\]")
_SENTENCES = re.compile(r"(?<=[.!?])\s+")
MIN_FIX_WORDS = 6


def neutral(text: str) -> str:
    """The text without greeting, sign-off, personal data, order numbers or amounts."""
    text = _GREETING.sub("", text.strip())
    for _ in range(2):
        text = _SIGNOFF.sub("", text).strip()
    text, _ = redact(text)
    text = _PLACEHOLDER.sub("", text)
    text = ORDER_ID_RE.sub("the order", text)
    text = _AMOUNT.sub("the amount", text)
    text = re.sub(r"\byour\b", "the customer's", text, flags=re.I)
    text = re.sub(r"\byou(?:'re| are)\b", "the customer is", text, flags=re.I)
    text = re.sub(r"\byou\b", "the customer", text, flags=re.I)
    return " ".join(text.split()).strip(" ,;")


@dataclass(frozen=True)
class Lesson:
    """One lesson in the review queue."""

    id: int
    tenant_id: str
    intent: str
    problem: str
    cause: str
    fix: str
    status: Status
    created_at: float
    trace_id: str = ""

    @property
    def article_id(self) -> str:
        return f"lesson-{self.id}"

    def as_article_text(self) -> str:
        return f"# {self.title}\n\nProblem: {self.problem}\n\nCause: {self.cause}\n\nFix: {self.fix}\n"

    @property
    def title(self) -> str:
        return f"Lesson: {self.intent.replace('_', ' ')}"


def _screen(text: str, guard: Any) -> Any:
    from guards.injection import get_guard

    return (guard or get_guard()).screen_document(text)


def make_lesson(
    ticket: str, human_text: str, *, intent: str, cause: str, guard: Any = None
) -> dict[str, str] | None:
    """Problem, cause and fix in neutral words, or None when the reply holds no reusable fix.

    A reply that only asks the customer something ("Could you tell me the order number?") teaches nothing, and
    neither does one that carries instructions to the assistant (screened with `guard`, default `get_guard()`).
    """
    fix = neutral(human_text)
    statements = [s for s in _SENTENCES.split(fix) if s and not s.rstrip().endswith("?")]
    fix = " ".join(statements).strip()
    if len(fix.split()) < MIN_FIX_WORDS:
        return None
    problem = neutral(ticket)[:300] or intent.replace("_", " ")
    if _screen(f"{problem}\n{fix[:800]}", guard).is_injection:
        return None
    return {"problem": problem, "cause": neutral(cause)[:300], "fix": fix[:800], "intent": intent}


_SCHEMA = """
CREATE TABLE IF NOT EXISTS lessons (
    id INTEGER PRIMARY KEY AUTOINCREMENT, tenant_id TEXT NOT NULL, intent TEXT NOT NULL, problem TEXT NOT NULL,
    cause TEXT NOT NULL, fix TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', created_at REAL NOT NULL,
    trace_id TEXT NOT NULL DEFAULT '', reviewed_by TEXT, reviewed_at REAL, UNIQUE (tenant_id, fix)
);
"""


class LessonQueue:
    """Lessons awaiting review (append and status changes only): a SQLite file under the data directory, or
    Postgres (`target`: a path or a ``postgresql://`` URL, storage.sql), where every instance queues to one
    review list. One connection per queue, serialised by a lock."""

    def __init__(self, target: Path | str) -> None:
        self.target = str(target)
        self._lock = threading.Lock()
        self._db = connect(target, lock="lessons")
        create_schema(self._db, _SCHEMA)

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        with self._lock:
            yield self._db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def propose(self, lesson: dict[str, str], *, tenant_id: str, trace_id: str = "") -> int | None:
        """Queue a lesson for review; the same fix twice in a tenant is kept once. Returns its id."""
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO lessons (tenant_id, intent, problem, cause, fix, created_at, trace_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, fix) DO NOTHING",
                (tenant_id, lesson["intent"], lesson["problem"], lesson["cause"], lesson["fix"], time.time(), trace_id),
            )
            row = conn.execute(
                "SELECT id FROM lessons WHERE tenant_id = ? AND fix = ?", (tenant_id, lesson["fix"])
            ).fetchone()
        return int(row["id"]) if row else None

    def get(self, lesson_id: int) -> Lesson | None:
        with self._conn() as conn:
            row = conn.execute("SELECT * FROM lessons WHERE id = ?", (lesson_id,)).fetchone()
        return _lesson(row) if row else None

    def list(self, *, tenant_id: str | None = None, status: Status | None = "pending") -> list[Lesson]:
        sql = "SELECT * FROM lessons WHERE 1 = 1"
        params: list[Any] = []
        if tenant_id is not None:
            sql, params = sql + " AND tenant_id = ?", [*params, tenant_id]
        if status is not None:
            sql, params = sql + " AND status = ?", [*params, status]
        with self._conn() as conn:
            return [_lesson(r) for r in conn.execute(sql + " ORDER BY id", params).fetchall()]

    def review(
        self, lesson_id: int, status: Status, *, knowledge: Any = None, reviewer: str = "cli", guard: Any = None
    ) -> Lesson:
        """Approve (publish to the knowledge base) or reject a pending lesson; raises ValueError otherwise,
        and when the lesson to approve carries instructions to the assistant (screened with `guard`)."""
        lesson = self.get(lesson_id)
        if lesson is None:
            raise ValueError(f"no lesson {lesson_id}")
        if lesson.status != "pending":
            raise ValueError(f"lesson {lesson_id} is already {lesson.status}")
        if status == "approved":
            if knowledge is None:
                raise ValueError("approving a lesson needs the knowledge base")
            verdict = _screen(lesson.as_article_text(), guard)
            if verdict.is_injection:
                raise ValueError(f"lesson {lesson_id} is not published: {verdict.message()}; reject it instead")
            from memory.knowledge import Article

            knowledge.upsert_articles(
                [
                    Article(
                        id=lesson.article_id,
                        title=lesson.title,
                        text=lesson.as_article_text(),
                        intents=[lesson.intent],
                        kind="lesson",
                        updated=time.time(),
                        tenant_id=lesson.tenant_id,
                        source="lesson",
                    )
                ]
            )
        with self._conn() as conn:
            conn.execute(
                "UPDATE lessons SET status = ?, reviewed_by = ?, reviewed_at = ? WHERE id = ? AND status = 'pending'",
                (status, reviewer, time.time(), lesson_id),
            )
        reviewed = self.get(lesson_id)
        if reviewed is None:  # lessons are never deleted; a missing row is a broken database
            raise ValueError(f"lesson {lesson_id} vanished while it was reviewed")
        return reviewed


def _lesson(row: Any) -> Lesson:
    return Lesson(
        id=row["id"], tenant_id=row["tenant_id"], intent=row["intent"], problem=row["problem"], cause=row["cause"],
        fix=row["fix"], status=row["status"], created_at=row["created_at"], trace_id=row["trace_id"],
    )


def as_dict(lesson: Lesson) -> dict[str, Any]:
    return {**asdict(lesson), "article_id": lesson.article_id}
