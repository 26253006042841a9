"""Which tier a model call deserves: the task a node asks for and how hard the ticket is, from config.

    llm.generate(messages, task="classify")                         # the cascade: always simple
    llm.generate(messages, task="summarise")                        # rolling summary: always simple
    llm.generate(messages, task="answer", complexity=answer_complexity(state, rules))

Only answers have a hard form: a ticket the technical analyst found errors in, one asking several things at once,
or one about several orders (config/error-policies.yaml `complexity`). The routes of the same file say which
endpoints each (task, complexity) tries, in order: the cheap tier for simple steps, the strong one for hard answers.
Deterministic and cheap: this runs on every answer, and a model must not pick its own price.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from config.settings import Complexity, ComplexityRules

# A question: a sentence ending in '?', or an item of a numbered / bulleted list ("1) ...", "- ...").
_QUESTION = re.compile(r"[^.?!\n]*\?")
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+\S", re.M)
_TECHNICAL = ("error_codes", "exceptions", "http_statuses")


def questions_in(text: str) -> int:
    """How many things the message asks: questions marked with '?', or list items, whichever is more."""
    asked = sum(1 for q in _QUESTION.findall(text or "") if q.strip(" ?"))
    return max(asked, len(_LIST_ITEM.findall(text or "")))


def is_technical(analysis: Mapping[str, Any] | None) -> bool:
    """True when the technical analyst found an error code, an exception, an HTTP error, a log or a timeout."""
    if not analysis:
        return False
    return bool(analysis.get("contains_log") or analysis.get("timeouts") or any(analysis.get(k) for k in _TECHNICAL))


def answer_complexity(state: Mapping[str, Any], rules: ComplexityRules) -> tuple[Complexity, str]:
    """("hard", why) for a technical, multi-part or several-order ticket, else ("simple", "")."""
    if rules.technical and is_technical(state.get("analysis")):
        return "hard", "technical"
    if rules.min_questions and questions_in(str(state.get("ticket") or "")) >= rules.min_questions:
        return "hard", "multi_part"
    orders = (state.get("entities") or {}).get("order_ids") or []
    if rules.min_orders and len(set(orders)) >= rules.min_orders:
        return "hard", "several_orders"
    return "simple", ""
