"""dialogue.slots: every slot type, the reported bugs, negatives, robustness; and the Bitext slot eval on a tiny CSV.

All texts are written for these tests (none comes from Bitext).
"""

from __future__ import annotations

import csv
import json
import random
import time
from decimal import Decimal
from pathlib import Path

import pydantic
import pytest

from dialogue.slots import EMAIL_RE, MONEY_RE, ORDER_ID_RE, PHONE_CANDIDATE_RE, POSTCODE_RE, Address, Money, Slots
from dialogue.slots import extract_slots as x

# ------------------------------------------------------------------------------------------ reported bugs


def test_bug_local_phone_with_a_dash_is_a_phone_change() -> None:
    s = x("change my phone number to 0612-345678")
    assert s.phone == "+31612345678"
    assert (s.account_field, s.account_value) == ("phone", "+31612345678")
    assert s.order_ids == []  # "345678" after the dash is not an order number


def test_bug_address_is_the_address_not_the_sentence() -> None:
    s = x("I want to change the delivery address of order 1004 to 12 Baker Street, London NW1 6XE")
    assert s.address == Address(street="12 Baker Street", postcode="NW1 6XE", city="London",
                                text="12 Baker Street, London NW1 6XE")
    assert s.order_ids == [1004]


def test_bug_dollars_are_usd() -> None:
    s = x("refund me 500 dollars for order 1002")
    assert s.amount == Money(amount=Decimal("500"), currency="USD")
    assert s.order_ids == [1002]


# -------------------------------------------------------------------------------------------- order ids


@pytest.mark.parametrize(("text", "ids"), [
    ("where is order 1004?", [1004]),
    ("#1004 never showed up", [1004]),
    ("order no. 1004 is late", [1004]),
    ("my order number: 1004", [1004]),
    ("order #1004", [1004]),
    ("it's 1006", [1006]),
    ("1006", [1006]),
    ("orders 1004, 1005 and again 1004 are wrong", [1004, 1005]),
    ("package 1008 and order 1003", [1008, 1003]),
    ("cancel purchase 00231877 please", [231877]),
    ("my order1004 is broken", [1004]),
    ("cancel my ordr 7788991 now", [7788991]),  # a misspelt keyword
])
def test_order_ids(text: str, ids: list[int]) -> None:
    assert x(text).order_ids == ids


@pytest.mark.parametrize("text", [
    "I bought it in 2024 and the order never came",  # a year
    "you charged me 1004 euros for the order",  # an amount
    "deliver the order to 1012 AB Amsterdam",  # a postcode
    "call me about the order on 0612-345678",  # phone digits
    "call me about the order on 06 1234 5678",
    "write to order.1004@example.com about my delivery",  # digits inside an e-mail
    "the invoice #20931 for my order is wrong",  # an invoice number
    "I returned 3 items from my order",
    "I have a question about shipping times for about 1500 people",  # not about an order, not just a number
])
def test_not_order_ids(text: str) -> None:
    assert x(text).order_ids == []


def test_amount_number_is_not_an_order_but_the_order_is() -> None:
    s = x("I paid 1004 euros for order 1005")
    assert s.order_ids == [1005]
    assert s.amount == Money(amount=Decimal("1004"), currency="EUR")


# ------------------------------------------------------------------------------------------------ money


@pytest.mark.parametrize(("text", "amount", "currency"), [
    ("please give back €12,50", "12.50", "EUR"),
    ("it was 12,50 € too much", "12.50", "EUR"),
    ("I want 20 euros back", "20", "EUR"),
    ("a refund of 1 euro", "1", "EUR"),
    ("charged EUR 15 twice", "15", "EUR"),
    ("charged 15 eur twice", "15", "EUR"),
    ("refund $7 please", "7", "USD"),
    ("refund 7$ please", "7", "USD"),
    ("refund me 500 dollars", "500", "USD"),
    ("usd 42.10 went missing", "42.10", "USD"),
    ("£3.99 for delivery?", "3.99", "GBP"),
    ("3.99 pounds for delivery?", "3.99", "GBP"),
    ("the 1.250,00 euro invoice", "1250.00", "EUR"),
    ("the $1,250.00 invoice", "1250.00", "USD"),
    ("refund 20", "20", None),
    ("please refund me 20 for the broken lamp", "20", None),
])
def test_money(text: str, amount: str, currency: str | None) -> None:
    assert x(text).amount == Money(amount=Decimal(amount), currency=currency)


