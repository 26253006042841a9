"""Checks on the demo shop's own intent examples (demo/intent_examples.yaml).

The file trains the shop classifier and feeds routing smoke tests, so it must cover the whole taxonomy
(27 Bitext intents + out_of_scope) with enough distinct examples, keep intents disjoint, hold its smoke
utterances out of training, and contain no utterance copied from the Bitext dataset.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLES_PATH = REPO / "demo" / "intent_examples.yaml"
SHARED_DATA = Path(os.environ.get("SWITCHBOARD_SHARED_DATA", REPO.parent / "shared" / "data"))
BITEXT_CSV = SHARED_DATA / "bitext-customer-support" / "Bitext_Sample_Customer_Support_Training_Dataset.csv"

OOS = "out_of_scope"
BITEXT_INTENTS = frozenset(
    {
        "create_account", "delete_account", "edit_account", "recover_password", "registration_problems",
        "switch_account", "check_cancellation_fee", "contact_customer_service", "contact_human_agent",
        "delivery_options", "delivery_period", "complaint", "review", "check_invoice", "get_invoice",
        "newsletter_subscription", "cancel_order", "change_order", "place_order", "track_order",
        "check_payment_methods", "payment_issue", "check_refund_policy", "get_refund", "track_refund",
        "change_shipping_address", "set_up_shipping_address",
    }
)
ALL_INTENTS = BITEXT_INTENTS | {OOS}
MIN_EXAMPLES = 40
MIN_OOS_EXAMPLES = 120
SMOKE_PER_INTENT = 2
ORDER_ID = re.compile(r"\b(?:#|order\s+)?(10\d\d)\b", re.IGNORECASE)


def normalize(text: str) -> str:
    """Lowercase, replace punctuation with spaces and collapse whitespace."""
    return " ".join(re.sub(r"[^\w\s]|_", " ", text.lower()).split())


def copy_keys(text: str) -> set[str]:
    """Comparison keys for the no-copy check: punctuation replaced by spaces, and punctuation deleted."""
    lowered = text.lower()
    return {normalize(text), " ".join(re.sub(r"[^\w\s]|_", "", lowered).split())}


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    data = yaml.safe_load(EXAMPLES_PATH.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def examples(doc: dict[str, Any]) -> dict[str, list[str]]:
    return {name: list(spec["examples"]) for name, spec in doc["intents"].items()}


def test_format_and_taxonomy(doc: dict[str, Any]) -> None:
    assert doc["version"] == 1
    assert set(doc["intents"]) == ALL_INTENTS
    for name, spec in doc["intents"].items():
        assert isinstance(spec["description"], str) and len(spec["description"].split()) >= 5, name
        assert all(isinstance(e, str) and e.strip() for e in spec["examples"]), name


def test_enough_unique_examples_per_intent(examples: dict[str, list[str]]) -> None:
    for name, texts in examples.items():
        unique = {normalize(t) for t in texts}
        assert len(unique) == len(texts), f"{name} repeats an example"
        need = MIN_OOS_EXAMPLES if name == OOS else MIN_EXAMPLES
        assert len(unique) >= need, f"{name}: {len(unique)} < {need}"


def test_no_example_in_two_intents(examples: dict[str, list[str]]) -> None:
    owners = Counter(normalize(t) for texts in examples.values() for t in set(texts))
    shared = [text for text, n in owners.items() if n > 1]
    assert not shared, f"examples under more than one intent: {shared}"


def test_examples_vary_in_style(examples: dict[str, list[str]]) -> None:
    """The brief asks for order ids, error text and both short and long phrasings, not one template."""
    in_scope = [t for name, texts in examples.items() if name != OOS for t in texts]
    ids = {m.group(1) for t in in_scope for m in ORDER_ID.finditer(t)}
    assert ids <= {str(n) for n in range(1001, 1011)}, f"order ids outside 1001-1010: {ids}"
    assert len(ids) == 10
    for name, texts in examples.items():
        lengths = [len(t.split()) for t in texts]
        assert min(lengths) <= 4 and max(lengths) >= 12, f"{name} lacks short or long examples"
        if name != OOS:
            assert sum(t == t.lower() for t in texts) >= 5, f"{name} lacks lowercase chat-style examples"
            assert any(re.search(r"error|\b[45]\d\d\b|[A-Z]{2,}[-_ ]?\d+|'[^']+'", t) for t in texts), (
                f"{name} has no example with technical error text"
            )


def test_smoke_covers_every_intent_and_is_held_out(doc: dict[str, Any], examples: dict[str, list[str]]) -> None:
    smoke = doc["smoke"]
    assert all(set(item) == {"intent", "text"} for item in smoke)
    unknown = {item["intent"] for item in smoke} - ALL_INTENTS
    assert not unknown, f"smoke uses unknown intents: {unknown}"
    assert Counter(item["intent"] for item in smoke) == dict.fromkeys(ALL_INTENTS, SMOKE_PER_INTENT)
    trained = {normalize(t) for texts in examples.values() for t in texts}
    leaked = [item["text"] for item in smoke if normalize(item["text"]) in trained]
    assert not leaked, f"smoke utterances also in examples: {leaked}"
    assert len({normalize(item["text"]) for item in smoke}) == len(smoke)


def test_copy_keys_ignore_case_and_punctuation() -> None:
    assert normalize("Where's my ORDER #1004?!") == "where s my order 1004"
    assert copy_keys("Where's my ORDER #1004?!") == {"where s my order 1004", "wheres my order 1004"}
    assert copy_keys("cancel  order_1004.") & copy_keys("Cancel order 1004")


def test_no_utterance_copied_from_bitext(doc: dict[str, Any], examples: dict[str, list[str]]) -> None:
    if not BITEXT_CSV.is_file():
        pytest.skip(f"Bitext dataset not found at {BITEXT_CSV} (set SWITCHBOARD_SHARED_DATA)")
    with BITEXT_CSV.open(encoding="utf-8", newline="") as fh:
        bitext = {key for row in csv.DictReader(fh) for key in copy_keys(row["instruction"])}
    assert len(bitext) > 4000
    ours = [t for texts in examples.values() for t in texts] + [item["text"] for item in doc["smoke"]]
    copied = [t for t in ours if copy_keys(t) & bitext]
    assert not copied, f"utterances equal to a Bitext instruction: {copied}"
