"""One typed, deterministic slot extractor: order ids, money, address, e-mail, phone, account changes, newsletter.

`extract_slots(text, region="NL") -> Slots` is offline and pure (no I/O, no model), precompiled regexes only, and
never raises on a string. Spans are claimed in a fixed order so one piece of text fills one slot only:

    e-mail -> money -> order ids after a keyword -> address -> phone -> bare order numbers

so "1004 euros" is an amount (never an order id), digits in an e-mail, a postcode or a phone number are never an
order id, and an e-mail is never part of an address. The public regexes (`EMAIL_RE`, `ORDER_ID_RE`, `MONEY_RE`,
`PHONE_CANDIDATE_RE`, `POSTCODE_RE`) are the one shared set: PII redaction, the output guard, the account tool, session
memory and lessons import them rather than keep their own.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EMAIL_RE",
    "MONEY_RE",
    "ORDER_ID_RE",
    "PHONE_CANDIDATE_RE",
    "POSTCODE_RE",
    "Address",
    "Money",
    "Slots",
    "extract_slots",
]

MAX_CHARS = 20_000
"""Only the first MAX_CHARS characters are read (keeps the worst case bounded; real messages are far shorter)."""

AccountField = Literal["name", "email", "phone"]


# ------------------------------------------------------------------------------------------------ types


class Money(BaseModel):
    """An amount of money; `currency` is an ISO 4217 code, or None when the text names none ("refund 20")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: Decimal = Field(gt=0, decimal_places=2)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")


class Address(BaseModel):
    """A postal address found in a message; `text` is the address only, never the sentence around it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    street: str | None = None
    postcode: str | None = None
    city: str | None = None
    country: str | None = None
    text: str = Field(min_length=1)

    def parts(self) -> dict[str, str]:
        """The components that were found (street, postcode, city, country)."""
        found = {"street": self.street, "postcode": self.postcode, "city": self.city, "country": self.country}
        return {k: v for k, v in found.items() if v is not None}


class Slots(BaseModel):
    """Everything `extract_slots` found in one message (empty list / None where nothing was found)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    order_ids: list[int] = Field(default_factory=list)
    """In order of appearance, de-duplicated."""
    amount: Money | None = None
    address: Address | None = None
    email: str | None = None
    """Lower-cased."""
    phone: str | None = None
    """E.164, e.g. "+31612345678"."""
    account_field: AccountField | None = None
    """Which account detail the customer wants to change."""
    account_value: str | None = None
    """The new value for `account_field` (e-mail lower-cased, phone E.164, name without titles)."""
    subscribed: bool | None = None
    """Newsletter: True subscribe, False unsubscribe, None not mentioned."""

    def entities(self) -> dict[str, Any]:
        """A flat dict of what was found, with only these keys: order_id (the first), order_ids, amount (float),
        currency, address (text), address_parts, email, phone, field, value, subscribed."""
        out: dict[str, Any] = {}
        if self.order_ids:
            out["order_id"] = self.order_ids[0]
            out["order_ids"] = list(self.order_ids)
        if self.amount is not None:
            out["amount"] = float(self.amount.amount)
            if self.amount.currency is not None:
                out["currency"] = self.amount.currency
        if self.address is not None:
            out["address"] = self.address.text
            out["address_parts"] = self.address.parts()
        if self.email is not None:
            out["email"] = self.email
        if self.phone is not None:
            out["phone"] = self.phone
        if self.account_field is not None:
            out["field"] = self.account_field
            if self.account_value is not None:
                out["value"] = self.account_value
        if self.subscribed is not None:
            out["subscribed"] = self.subscribed
        return out


# ------------------------------------------------------------------------------------------ shared regexes

EMAIL_RE = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b")
"""An e-mail address."""

_CURRENCY_SYMBOLS = {
    "us$": "USD", "ca$": "CAD", "c$": "CAD", "au$": "AUD", "a$": "AUD", "$": "USD", "€": "EUR", "£": "GBP",
    "¥": "JPY",
}
_CURRENCY_WORDS = {
    "eur": "EUR", "euro": "EUR", "euros": "EUR", "usd": "USD", "dollar": "USD", "dollars": "USD", "buck": "USD",
    "bucks": "USD", "us dollar": "USD", "us dollars": "USD", "gbp": "GBP", "pound": "GBP", "pounds": "GBP",
    "pound sterling": "GBP", "pounds sterling": "GBP", "sterling": "GBP", "quid": "GBP", "chf": "CHF",
    "franc": "CHF", "francs": "CHF", "swiss franc": "CHF", "swiss francs": "CHF", "jpy": "JPY", "yen": "JPY",
    "cad": "CAD", "canadian dollar": "CAD", "canadian dollars": "CAD", "aud": "AUD", "australian dollar": "AUD",
    "australian dollars": "AUD",
}
_CODES = ("eur", "usd", "gbp", "chf", "jpy", "cad", "aud")


def _alternation(words: Any) -> str:
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in sorted(words, key=len, reverse=True))


