"""Checks on the demo shop's authored content: knowledge base, routing policy and thresholds.

The knowledge base (``demo/kb/*.md``), ``config/workflows.yaml`` and ``config/policy.yaml`` are data the
runtime trusts; these tests keep them well-formed and consistent with the business tools and intents.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
KB_DIR = ROOT / "demo" / "kb"
WORKFLOWS = ROOT / "config" / "workflows.yaml"
POLICY = ROOT / "config" / "policy.yaml"

INTENTS: frozenset[str] = frozenset(
    {
        "create_account", "delete_account", "edit_account", "recover_password", "registration_problems",
        "switch_account", "check_cancellation_fee", "contact_customer_service", "contact_human_agent",
        "delivery_options", "delivery_period", "complaint", "review", "check_invoice", "get_invoice",
        "newsletter_subscription", "cancel_order", "change_order", "place_order", "track_order",
        "check_payment_methods", "payment_issue", "check_refund_policy", "get_refund", "track_refund",
        "change_shipping_address", "set_up_shipping_address",
    }
)  # fmt: skip
ROUTED_INTENTS = INTENTS | {"out_of_scope"}
FRONT_MATTER_KEYS = {"id", "title", "intents", "kind", "error_codes", "exceptions", "http_status"}
SPECIALISTS = {"retrieve_knowledge", "analyze_technical", "plan_action", "escalate"}
READ_TOOLS = {"get_order", "list_orders", "get_account", "get_invoice", "get_refund_status"}
APPROVAL_TOOLS = {
    "cancel_order",
    "issue_refund",
    "update_shipping_address",
    "update_account",
    "delete_account",
}
LOW_IMPACT_TOOLS = {"set_newsletter_subscription", "create_ticket"}
ENTITIES = {"order_id", "amount", "address", "field", "value", "subscribed", "email"}
# Entities an action cannot run without (its required tool arguments that come from the customer).
ACTION_NEEDS: dict[str, set[str]] = {
    "cancel_order": {"order_id"},
    "issue_refund": {"order_id"},  # amount is optional: the full refundable amount by default
    "update_shipping_address": {"order_id", "address"},
    "update_account": {"field", "value"},
    "set_newsletter_subscription": {"subscribed"},
}
WORKFLOW_KEYS = {
    "description",
    "specialists",
    "read_tools",
    "action",
    "approval",
    "requires",
    "escalate",
    "done",
}
OPTIONAL_WORKFLOW_KEYS = {"order", "order_statuses"}
MIN_WORDS, MAX_WORDS = 150, 400

FRONT_MATTER_RE = re.compile(r"\A---\n(.*?)\n---\n(.*)\Z", re.DOTALL)
WORD_RE = re.compile(r"\w+(?:['’-]\w+)*")
CODE_BLOCK_RE = re.compile(r"```.*?```", re.DOTALL)
ID_RE = re.compile(r"^kb-[a-z0-9]+(?:-[a-z0-9]+)*$")
ERROR_CODE_RE = re.compile(r"^[A-Z]+(?:-[A-Z0-9]+)+$")
EXCEPTION_RE = re.compile(r"^(?:[a-z_][a-z0-9_]*\.)*[A-Z][A-Za-z0-9]*$")
SEE_REF_RE = re.compile(r"\bsee (?:the )?(?:known issue )?\*([^*]+)\*")


def parse_article(path: Path) -> tuple[dict[str, Any], str]:
    """Split a KB article into its YAML front matter (parsed with ``yaml.safe_load``) and body."""
    match = FRONT_MATTER_RE.match(path.read_text(encoding="utf-8"))
    assert match, f"{path.name}: no front matter between --- lines"
    meta = yaml.safe_load(match.group(1))
    assert isinstance(meta, dict), f"{path.name}: front matter is not a mapping"
    return meta, match.group(2)


def prose_word_count(body: str) -> int:
    """Words in an article body, not counting fenced code blocks such as log excerpts."""
    return len(WORD_RE.findall(CODE_BLOCK_RE.sub(" ", body)))


ARTICLE_PATHS = sorted(KB_DIR.glob("*.md"))
ARTICLES: dict[str, tuple[dict[str, Any], str]] = {p.name: parse_article(p) for p in ARTICLE_PATHS}


def load_yaml(path: Path) -> dict[str, Any]:
    """Load one config file and make sure it is a mapping."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name} is not a mapping"
    return data


# ------------------------------------------------------------------------------------------ knowledge base


def test_knowledge_base_has_enough_articles_and_known_issues() -> None:
    kinds = Counter(meta["kind"] for meta, _ in ARTICLES.values())
    assert kinds["article"] >= 30
    assert kinds["known_issue"] >= 10


