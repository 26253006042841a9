"""Offline answer composition: grounded sentences, readable tables, citations."""

from __future__ import annotations

from dialogue.compose import compose
from dialogue.sentences import SentenceScorer, sentences_of

ARTICLE = """# Delivery

Standard parcels arrive in 2 to 4 business days. Express parcels arrive the next business day.

## Prices

| Option | Price | Free from |
|---|---|---|
| Standard | 4.95 | 50.00 |
| Express | 9.95 | never |

- **Pick-up points** hold parcels for seven days before returning them.
"""


def test_tables_become_one_readable_sentence_and_markup_is_removed() -> None:
    sentences = sentences_of(ARTICLE)
    assert "Prices — Standard: Price 4.95, Free from 50.00." in sentences
    assert "Prices — Express: Price 9.95, Free from never." in sentences
    assert "Pick-up points hold parcels for seven days before returning them." in sentences
    assert not any("|" in s or "**" in s or s.startswith("#") for s in sentences)


def test_lexical_scorer_picks_the_sentence_about_the_question() -> None:
    best = SentenceScorer().best(ARTICLE, "how long do pick-up points hold parcels", 1)
    assert best == ["Pick-up points hold parcels for seven days before returning them."]


def test_semantic_scorer_uses_the_embedder(embedder) -> None:  # noqa: ANN001 - fixture
    best = SentenceScorer(embedder).best(ARTICLE, "When will my express package get here?", 1)
    assert best == ["Express parcels arrive the next business day."]


def test_answer_cites_the_articles_it_quotes() -> None:
    state = {
        "ticket": "how long do pick-up points hold parcels",
        "intent": "delivery_options",
        "flags": [],
        "knowledge": [{"id": "kb-delivery", "kind": "article", "title": "Delivery", "text": ARTICLE, "score": 0.9}],
    }
    answer, citations, _ = compose(state)
    assert citations == ["kb-delivery"] and "[kb-delivery]" in answer
    assert "seven days" in answer


def test_missing_slot_asks_a_question_and_cites_nothing() -> None:
    state = {
        "ticket": "cancel my order",
        "intent": "cancel_order",
        "flags": [],
        "action": {"tool": "cancel_order", "args": {}, "missing": ["order_id"]},
        "knowledge": [],
    }
    answer, citations, _ = compose(state)
    assert "order number" in answer and citations == []