_SYM = _alternation(_CURRENCY_SYMBOLS)
_CUR_WORD = _alternation(_CURRENCY_WORDS)
_NUMBER = r"(?:\d{1,3}(?:[.,]\d{3}){1,4}|\d{1,12})(?:[.,]\d{1,2})?(?![\d]|[.,]\d)"
MONEY_RE = re.compile(
    rf"(?P<cur1>{_SYM}|\b(?:{'|'.join(_CODES)})\b)\s?(?P<n1>(?<![\d.,]){_NUMBER})"
    rf"|(?<![\w.,#/-])(?P<n2>{_NUMBER})\s?(?P<cur2>{_SYM}|(?:{_CUR_WORD})\b)",
    re.IGNORECASE,
)
"""An amount with its currency, symbol or code before ("€12,50", "USD 20") or symbol/word after ("500 dollars")."""

_UNITS = (r"%|percent\b|items?\b|pieces?\b|pcs\b|units?\b|days?\b|weeks?\b|months?\b|years?\b|hours?\b|minutes?\b"
          r"|times\b|orders?\b|points?\b|km\b|kg\b|miles?\b|gb\b|mb\b")
_BARE_AMOUNT_RE = re.compile(
    r"\b(?:refund(?:ed|ing)?|reimburs\w*|charged?|charging|overcharged|paid|pay|payment|cost|costs|price|amount"
    r"|credit(?:ed)?|compensat\w*|rebate|restitution|deducted|billed|money\s+back)\b"
    r"(?:\s+(?:me|us|of|the|a|an|for|about|around|approx\.?|approximately|only|just|total|was|is|were|exactly|back))*"
    rf"\s+(?P<n>(?<![\d.,]){_NUMBER})(?![\w-])(?!\s?(?:{_UNITS}|{_SYM}))",
    re.IGNORECASE,
)

_ORDER_WORDS = r"order|purchase|package|parcel|shipment|bestelling|bestellung|commande|pedido|ordine"
ORDER_ID_RE = re.compile(
    rf"(?:\b(?:{_ORDER_WORDS})s?(?:\b|(?=\d))[\s-]*(?:(?:no|nr|num|number|id|ref|reference|code)\b\.?\s*)?(?:(?:is|was|=)\s+)?"
    r"[:#]?\s*|(?<![\w&])#\s?)"
    rf"(?P<id>\d{{4,20}})(?![\w-]|[.,]\d)(?!\s?(?:{_SYM}|(?:{_CUR_WORD})\b))",
    re.IGNORECASE,
)
"""An order id after a keyword or '#': "order 1004", "#1004", "order no. 1004", "order number: 1004"."""

_HASH_OWNER_RE = re.compile(r"([^\W\d_]{5,12})\s*(?:no\.?|nr\.?|number|id)?\s*$", re.IGNORECASE)
_NOT_ORDER_NEAR = ("invoice", "receipt", "ticket", "account", "customer", "reference")
_NOT_ORDER_BEFORE_HASH_RE = re.compile(
    r"\b(?:invoice|bill|receipt|ticket|case|account|customer|member|card|iban|vat|tax|ref|reference|item|sku"
    r"|article|product|room|house|flat|apt|apartment|unit|suite|tracking)s?\s*(?:no\.?|nr\.?|number|id)?\s*$",
    re.IGNORECASE,
)
_LOOSE_ORDER_RE = re.compile(
    r"(?<![^\W\d_])(?P<word>[^\W\d_]{3,14})(?:\s*(?:no\.?|nr\.?|number|id)\b)?[\s#:.-]{0,3}(?P<id>\d{4,20})"
    r"(?![\w-]|[.,]\d)",
    re.IGNORECASE,
)
"""Word + number: an order id if the word is "order"/"purchase" misspelt/glued ("ordr 1004", "myorder 1004")."""
_GLUED_PREFIXES = ("the", "this", "my", "your", "our", "is", "an", "a")
_NOT_A_TYPO = frozenset({"older", "odder", "border", "orders", "ordered", "purchased", "purchases", "recorder"})
_ORDER_CONTEXT_RE = re.compile(
    rf"\b(?:(?:{_ORDER_WORDS})s?|ordered|deliver(?:y|ies)|tracking)\b", re.IGNORECASE
)
_BARE_NUMBER_RE = re.compile(r"(?<![\w.,+/#$€£:-])(\d{4,6})(?![\w/-]|[.,:]\d)")
_UNIT_AFTER_RE = re.compile(rf"\s*(?:{_UNITS})", re.IGNORECASE)

PHONE_CANDIDATE_RE = re.compile(r"(?<![\w+])(?:\+|\b00)?[ ]?\(?\d[\d ().\-/]{5,22}\d(?![\w])")
"""Something that may be a phone number; `phonenumbers` decides (digits 7-15, valid for the region)."""

_UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]? ?\d[ABD-HJLNP-UW-Z]{2}"
_NL_POSTCODE = r"[1-9]\d{3} ?(?!SA|SD|SS)[A-Z]{2}"
_CA_POSTCODE = r"[ABCEGHJ-NPRSTVXY]\d[A-Z] ?\d[A-Z]\d"
POSTCODE_RE = re.compile(
    rf"(?<![\w-])(?:(?P<uk>{_UK_POSTCODE})|(?P<nl>{_NL_POSTCODE})|(?P<ca>{_CA_POSTCODE}))(?![\w-])"
)
"""An unambiguous postcode (UK "NW1 6XE", NL "1012 AB", CA "K1A 0B1"), upper case as written on letters."""
_POSTCODE_ANYCASE_RE = re.compile(POSTCODE_RE.pattern, re.IGNORECASE)
_DIGIT_POSTCODE_RE = re.compile(r"(?<![\w.,/+-])(?P<zip>\d{5}(?:-\d{4})?|\d{4})(?![\w/-]|[.,]\d)")
_POSTCODE_CUE_RE = re.compile(r"\b(?:zip(?:\s*code)?|post\s*code|postal\s*code|plz|postcode)\s*(?:is|:)?\s*$",
                              re.IGNORECASE)
_CITY_BEFORE_RE = re.compile(r"((?:[^\W\d_]+(?:['’\-][^\W\d_]+)*\s+){0,2}[^\W\d_]+(?:['’\-][^\W\d_]+)*),?\s*$")
_ADDRESS_CUE_RE = re.compile(r"\b(?:address|ship|shipping|deliver\w*|send|post\s*code|postcode|zip|live)\b",
                             re.IGNORECASE)

# --------------------------------------------------------------------------------------- address pieces

_WORD = r"[^\W\d_]++(?:['’\-][^\W\d_]++)*+"  # possessive: no backtracking inside a word
_TYPE_AFTER = (
    r"(?:street|st|road|rd|avenue|ave|lane|ln|drive|dr|boulevard|blvd|way|place|pl|court|ct|square|sq|terrace"
    r"|crescent|close|highway|hwy|parkway|pkwy|mews|gardens|grove|row|walk|straat|laan|weg|gracht|plein|kade"
    r"|singel|dijk|straße|strasse|str|allee|platz|gasse|steeg)\b\.?"
)
_TYPE_BEFORE = (
    r"(?:rue|avenue|av|boulevard|bd|chemin|allée|impasse|quai|place|calle|avenida|avda|plaza|paseo|camino|carrer"
    r"|via|viale|piazza|corso|largo|vicolo|rua|praça|travessa)\b\.?"
)
_SUFFIXES = r"(?:straße|strasse|straat|laan|weg|gracht|plein|kade|singel|dijk|allee|platz|gasse|steeg|str)"
_COMPOUND = rf"[^\W\d_]+?{_SUFFIXES}\b\.?"
_NUM_FIRST = r"(?<![\w.,/+-])\d{1,5}[a-z]?(?:[-/]\d{1,4}[a-z]?)?(?![\w/-])"
_NUM_AFTER = r"(?<![\w.,/+-])\d{1,4}[a-z]?(?:[-/]\d{1,4}[a-z]?)?(?![\w/-]|[.,]\d)"
_NAMESEQ = rf"{_WORD}(?:\s+{_WORD}){{0,5}}"

# number first: "12 Baker Street", "5 rue de la Paix"; number after: "Via Roma 10", "Baker Street 12", "Hauptstraße 5"
_STREET_RES = (
    ("num_name_type", re.compile(rf"(?P<num>{_NUM_FIRST})\s+(?P<name>(?:{_WORD}\s+){{1,4}}?)(?P<type>{_TYPE_AFTER})",
                                 re.IGNORECASE)),
    ("num_type_name", re.compile(rf"(?P<num>{_NUM_FIRST}),?\s+(?P<type>{_TYPE_BEFORE})\s+(?P<name>{_NAMESEQ})",
                                 re.IGNORECASE)),
    ("type_name_num", re.compile(rf"\b(?P<type>{_TYPE_BEFORE})\s+(?P<name>{_NAMESEQ}),?\s+(?P<num>{_NUM_AFTER})",
                                 re.IGNORECASE)),
    ("name_type_num", re.compile(rf"\b(?P<name>(?:{_WORD}\s+){{1,3}})(?P<type>{_TYPE_AFTER}),?\s+(?P<num>{_NUM_AFTER})",
                                 re.IGNORECASE)),
    ("compound_num", re.compile(rf"\b(?P<name>(?:{_WORD}\s+){{0,2}}{_COMPOUND}),?\s+(?P<num>{_NUM_AFTER})",
                                re.IGNORECASE)),
)
_STREET_PREFILTERS = {  # one cheap pass each: most texts have no street word, so the costly patterns rarely run
    "num_name_type": re.compile(rf"\b{_TYPE_AFTER}", re.IGNORECASE),
    "num_type_name": re.compile(rf"\d[a-z]?,?\s+{_TYPE_BEFORE}", re.IGNORECASE),
    "type_name_num": re.compile(rf"\b{_TYPE_BEFORE}\s", re.IGNORECASE),
    "name_type_num": re.compile(rf"\b{_TYPE_AFTER},?\s+\d", re.IGNORECASE),
    "compound_num": re.compile(rf"{_SUFFIXES}\b\.?,?\s+\d", re.IGNORECASE),
}
_UNIT_BEFORE_RE = re.compile(r"(?:\b(?:flat|apt\.?|apartment|unit|suite)\s+\w{1,5},?\s*)$", re.IGNORECASE)
_UNIT_AFTER_STREET_RE = re.compile(r",?\s*(?:apt\.?|apartment|unit|suite|ste\.?|flat|#)\s*\d{1,4}[a-z]?\b",
                                   re.IGNORECASE)