@pytest.mark.parametrize("name", sorted(ARTICLES))
def test_article_front_matter_is_well_formed(name: str) -> None:
    meta, body = ARTICLES[name]
    assert set(meta) == FRONT_MATTER_KEYS, f"{name}: keys {sorted(meta)}"
    assert ID_RE.match(meta["id"]), f"{name}: bad id {meta['id']!r}"
    assert isinstance(meta["title"], str) and meta["title"].strip()
    assert meta["kind"] in {"article", "known_issue"}
    assert isinstance(meta["intents"], list) and meta["intents"], f"{name}: no intents"
    assert set(meta["intents"]) <= INTENTS, f"{name}: unknown intents {set(meta['intents']) - INTENTS}"
    assert len(set(meta["intents"])) == len(meta["intents"]), f"{name}: duplicate intents"
    for key in ("error_codes", "exceptions", "http_status"):
        assert isinstance(meta[key], list), f"{name}: {key} must be a list"
    assert body.strip(), f"{name}: empty body"


@pytest.mark.parametrize("name", sorted(ARTICLES))
def test_article_length_is_within_bounds(name: str) -> None:
    words = prose_word_count(ARTICLES[name][1])
    assert MIN_WORDS <= words <= MAX_WORDS, f"{name}: {words} words"


def test_article_ids_and_titles_are_unique() -> None:
    ids = Counter(meta["id"] for meta, _ in ARTICLES.values())
    titles = Counter(meta["title"] for meta, _ in ARTICLES.values())
    assert [i for i, n in ids.items() if n > 1] == []
    assert [t for t, n in titles.items() if n > 1] == []


@pytest.mark.parametrize("name", sorted(n for n, (m, _) in ARTICLES.items() if m["kind"] == "known_issue"))
def test_known_issue_has_signals_that_appear_in_its_text(name: str) -> None:
    meta, body = ARTICLES[name]
    assert meta["error_codes"] or meta["exceptions"] or meta["http_status"], (
        f"{name}: no code/exception/status"
    )
    for code in meta["error_codes"]:
        assert ERROR_CODE_RE.match(code), f"{name}: bad error code {code!r}"
        assert code in body, f"{name}: {code} not mentioned in the body"
    for exc in meta["exceptions"]:
        assert EXCEPTION_RE.match(exc), f"{name}: bad exception name {exc!r}"
        assert exc in body, f"{name}: {exc} not mentioned in the body"
    for status in meta["http_status"]:
        assert isinstance(status, int) and 100 <= status <= 599, f"{name}: bad HTTP status {status!r}"
        assert str(status) in body, f"{name}: HTTP {status} not mentioned in the body"
    for heading in ("## Symptom", "## Cause", "## Fix or workaround"):
        assert heading in body, f"{name}: missing section {heading!r}"


CUSTOMER_SECTION_RE = re.compile(r"^## What you can do\n(.*?)(?=^## |\Z)", re.MULTILINE | re.DOTALL)
AGENT_VOICE_RE = re.compile(r"\b(?:the customer|customers?'s?|ask (?:them|the)|tell (?:them|the)|agents?|on-call|"
                            r"escalate|ticket for)\b", re.IGNORECASE)


@pytest.mark.parametrize("name", sorted(n for n, (m, _) in ARTICLES.items() if m["kind"] == "known_issue"))
def test_known_issue_has_a_short_section_written_to_the_customer(name: str) -> None:
    """dialogue.compose says this section whole to the customer; the rest of the article is for agents."""
    _, body = ARTICLES[name]
    match = CUSTOMER_SECTION_RE.search(body)
    assert match, f"{name}: no '## What you can do' section"
    section = match.group(1)
    assert 30 <= prose_word_count(section) <= 90, f"{name}: {prose_word_count(section)} words"
    assert re.search(r"\byou(?:r)?\b", section, re.IGNORECASE), f"{name}: not written to the customer"
    assert not AGENT_VOICE_RE.search(section), f"{name}: agent guidance {AGENT_VOICE_RE.search(section)!r}"
    assert "```" not in section and not re.search(r"^\s*(?:\d+\.|-) ", section, re.MULTILINE), f"{name}: not prose"


@pytest.mark.parametrize("name", sorted(n for n, (m, _) in ARTICLES.items() if m["kind"] == "article"))
def test_plain_article_has_no_technical_signals(name: str) -> None:
    meta, _ = ARTICLES[name]
    assert meta["error_codes"] == meta["exceptions"] == meta["http_status"] == []


def test_error_codes_are_unique_across_known_issues() -> None:
    codes = Counter(code for meta, _ in ARTICLES.values() for code in meta["error_codes"])
    assert [c for c, n in codes.items() if n > 1] == []


def test_every_intent_is_covered_by_a_customer_article() -> None:
    covered = {i for meta, _ in ARTICLES.values() if meta["kind"] == "article" for i in meta["intents"]}
    assert INTENTS - covered == set()


def test_cross_references_point_to_existing_articles() -> None:
    titles = {meta["title"] for meta, _ in ARTICLES.values()}
    codes = {code for meta, _ in ARTICLES.values() for code in meta["error_codes"]}
    broken = []
    for name, (_, body) in ARTICLES.items():
        for ref in SEE_REF_RE.findall(" ".join(body.split())):
            if ref not in titles and ref not in codes:
                broken.append((name, ref))
    assert broken == []


def test_parser_rejects_article_without_front_matter(tmp_path: Path) -> None:
    bad = tmp_path / "bad.md"
    bad.write_text("# No front matter\n\nJust text.\n", encoding="utf-8")
    with pytest.raises(AssertionError):
        parse_article(bad)