@pytest.mark.parametrize("text", ["refund order 1004", "it took 3 days", "0 euros", "I want a refund"])
def test_no_money(text: str) -> None:
    assert x(text).amount is None


def test_money_model_rejects_nonsense() -> None:
    with pytest.raises(pydantic.ValidationError):
        Money(amount=Decimal("0"), currency="EUR")
    with pytest.raises(pydantic.ValidationError):
        Money(amount=Decimal("1.234"), currency="EUR")
    with pytest.raises(pydantic.ValidationError):
        Money(amount=Decimal("1"), currency="euro")


# ---------------------------------------------------------------------------------------------- address


@pytest.mark.parametrize(("text", "expected"), [
    ("ship it to 12 Baker Street", Address(street="12 Baker Street", text="12 Baker Street")),
    ("please ship it to 12 Baker Street, London NW1 6XE thanks a lot",
     Address(street="12 Baker Street", postcode="NW1 6XE", city="London", text="12 Baker Street, London NW1 6XE")),
    ("my new address is Hauptstraße 5, 10115 Berlin",
     Address(street="Hauptstraße 5", postcode="10115", city="Berlin", text="Hauptstraße 5, 10115 Berlin")),
    ("I moved to 5 rue de la Paix, 75002 Paris, France.",
     Address(street="5 rue de la Paix", postcode="75002", city="Paris", country="France",
             text="5 rue de la Paix, 75002 Paris, France")),
    ("deliver to Kalverstraat 1, 1012 AB Amsterdam please",
     Address(street="Kalverstraat 1", postcode="1012 AB", city="Amsterdam", text="Kalverstraat 1, 1012 AB Amsterdam")),
    ("send it to 123 Main St, Springfield, IL 62704-1234",
     Address(street="123 Main St", postcode="62704-1234", city="Springfield",
             text="123 Main St, Springfield, IL 62704-1234")),
    ("new address: Via Roma 10, 00184 Roma",
     Address(street="Via Roma 10", postcode="00184", city="Roma", text="Via Roma 10, 00184 Roma")),
    ("ship it to London NW1 6XE", Address(postcode="NW1 6XE", city="London", text="London NW1 6XE")),
    ("my postcode is 1012 AB", Address(postcode="1012 AB", text="1012 AB")),
])
def test_address(text: str, expected: Address) -> None:
    assert x(text).address == expected


@pytest.mark.parametrize("text", [
    "my new address is dana@example.com",  # an e-mail is not an address
    "please update my email address to dana@example.com",
    "do you also ship to Rotterdam?",  # a place, but no street or postcode
    "I have 2 more items on the way",  # "way" after a number is no street
    "change the delivery address of my order",
    "send it via post 2 times",
])
def test_no_address(text: str) -> None:
    assert x(text).address is None


@pytest.mark.parametrize("text", [
    "Hi, I want to change the delivery address of order 1004 to 12 Baker Street, London NW1 6XE please.",
    "ship it to 12 Baker Street, London NW1 6XE and tell me when it leaves",
    "My new address is 12 Baker Street, London NW1 6XE. Thanks!",
])
def test_the_sentence_around_an_address_is_never_part_of_it(text: str) -> None:
    address = x(text).address
    assert address is not None and address.text == "12 Baker Street, London NW1 6XE"


# ------------------------------------------------------------------------------------------------ phone


@pytest.mark.parametrize(("text", "region", "e164"), [
    ("my number is 06 12 34 56 78", "NL", "+31612345678"),
    ("my number is 0612345678", "NL", "+31612345678"),
    ("my number is 020-1234567", "NL", "+31201234567"),
    ("reach me on +31 6 1234 5678", "NL", "+31612345678"),
    ("reach me on 0031 6 12345678", "NL", "+31612345678"),
    ("my mobile is 07911 123456", "GB", "+447911123456"),
    ("call (415) 555-2671 after six", "US", "+14155552671"),
    ("call 415.555.2671 after six", "US", "+14155552671"),
    ("ring 030 1234567", "DE", "+49301234567"),
    ("ring +44 20 7946 0958", "NL", "+442079460958"),  # international works in any region
    ("ring +1 415 555 2671", "DE", "+14155552671"),
])
def test_phone(text: str, region: str, e164: str) -> None:
    assert x(text, region=region).phone == e164


@pytest.mark.parametrize("text", ["order 1004", "cancel purchase 5550001112223334", "my number is 12345"])
def test_no_phone(text: str) -> None:
    assert x(text).phone is None