_TAIL_END_RE = re.compile(r"[!?;\n()\[\]\"]|\.(?=\s|$)|\s[-–—]\s")
_TOKEN_RE = re.compile(r"[^\s,]+|,")
_PARTICLES = frozenset(
    "de du des la le les l d del della dei di da van der den von ten ter op am an aan sur en upon bei y el los las"
    .split()
)
_COUNTRIES = frozenset({
    "netherlands", "the netherlands", "holland", "nederland", "germany", "deutschland", "france", "spain", "españa",
    "espana", "italy", "italia", "belgium", "belgië", "belgique", "austria", "österreich", "switzerland", "schweiz",
    "suisse", "uk", "united kingdom", "great britain", "england", "scotland", "wales", "northern ireland", "ireland",
    "usa", "united states", "united states of america", "canada", "portugal", "denmark", "sweden", "norway",
    "finland", "poland", "luxembourg", "czechia", "czech republic",
})
_STOP = frozenset(
    """a an the to at in on of for from by with and or but so nor is are was were be been being am it its it's this
    that these those my our your his her their me us you i we he she they him them mine please pls plz thanks thank
    thx cheers hi hello hey dear new address addresses delivery deliver delivered ship shipping shipped send sent
    post mail email e-mail change changed changing update updated updating move moved moving live living located
    stay staying instead now today tomorrow asap soon yesterday tonight order orders purchase package parcel item
    items day days week weeks month months year years hour hours time times more less no not yes there here where
    when what which who how all any some just only also too very as if than then number phone euro euros dollar
    dollars pound pounds refund money should would could can will shall may might must do does did done have has had
    get got go going want wanted need needed like use using instead correct wrong old previous current default
    billing home work office house apartment flat floor unit suite apt room via about into onto over under up down
    out off again still already set setup put make add""".split()
)


def _is_stop(token: str) -> bool:
    return token.strip(".,:;'\"").lower() in _STOP


# ----------------------------------------------------------------------------------------------- account

_CHANGE_CUE_RE = re.compile(
    r"\b(?:change[ds]?|changing|update[ds]?|updating|edit(?:ed|ing)?|correct(?:ed|ing)?|modify|modified|modifying"
    r"|set|replace[ds]?|fix|switch|rename|new|wrong|misspel(?:led|t)|incorrect|outdated|should\s+be)\b",
    re.IGNORECASE,
)
_FIELD_RES: tuple[tuple[AccountField, re.Pattern[str]], ...] = (
    ("email", re.compile(r"(?<!\bby )(?<!\bvia )\be-?mail(?:\s*address)?\b", re.IGNORECASE)),
    ("phone", re.compile(
        r"\b(?:(?:mobile|cell|tele?)?phone(?:\s*number)?|mobile(?:\s*number)?|telephone|contact\s*number"
        r"|(?:my|our)\s+number)\b", re.IGNORECASE)),
    ("name", re.compile(
        r"(?<!user )(?<!company )\b(?:(?:full|first|last|family|account|display)\s+)?(?:name|surname)\b",
        re.IGNORECASE)),
)
_SENTENCE_RE = re.compile(r"[^.!?\n]+(?:[.!?\n]+|$)")
_NAME_CONNECTOR_RE = re.compile(r"\b(?:to|is|into|as|should\s+be|be)\b|[:=]", re.IGNORECASE)
_TITLES = frozenset(
    "mr mrs ms miss mx dr prof sir madam dame lord lady rev herr frau mevrouw meneer dhr mevr m mme mlle sr sra srta"
    .split()
)
_NOT_A_NAME = frozenset(
    "wrong incorrect misspelled misspelt spelled spelt changed outdated correct fine ok okay".split()
)
_NAME_TOKEN_RE = re.compile(rf"\s*({_WORD}\.?)")

# ------------------------------------------------------------------------------------------- newsletter

_UNSUBSCRIBE_RE = re.compile(
    r"\b(?:unsubscrib\w*|unsub|de-?subscrib\w*|opt(?:ing|ed)?[- ]?out|stop\s+(?:sending|emailing|mailing)"
    r"|(?:remove|take)\s+me\s+(?:off|from)|no\s+(?:more|longer)\s+(?:e-?mails|newsletters?|mails|marketing)"
    r"|(?:don'?t|do\s+not|never)\s+(?:want\s+(?:to\s+)?)?(?:subscribe|sign\s+up|receive|get)\b"
    r"|cancel\s+(?:my\s+|the\s+)?newsletter)",
    re.IGNORECASE,
)
_SUBSCRIBE_RE = re.compile(
    r"\b(?:subscrib(?:e|ing)|opt(?:ing|ed)?[- ]?in\b"
    r"|(?:sign|signing)\s+(?:me\s+)?up\b(?=.*\b(?:newsletter|mailing|e-?mails?|list|updates|offers)\b)"
    r"|join\s+(?:the\s+|your\s+)?(?:newsletter|mailing\s+list)|add\s+me\s+to\s+(?:the\s+|your\s+)?"
    r"(?:newsletter|mailing\s+list))",
    re.IGNORECASE,
)