# ------------------------------------------------------------------------------------------ workflows.yaml


def test_workflows_cover_exactly_the_routed_intents() -> None:
    data = load_yaml(WORKFLOWS)
    assert data["version"] == 1
    assert set(data["intents"]) == ROUTED_INTENTS


@pytest.mark.parametrize("intent", sorted(ROUTED_INTENTS))
def test_workflow_entry_is_consistent(intent: str) -> None:
    wf = load_yaml(WORKFLOWS)["intents"][intent]
    assert WORKFLOW_KEYS <= set(wf) <= WORKFLOW_KEYS | OPTIONAL_WORKFLOW_KEYS, f"{intent}: keys {sorted(wf)}"
    assert wf.get("order", "optional") in {"required", "optional"}
    statuses = {"pending", "processing", "shipped", "delivered", "cancelled", "refunded", "payment_failed"}
    assert set(wf.get("order_statuses", [])) <= statuses
    assert isinstance(wf["description"], str) and wf["description"].strip()
    assert isinstance(wf["done"], str) and wf["done"].strip()
    specialists = wf["specialists"]
    assert set(specialists) <= SPECIALISTS and len(set(specialists)) == len(specialists)
    assert set(wf["read_tools"]) <= READ_TOOLS
    assert set(wf["requires"]) <= ENTITIES
    assert wf["approval"] in {"required", "none"}
    assert isinstance(wf["escalate"], bool)
    action = wf["action"]
    assert action is None or action in APPROVAL_TOOLS | LOW_IMPACT_TOOLS
    # plan_action runs exactly when there is an action to plan; escalation flag matches the route.
    assert ("plan_action" in specialists) == (action is not None)
    assert ("escalate" in specialists) == wf["escalate"]
    if action in APPROVAL_TOOLS:
        assert wf["approval"] == "required", f"{intent}: {action} must need approval"
    if action is None:
        assert wf["approval"] == "none" and wf["requires"] == []
    else:
        assert ACTION_NEEDS.get(action, set()) <= set(wf["requires"]), f"{intent}: missing entities"
    if wf["read_tools"]:
        assert "retrieve_knowledge" in specialists, f"{intent}: read tools without the retriever"


def test_workflow_key_routes() -> None:
    intents = load_yaml(WORKFLOWS)["intents"]
    assert intents["out_of_scope"]["specialists"] == []
    assert intents["contact_human_agent"]["escalate"] is True
    assert intents["complaint"]["action"] == "create_ticket" and intents["complaint"]["escalate"] is True
    assert intents["newsletter_subscription"]["action"] == "set_newsletter_subscription"
    assert intents["newsletter_subscription"]["approval"] == "none"
    for technical in ("payment_issue", "registration_problems"):
        assert "analyze_technical" in intents[technical]["specialists"]
    expected_actions = {
        "cancel_order": "cancel_order",
        "get_refund": "issue_refund",
        "change_shipping_address": "update_shipping_address",
        "edit_account": "update_account",
        "delete_account": "delete_account",
    }
    for intent, action in expected_actions.items():
        assert intents[intent]["action"] == action
        assert intents[intent]["approval"] == "required"


# ------------------------------------------------------------------------------------------ policy.yaml


def test_policy_has_the_expected_keys_and_sane_values() -> None:
    policy = load_yaml(POLICY)
    assert policy["version"] == 1
    expected = {
        "confidence": {"auto", "review"},
        "limits": {
            "max_input_chars", "max_hops", "max_log_lines", "ticket_budget_s", "max_specialist_failures", "lease_ttl_s"
        },
        "retrieval": {
            "top_k",
            "relevance_weight",
            "recency_weight",
            "recency_half_life_days",
            "min_relevance",
            "lexical_weight",
        },
        "session": {"window_turns", "summary_max_tokens", "context_token_budget"},
        "working_memory": {"ttl_seconds"},
        "grounding": {
            "article_min_relevance", "intent_article_min_relevance", "fact_boost", "ungrounded_factor",
            "strong_article_relevance", "article_boost",
        },
        "llm": {"timeout_s", "max_retries", "temperature"},
    }
    assert set(policy) == set(expected) | {"version", "approval", "rate_limits"}
    assert policy["approval"]["refund_auto_approve_eur"] >= 0 and "delete_account" in policy["approval"]["always_human"]
    for section, keys in expected.items():
        assert set(policy[section]) == keys, section
        assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in policy[section].values())
    conf = policy["confidence"]
    assert 0 < conf["review"] < conf["auto"] <= 1
    ret = policy["retrieval"]
    assert ret["relevance_weight"] + ret["recency_weight"] == pytest.approx(1.0)
    assert ret["top_k"] >= 1 and 0 <= ret["min_relevance"] < 1
    assert policy["limits"]["max_hops"] >= 1 and policy["limits"]["max_input_chars"] > 0
    assert policy["session"]["summary_max_tokens"] < policy["session"]["context_token_budget"]
    assert policy["working_memory"]["ttl_seconds"] > 0