def test_unknown_region_still_reads_international_numbers() -> None:
    assert x("call +31 6 12345678", region="??").phone == "+31612345678"
    assert x("call 0612345678", region="??").phone is None


# -------------------------------------------------------------------------------------- account changes


@pytest.mark.parametrize(("text", "field", "value"), [
    ("update my email to New.Name@Example.org", "email", "new.name@example.org"),
    ("my e-mail address changed, it is now dana@example.net", "email", "dana@example.net"),
    ("change my name to Dana Smith", "name", "Dana Smith"),
    ("please change my name to Dr. Dana Smith, thanks", "name", "Dana Smith"),
    ("my last name is misspelled, it should be Smith", "name", "Smith"),
    ("change my phone number to 0612-345678", "phone", "+31612345678"),
    ("update my mobile number", "phone", None),
    ("I need to change my name", "name", None),
])
def test_account_change(text: str, field: str, value: str | None) -> None:
    s = x(text)
    assert (s.account_field, s.account_value) == (field, value)


@pytest.mark.parametrize("text", [
    "my name is Dana Smith",  # an introduction, not a change
    "where is my order?",
    "please update me by email when it ships",
    "I want to change my username",
])
def test_no_account_change(text: str) -> None:
    assert x(text).account_field is None


def test_email_is_lower_cased() -> None:
    assert x("Write to Dana.Smith@Example.COM").email == "dana.smith@example.com"


# ------------------------------------------------------------------------------------------- newsletter


@pytest.mark.parametrize(("text", "subscribed"), [
    ("unsubscribe me from the newsletter", False),
    ("please unsubscribe", False),
    ("I want to opt out", False),
    ("stop sending me those emails", False),
    ("I don't want to subscribe", False),
    ("subscribe me to the newsletter", True),
    ("sign me up for your newsletter", True),
    ("I'd like to opt in", True),
    ("sign me up for an account", None),
    ("where is my order", None),
])
def test_newsletter(text: str, subscribed: bool | None) -> None:
    assert x(text).subscribed is subscribed


# ------------------------------------------------------------------------------------- model and output


def test_entities_is_flat_with_known_keys_only() -> None:
    s = x("refund me 500 dollars for order 1002 and send it to 12 Baker Street, London NW1 6XE; "
          "my new email is a@b.org")
    assert s.entities() == {
        "order_id": 1002, "order_ids": [1002], "amount": 500.0, "currency": "USD",
        "address": "12 Baker Street, London NW1 6XE",
        "address_parts": {"street": "12 Baker Street", "postcode": "NW1 6XE", "city": "London"},
        "email": "a@b.org", "field": "email", "value": "a@b.org",
    }
    assert x("").entities() == {}
    assert x("refund 20").entities() == {"amount": 20.0}


def test_slots_are_frozen_and_closed() -> None:
    s = x("order 1004")
    with pytest.raises(pydantic.ValidationError):
        s.email = "a@b.org"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        Slots(order_ids=[1], colour="red")  # type: ignore[call-arg]


def test_shared_regexes() -> None:
    assert EMAIL_RE.search("mail dana@example.org now").group(0) == "dana@example.org"  # type: ignore[union-attr]
    assert ORDER_ID_RE.search("order number: 1004").group("id") == "1004"  # type: ignore[union-attr]
    assert MONEY_RE.search("pay 5 euros")
    assert PHONE_CANDIDATE_RE.search("call 0612-345678")
    assert POSTCODE_RE.search("London NW1 6XE")


# ------------------------------------------------------------------------------------------- robustness


def test_never_raises_on_odd_strings() -> None:
    rnd = random.Random(7)
    alphabet = "0123456789 +-().,#:$€£@/ abcXYZ straße Street order eur \n\t日本é"
    odd = ["", " ", "\x00", "#", "€", "+", "00", "order", "order #", "@@", "1" * 10_000, "€" * 10_000,
           "ø" * 10_000, ("order 1004 12 Baker Street 0612-345678 €5 " * 400)[:10_000]]
    odd += ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 120))) for _ in range(300)]
    for text in odd:
        assert isinstance(x(text), Slots)


def test_adversarial_inputs_stay_fast() -> None:
    texts = ["1 " * 5000, "a " * 5000 + "street", "1-" * 5000, "12 " + "Baker " * 3000 + "Street", "#1" * 5000]
    started = time.perf_counter()
    for text in texts:
        x(text)
    assert time.perf_counter() - started < 2.0


# ------------------------------------------------------------------------------------------------- eval

