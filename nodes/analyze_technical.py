"""analyze_technical: the technical analyst.

Triages pasted error logs and stack traces deterministically (error codes, exception types, HTTP
statuses, timeouts; long logs cut to the relevant lines) and matches them against the known issues
in the tenant's knowledge base (as stored now: seeded or ingested). No model is needed for this job.
"""

from __future__ import annotations

from typing import Final

from langgraph.runtime import Runtime

from graphs.context import Context
from graphs.services import ServicesProvider
from graphs.state import SupportState
from nodes.common import Node, visited
from tools.log_triage import match_known_issues, triage

NAME: Final = "analyze_technical"


def make(services: ServicesProvider) -> Node:
    def analyze_technical(state: SupportState, runtime: Runtime[Context]) -> dict:
        svc = services()
        found = triage(state.get("ticket", ""), max_lines=svc.policy.limits.max_log_lines)
        # Read from the tenant's knowledge base on every ticket, so issues added by `app.py ingest` count at once.
        known = svc.knowledge.known_issues(tenant_id=runtime.context.tenant_id)
        matches = match_known_issues(found, known)
        by_id = {a["id"]: a for a in known}
        knowledge = []
        for m in matches[:3]:
            article = by_id.get(m.article_id, {})
            knowledge.append(
                {
                    "id": m.article_id,
                    "kind": "known_issue",
                    "title": article.get("title", ""),
                    "text": article.get("body", ""),
                    "score": round(float(m.score), 4),
                    "relevance": 1.0,
                    "metadata": {"reasons": "; ".join(m.reasons)},
                }
            )
        analysis = {
            **found.model_dump(),
            "known_issues": [{"id": m.article_id, "score": m.score, "reasons": list(m.reasons)} for m in matches[:3]],
        }
        update: dict = {**visited(NAME), "analysis": analysis}
        if knowledge:
            update["knowledge"] = knowledge
        return update

    return analyze_technical