# ------------------------------------------------------------------------------------------------ helpers

_DIGIT_RE = re.compile(r"\d")


class _Claims:
    """Character spans already given to a slot: sorted, disjoint (overlapping adds are merged), bisect look-ups."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def add(self, start: int, end: int) -> None:
        i = bisect_left(self.starts, start)
        if i > 0 and self.ends[i - 1] > start:
            i -= 1
            start = self.starts[i]
        j = i
        while j < len(self.starts) and self.starts[j] < end:
            end = max(end, self.ends[j])
            j += 1
        self.starts[i:j], self.ends[i:j] = [start], [end]

    def overlaps(self, start: int, end: int) -> bool:
        i = bisect_left(self.starts, end)  # spans [0, i) start before `end`; the last of them ends last
        return i > 0 and self.ends[i - 1] > start

    def first_after(self, pos: int) -> int | None:
        i = bisect_left(self.starts, pos)
        return self.starts[i] if i < len(self.starts) else None


def _parse_decimal(raw: str) -> Decimal | None:
    """'1.234,56' / '1,234.56' / '12,50' / '1.500' -> Decimal; None when not a positive amount."""
    s = raw.replace(" ", "")
    last_dot, last_comma = s.rfind("."), s.rfind(",")
    sep = max(last_dot, last_comma)
    if sep >= 0 and len(s) - sep - 1 <= 2:  # decimal separator: the last one, with 1-2 digits after it
        whole, frac = s[:sep], s[sep + 1:]
        s = re.sub(r"[.,]", "", whole) + "." + frac
    else:
        s = re.sub(r"[.,]", "", s)
    try:
        value = Decimal(s)
    except InvalidOperation:
        return None
    return value if value > 0 else None


def _currency(token: str) -> str | None:
    key = " ".join(token.lower().split())
    return _CURRENCY_SYMBOLS.get(key) or _CURRENCY_WORDS.get(key)


def _money(text: str, claims: _Claims) -> Money | None:
    found: Money | None = None
    for m in MONEY_RE.finditer(text):
        if claims.overlaps(m.start(), m.end()):
            continue
        raw, cur = (m.group("n1"), m.group("cur1")) if m.group("n1") else (m.group("n2"), m.group("cur2"))
        value = _parse_decimal(raw)
        claims.add(m.start(), m.end())
        if found is None and value is not None:
            found = Money(amount=value, currency=_currency(cur))
    if found is not None:
        return found
    for m in _BARE_AMOUNT_RE.finditer(text):
        if claims.overlaps(m.start("n"), m.end("n")):
            continue
        value = _parse_decimal(m.group("n"))
        if value is not None:
            claims.add(m.start("n"), m.end("n"))
            return Money(amount=value, currency=None)
    return None


def _keyword_order_ids(text: str, claims: _Claims) -> list[tuple[int, int]]:
    found = []
    for m in ORDER_ID_RE.finditer(text):
        start, end = m.span("id")
        if claims.overlaps(start, end):
            continue
        if m.group(0).lstrip().startswith("#") and _not_an_order_hash(text, m.start()):
            continue
        claims.add(start, end)
        found.append((start, int(m.group("id"))))
    return found


def _near(word: str, target: str) -> bool:
    """Damerau-Levenshtein distance <= 1 (one letter wrong, missing, extra or two swapped)."""
    if word == target:
        return True
    lw, lt = len(word), len(target)
    if abs(lw - lt) > 1:
        return False
    i = 0
    while i < min(lw, lt) and word[i] == target[i]:
        i += 1
    if lw == lt:
        return word[i + 1:] == target[i + 1:] or (
            i + 1 < lw and word[i] == target[i + 1] and word[i + 1] == target[i] and word[i + 2:] == target[i + 2:])
    return word[i + 1:] == target[i:] if lw > lt else word[i:] == target[i + 1:]


def _misspelt_order_word(word: str) -> bool:
    w = word.lower()
    if w in _NOT_A_TYPO or w in _STOP:
        return False
    candidates = [w] + [w[len(p):] for p in _GLUED_PREFIXES if w.startswith(p) and len(w) > len(p) + 3]
    return any(_near(c, "order") if len(c) <= 6 else _near(c, "purchase") for c in candidates if len(c) >= 4)


def _not_an_order_hash(text: str, hash_pos: int) -> bool:
    """'#4471' after "invoice", "bill", "ticket" ... (also misspelt: "invoyce #4471") is not an order id."""
    if _NOT_ORDER_BEFORE_HASH_RE.search(text, 0, hash_pos):
        return True
    owner = _HASH_OWNER_RE.search(text, max(0, hash_pos - 30), hash_pos)
    return owner is not None and any(_near(owner.group(1).lower(), w) for w in _NOT_ORDER_NEAR)


def _misspelt_order_ids(text: str, claims: _Claims) -> list[tuple[int, int]]:
    found = []
    for m in _LOOSE_ORDER_RE.finditer(text):
        start, end = m.span("id")
        if claims.overlaps(start, end) or not _misspelt_order_word(m.group("word")):
            continue
        claims.add(start, end)
        found.append((start, int(m.group("id"))))
    return found


def _bare_order_ids(text: str, claims: _Claims) -> list[tuple[int, int]]:
    about_order = bool(_ORDER_CONTEXT_RE.search(text))
    just_the_number = len(text.split()) <= 4
    if not (about_order or just_the_number):
        return []
    found = []
    for m in _BARE_NUMBER_RE.finditer(text):
        start, end = m.span(1)
        digits = m.group(1)
        if claims.overlaps(start, end):
            continue
        if len(digits) == 4 and 1900 <= int(digits) <= 2099:  # a year
            continue
        if re.search(r"\d[ .-]$", text[max(0, start - 2):start]) or re.match(r"[ .-]\d", text[end:end + 2]):
            continue  # one group of a longer digit sequence (phone-like)
        if _UNIT_AFTER_RE.match(text, end):
            continue
        found.append((start, int(digits)))
    return found


def _norm(s: str) -> str:
    return " ".join(s.split()).strip(" ,;:")


def _norm_postcode(kind: str, raw: str) -> str:
    compact = raw.replace(" ", "").upper()
    if kind == "uk":
        return f"{compact[:-3]} {compact[-3:]}"
    if kind == "nl":
        return f"{compact[:4]} {compact[4:]}"
    if kind == "ca":
        return f"{compact[:3]} {compact[3:]}"
    return compact


def _find_postcode(part: str, *, anycase: bool, digits: bool) -> tuple[str, str, int, int] | None:
    """(kind, normalised, start, end) of the first postcode in `part`."""
    m = (_POSTCODE_ANYCASE_RE if anycase else POSTCODE_RE).search(part)
    if m:
        kind = m.lastgroup or "uk"
        return kind, _norm_postcode(kind, m.group(0)), m.start(), m.end()
    if digits:
        d = _DIGIT_POSTCODE_RE.search(part)
        if d:
            return "digits", d.group("zip"), d.start(), d.end()
    return None


def _place_words(tokens: list[str], *, capitalised: bool, limit: int = 4) -> int:
    """How many leading tokens form a place name (city / country); 0 when they do not."""
    n = 0
    for tok in tokens[:limit]:
        word = tok.rstrip(".")
        if not re.fullmatch(_WORD, word) or (_is_stop(word) and word.lower() not in _PARTICLES):
            break
        if word.lower() in _PARTICLES and n == 0:
            break
        if capitalised and not word[0].isupper() and word.lower() not in _PARTICLES:
            break
        n += 1
    while n and tokens[n - 1].rstrip(".").lower() in _PARTICLES:
        n -= 1
    return n


def _is_country(words: str) -> bool:
    return words.lower().replace(".", "") in _COUNTRIES or words == "US"


class _Tail:
    """Reads ", London NW1 6XE, UK" after a street (or "Berlin, Germany" after a postcode)."""

    def __init__(self, postcode: str | None = None, city: str | None = None, country: str | None = None) -> None:
        self.postcode, self.city, self.country = postcode, city, country

    def read(self, text: str, pos: int, claims: _Claims, *, max_parts: int = 4) -> int:
        """Consume address parts from `pos`; return the end of the last accepted part."""
        limit = min(len(text), pos + 160)
        claimed = claims.first_after(pos)
        if claimed is not None:
            limit = min(limit, claimed)
        cut = _TAIL_END_RE.search(text, pos, limit)
        window_end = cut.start() if cut else limit
        tokens = [(m.group(0), m.start(), m.end()) for m in _TOKEN_RE.finditer(text, pos, window_end)]
        parts: list[tuple[bool, list[tuple[str, int, int]]]] = []
        comma = False
        current: list[tuple[str, int, int]] = []
        for tok in tokens:
            if tok[0] == ",":
                parts.append((comma, current))
                comma, current = True, []
            else:
                current.append(tok)
        parts.append((comma, current))
        end = pos
        for after_comma, part in parts[:max_parts]:
            if not part:
                continue
            stop_at = next((i for i, t in enumerate(part) if _is_stop(t[0]) and t[0].lower() not in _PARTICLES),
                           len(part))
            truncated, part = stop_at < len(part), part[:stop_at]
            if not part:
                break
            consumed = self._part(text, part, after_comma)
            if consumed == 0:
                break
            end = part[consumed - 1][2]
            if truncated or consumed < len(part) or self.country:
                break
        return end

    def _part(self, text: str, part: list[tuple[str, int, int]], after_comma: bool) -> int:
        """Tokens of `part` taken as postcode / city / country (0: not an address part)."""
        start, stop = part[0][1], part[-1][2]
        chunk = text[start:stop]
        words = [t[0] for t in part]
        if self.postcode is None:
            pc = _find_postcode(chunk, anycase=True, digits=True)
            if pc is not None:
                kind, code, s, e = pc
                before = [t for t in part if t[2] <= start + s]
                after = [t for t in part if t[1] >= start + e]
                if kind == "digits" and len(code) == 4 and not after:
                    return 0  # a bare 4-digit number is only a postcode with a city after it
                if before and _place_words([t[0] for t in before], capitalised=False) != len(before) \
                        and not (len(before) == 1 and re.fullmatch(r"[A-Z]{2}", before[0][0])):
                    return 0
                self.postcode = code
                if before and self.city is None and not re.fullmatch(r"[A-Z]{2}", before[0][0]):
                    self.city = _norm(" ".join(t[0] for t in before))
                consumed = len(part) - len(after)
                if after:
                    n = _place_words([t[0] for t in after], capitalised=not after_comma)
                    if n and self.city is None:
                        self.city = _norm(" ".join(t[0] for t in after[:n]).rstrip("."))
                        consumed += n
                    elif n and _is_country(" ".join(t[0] for t in after[:n]).rstrip(".")):
                        self.country = _norm(" ".join(t[0] for t in after[:n]))
                        consumed += n
                return consumed
        joined = " ".join(words).rstrip(".")
        if _is_country(joined):
            self.country = _norm(joined)
            return len(part)
        if self.city is None:
            n = _place_words(words, capitalised=not after_comma)
            if n == len(words) and n:
                self.city = _norm(joined)
                return n
        return 0


def _street(text: str, claims: _Claims) -> tuple[int, int, str] | None:
    """(start, end, street) of the earliest street-with-house-number in `text`."""
    best: tuple[int, int, str] | None = None
    for kind, pattern in _STREET_RES:
        if not _STREET_PREFILTERS[kind].search(text):
            continue
        for m in pattern.finditer(text):
            start, end = m.start(), m.end()
            if best is not None and start >= best[0]:
                break
            if claims.overlaps(start, end):
                continue
            name_tokens = m.group("name").split()
            if kind == "num_name_type":
                if any(_is_stop(t) for t in name_tokens):
                    continue
            elif kind == "num_type_name":
                keep = []
                for tok in name_tokens:
                    if _is_stop(tok) and tok.lower() not in _PARTICLES:
                        break
                    keep.append(tok)
                while keep and keep[-1].lower() in _PARTICLES:
                    keep.pop()
                if not keep or not any(t[0].isupper() for t in keep if t.lower() not in _PARTICLES):
                    continue
                end = _end_of_tokens(text, m.start("name"), len(keep))
            elif kind == "type_name_num":
                if any(_is_stop(t) and t.lower() not in _PARTICLES for t in name_tokens) or not any(
                        t[0].isupper() for t in name_tokens if t.lower() not in _PARTICLES):
                    continue
            else:  # name_type_num / compound_num: drop lead-in words ("my new address is ...")
                lead = 0
                while lead < len(name_tokens) - (1 if kind == "compound_num" else 0) and _is_stop(name_tokens[lead]):
                    lead += 1
                if kind == "name_type_num" and lead == len(name_tokens):
                    continue
                if any(_is_stop(t) for t in name_tokens[lead:]):
                    continue
                start = _start_of_token(text, m.start("name"), lead)
            candidate = (start, end, _norm(text[start:end].replace(",", " ")))
            if best is None or start < best[0]:
                best = candidate
            break
    return best


def _end_of_tokens(text: str, pos: int, n: int) -> int:
    for m in re.finditer(r"\S+", text[pos:]):
        n -= 1
        if n == 0:
            return pos + m.end()
    return pos


def _start_of_token(text: str, pos: int, n: int) -> int:
    for i, m in enumerate(re.finditer(r"\S+", text[pos:])):
        if i == n:
            return pos + m.start()
    return pos


def _address(text: str, claims: _Claims) -> Address | None:
    street = _street(text, claims)
    if street is not None:
        start, end, street_text = street
        unit_before = _UNIT_BEFORE_RE.search(text, max(0, start - 30), start)
        if unit_before:
            start = unit_before.start()
        unit_after = _UNIT_AFTER_STREET_RE.match(text, end)
        if unit_after:
            end = unit_after.end()
        tail = _Tail()
        end = max(end, tail.read(text, end, claims))
        address = Address(street=street_text, postcode=tail.postcode, city=tail.city, country=tail.country,
                          text=_norm(text[start:end]))
        claims.add(start, end)
        return address
    return _postcode_address(text, claims)


def _postcode_address(text: str, claims: _Claims) -> Address | None:
    """An address without a street: a postcode with its city ("London NW1 6XE", "10115 Berlin", "zip 12345")."""
    cue = bool(_ADDRESS_CUE_RE.search(text))
    pattern = _POSTCODE_ANYCASE_RE if cue else POSTCODE_RE
    candidates: list[tuple[int, int, str, str]] = []
    for m in pattern.finditer(text):
        if not claims.overlaps(m.start(), m.end()):
            kind = m.lastgroup or "uk"
            candidates.append((m.start(), m.end(), kind, _norm_postcode(kind, m.group(0))))
            break
    for m in _DIGIT_POSTCODE_RE.finditer(text):
        if claims.overlaps(m.start(), m.end()):
            continue
        after = re.match(rf"\s+({_WORD})", text[m.end():])
        keyword = _POSTCODE_CUE_RE.search(text, max(0, m.start() - 20), m.start())
        five = len(m.group("zip")) >= 5
        city_after = bool(after and after.group(1)[0].isupper() and not _is_stop(after.group(1))
                          and _currency(after.group(1)) is None)
        if keyword and five or city_after and (five or cue):
            candidates.append((m.start(), m.end(), "digits", m.group("zip")))
            break
    if not candidates:
        return None
    pstart, pend, kind, code = min(candidates, key=lambda c: (c[0], -c[1]))
    start, city = pstart, None
    if kind in ("uk", "ca"):  # the city comes before the postcode: "London NW1 6XE"
        lo = max(0, pstart - 60)
        before = _CITY_BEFORE_RE.search(text, lo, pstart)
        if before and not claims.overlaps(before.start(1), before.end(1)):
            tokens = before.group(1).split()
            lead = 0
            while lead < len(tokens) and _is_stop(tokens[lead]):
                lead += 1
            kept = tokens[lead:]
            if kept and _place_words(kept, capitalised=False) == len(kept):
                city = " ".join(kept)
                start = _start_of_token(text, before.start(1), lead)
    tail = _Tail(postcode=code, city=city)
    end = max(pend, tail.read(text, pend, claims, max_parts=3))
    address = Address(postcode=code, city=tail.city, country=tail.country, text=_norm(text[start:end]))
    claims.add(start, end)
    return address


def _phones(text: str, claims: _Claims, region: str | None) -> str | None:
    first: str | None = None
    for m in PHONE_CANDIDATE_RE.finditer(text):
        raw = m.group(0).strip()
        start = m.start() + (len(m.group(0)) - len(m.group(0).lstrip()))
        if claims.overlaps(start, m.end()):
            continue
        digits = re.sub(r"\D", "", raw)
        if not 7 <= len(digits) <= 15:
            continue
        if raw.startswith("00"):
            raw = "+" + raw[2:]
        try:
            number = phonenumbers.parse(raw, region if not raw.startswith("+") else None)
        except phonenumbers.NumberParseException:
            continue
        if not phonenumbers.is_valid_number(number):
            continue
        claims.add(start, m.end())
        if first is None:
            first = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return first


def _name_value(text: str, field_end: int) -> str | None:
    """The new name after "name ... to/is/should be/:" ("change my name to Dr. Dana Smith" -> "Dana Smith")."""
    for conn in _NAME_CONNECTOR_RE.finditer(text, field_end, min(len(text), field_end + 60)):
        words: list[str] = []
        pos = conn.end()
        while len(words) < 6:
            m = _NAME_TOKEN_RE.match(text, pos)
            if not m:
                break
            word, pos = m.group(1), m.end()
            bare = word.rstrip(".").lower()
            if not words and bare in _TITLES:
                continue
            if (_is_stop(word) and bare not in _PARTICLES) or bare in _NOT_A_NAME:
                break
            words.append(word.rstrip("."))
            if word.endswith("."):  # the end of the sentence
                break
        while words and words[-1].lower() in _PARTICLES:
            words.pop()
        if words and words[0].lower() not in _PARTICLES:
            return " ".join(words)
    return None


def _account_change(text: str, email: str | None, phone: str | None) -> tuple[AccountField | None, str | None]:
    for sm in _SENTENCE_RE.finditer(text):
        sentence = sm.group(0)
        if not _CHANGE_CUE_RE.search(sentence):
            continue
        mentions = [(m.start(), m.end(), field) for field, rx in _FIELD_RES for m in rx.finditer(sentence)]
        if not mentions:
            continue
        _, field_end, field = min(mentions)
        if field == "email":
            found = EMAIL_RE.search(sentence)
            return "email", found.group(0).lower() if found else email
        if field == "phone":
            return "phone", phone
        return "name", _name_value(text, sm.start() + field_end)  # read on past a title's "." ("Dr. Dana")
    if email is not None and _CHANGE_CUE_RE.search(text):
        return "email", email  # "please change it to new@example.org"
    return None, None


def _subscribed(text: str) -> bool | None:
    if _UNSUBSCRIBE_RE.search(text):
        return False
    if _SUBSCRIBE_RE.search(text):
        return True
    return None


def _region(region: str | None) -> str | None:
    code = (region or "").upper()
    return code if code in phonenumbers.SUPPORTED_REGIONS else None


# --------------------------------------------------------------------------------------------------- API


def extract_slots(text: str, *, region: str = "NL") -> Slots:
    """All slots in one customer message. National phone numbers are read in `region` (ISO 3166 alpha-2)."""
    text = (text or "")[:MAX_CHARS]
    claims = _Claims()
    emails = list(EMAIL_RE.finditer(text))
    for m in emails:
        claims.add(m.start(), m.end())
    email = emails[0].group(0).lower() if emails else None
    amount, address, phone, order_ids = None, None, None, []
    if _DIGIT_RE.search(text):  # money, order ids, addresses and phone numbers all need a digit
        amount = _money(text, claims)
        keyed = _keyword_order_ids(text, claims) + _misspelt_order_ids(text, claims)
        address = _address(text, claims)
        phone = _phones(text, claims, _region(region))
        bare = _bare_order_ids(text, claims)
        order_ids = list(dict.fromkeys(oid for _, oid in sorted(keyed + bare)))
    field, value = _account_change(text, email, phone)
    return Slots(order_ids=order_ids, amount=amount, address=address, email=email, phone=phone,
                 account_field=field, account_value=value, subscribed=_subscribed(text))