COLUMNS = ["context", "role", "instruction", "intent", "entity_type", "entity_value", "start_offset", "end_offset",
           "category", "tags", "response"]
# (instruction, intent, entity_type, entity_value, tagged span, expected split). Texts are our own.
ROWS = [
    ("cancel order 55501 asap", "cancel_order", "order_id", "55501", "55501", "test"),  # order tp
    ("what happened to the thing I bought, 44556677 thank you", "track_order", "order_id", "44556677",
     "44556677", "test"),  # order fn
    ("I bought two things and order 60012 is fine", "track_order", "", "", "", "test"),  # order fp (untagged)
    ("please reimburse me $45", "get_refund", "refund_amount", "45", "45", "test"),  # amount tp
    ("refund 120 dollars!", "get_refund", "refund_amount", "12", "120", "test"),  # tp: gold from the span
    ("my refund of $30 never arrived", "track_refund", "", "", "", "test"),  # amounts untagged here: unscored
    ("send it to 12 Baker Street", "change_shipping_address", "", "", "", "test"),  # an address: a negative
    ("show me invoice #20931", "check_invoice", "invoice_id", "#20931", "#20931", "test"),  # no counterpart
    ("cancel order 1234", "cancel_order", "order_id", "1234", "1234", "dev"),
]


def _write_csv(path: Path) -> None:
    path.parent.mkdir(parents=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for text, intent, etype, value, span, _ in ROWS:
            start = text.index(span) if span else ""
            writer.writerow({"context": "customer support", "role": "virtual assistant", "instruction": text,
                             "intent": intent, "entity_type": etype, "entity_value": value, "start_offset": start,
                             "end_offset": start + len(span) if span else "", "category": "X", "tags": "B",
                             "response": "ok"})


@pytest.fixture
def tiny_bitext(tmp_path: Path) -> Path:
    from evals.slots import CSV_NAME, DATASET

    _write_csv(tmp_path / "data" / DATASET / CSV_NAME)
    return tmp_path / "data"


def test_eval_figures_on_a_tiny_csv(tiny_bitext: Path, tmp_path: Path) -> None:
    from evals.slots import is_test, run

    assert [("test" if is_test(r[0]) else "dev") for r in ROWS] == [r[5] for r in ROWS]
    report = run(tiny_bitext, tmp_path / "out", progress=False)
    assert (report["n_rows"], report["n_test"], report["n_dev"]) == (9, 8, 1)
    assert report["types"]["order_id"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2,
                                           "tp": 1, "fp": 1, "fn": 1}
    assert report["types"]["amount"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2,
                                         "tp": 2, "fp": 0, "fn": 0}
    assert report["micro"] == {"precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4, "tp": 3, "fp": 1, "fn": 1}
    assert report["negatives"]["address"] == {"false_positives": 1, "rows": 8}
    assert report["negatives"]["email"]["false_positives"] == 0
    assert report["unscored_predictions"] == {"amount": 1}
    assert report["gold"]["span_differs_from_entity_value"] == {"amount": 1}
    assert report["dev"]["types"]["order_id"]["tp"] == 1 and report["dev"]["n_rows"] == 1
    assert set(report["not_scored"]) == {"invoice_id", "account_type", "person_name", "delivery_city",
                                         "delivery_country"}
    saved = json.loads((tmp_path / "out" / "slots.json").read_text())
    assert saved["micro"] == report["micro"]
    assert (tmp_path / "out" / "slots.png").read_bytes()[:4] == b"\x89PNG"
    text = (tmp_path / "out" / "slots.json").read_text()
    assert not any(r[0] in text for r in ROWS)  # figures only, no dataset text


def test_eval_cli_json_prints_only_json(tiny_bitext: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from evals import cli, slots

    monkeypatch.setattr(slots, "DEFAULT_OUT_DIR", tmp_path / "out")
    assert "slots" in cli.KINDS
    assert cli.eval_main(["slots", "--json", "--data-dir", str(tiny_bitext), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["micro"]["f1"] == 0.75
    assert out.err == ""


def test_eval_skips_without_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evals import cli
    from evals.slots import run

    report = run(tmp_path / "nothing", tmp_path / "out")
    assert "skipped" in report and "not found" in report["skipped"]
    assert not (tmp_path / "out").exists()
    assert cli.eval_main(["slots", "--json", "--data-dir", str(tmp_path / "nothing"), "--out",
                          str(tmp_path / "out")]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["skipped"] == report["skipped"]
    assert out.err.startswith("skipped: ") and out.err.count("\n") == 1
