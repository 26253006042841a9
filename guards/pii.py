"""PII redaction for text entering or leaving the system.

Detectors are deterministic and validated where a checksum exists, so ordinary support text keeps its
order numbers (``1004``, ``#1004``) and amounts (``49.99``):

- ``email``: RFC-ish address pattern.
- ``card_number``: 13-19 digits (spaces or dashes allowed) that pass the Luhn check (python-stdnum).
- ``iban``: country code + check digits, validated with python-stdnum's mod-97 check.
- ``ssn``: US social-security-like ``123-45-6789`` (invalid area/group/serial ranges excluded).
- ``phone``: numbers libphonenumber (``phonenumbers``) finds valid for US/GB/DE or in international form
  (at least 10 digits or a leading ``+``), plus North-American ``(415) 555-0132`` layouts.
- ``ip_address``: IPv4/IPv6 literals validated with :mod:`ipaddress`.
- ``address``: a postal address as the slot extractor reads one (`dialogue.slots`: street + number, postcode, city).

Each kind is replaced by a stable placeholder (``[EMAIL]``, ``[CARD]``, ...). Overlapping matches are
resolved by detector priority (an IBAN is never also reported as a phone number).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn

from dialogue.slots import EMAIL_RE

PLACEHOLDERS: dict[str, str] = {
    "email": "[EMAIL]",
    "iban": "[IBAN]",
    "card_number": "[CARD]",
    "ssn": "[SSN]",
    "ip_address": "[IP]",
    "phone": "[PHONE]",
    "address": "[ADDRESS]",
}
"""Kind -> placeholder. Dict order is detector priority when matches overlap."""

PHONE_REGIONS: tuple[str, ...] = ("US", "GB", "DE")
"""Default regions used to read national-format phone numbers (international ``+`` numbers always work)."""

_CARD_RE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_SSN_RE = re.compile(r"(?<![\d-])(\d{3})-(\d{2})-(\d{4})(?![\d-])")
_NANP_RE = re.compile(r"(?<![\w-])(?:\+?1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-])")
_DIGIT_RUN_RE = re.compile(r"\d(?:[\s().\-/]{0,3}\d){6}")
_IPV4_RE = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6_RE = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")


@dataclass(frozen=True, slots=True)
class PiiMatch:
    """One detected PII span in a text."""

    kind: str
    start: int
    end: int
    value: str


def _emails(text: str) -> Iterator[tuple[int, int]]:
    for m in EMAIL_RE.finditer(text):
        yield m.start(), m.end()


def _cards(text: str) -> Iterator[tuple[int, int]]:
    for m in _CARD_RE.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and len(set(digits)) > 1 and luhn.is_valid(digits):
            yield m.start(), m.end()


def _ibans(text: str) -> Iterator[tuple[int, int]]:
    for m in _IBAN_RE.finditer(text):
        candidate = m.group()
        # The pattern may swallow a following word of capitals/digits; shrink until it validates.
        while len(candidate.replace(" ", "")) >= 15:
            if stdnum_iban.is_valid(candidate):
                yield m.start(), m.start() + len(candidate)
                break
            candidate = candidate[:-1].rstrip()


def _ssns(text: str) -> Iterator[tuple[int, int]]:
    for m in _SSN_RE.finditer(text):
        area, group, serial = m.groups()
        if area in ("000", "666") or area.startswith("9") or group == "00" or serial == "0000":
            continue
        yield m.start(), m.end()


def _ips(text: str) -> Iterator[tuple[int, int]]:
    for regex in (_IPV4_RE, _IPV6_RE):
        for m in regex.finditer(text):
            try:
                ipaddress.ip_address(m.group())
            except ValueError:
                continue
            yield m.start(), m.end()


def _phones(text: str, regions: Iterable[str] = PHONE_REGIONS) -> Iterator[tuple[int, int]]:
    if not _DIGIT_RUN_RE.search(text):  # no valid number has fewer than 7 digits; libphonenumber is the slow part
        return
    for m in _NANP_RE.finditer(text):  # North-American layout, incl. fictional 555 numbers
        yield m.start(), m.end()
    for region in regions:
        for pm in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
            digits = sum(ch.isdigit() for ch in pm.raw_string)
            before = text[pm.start - 1] if pm.start > 0 else " "
            after = text[pm.end] if pm.end < len(text) else " "
            glued = before.isalnum() or after.isalnum()
            if not glued and (digits >= 10 or pm.raw_string.startswith("+")):
                yield pm.start, pm.end


def _addresses(text: str) -> Iterator[tuple[int, int]]:
    from dialogue.slots import extract_slots  # the one address reader (lazy: slots imports phonenumbers too)

    if not any(ch.isdigit() for ch in text):  # every address it reads has a house number or a postcode
        return
    found = extract_slots(text).address
    if found is not None and (start := text.find(found.text)) >= 0:
        yield start, start + len(found.text)


_DETECTORS: dict[str, Callable[[str], Iterator[tuple[int, int]]]] = {
    "email": _emails,
    "iban": _ibans,
    "card_number": _cards,
    "ssn": _ssns,
    "ip_address": _ips,
    "phone": _phones,
    "address": _addresses,
}


def find_pii(text: str, kinds: Iterable[str] | None = None) -> list[PiiMatch]:
    """Return non-overlapping PII matches in ``text``, in text order.

    ``kinds`` restricts detection to a subset of :data:`PLACEHOLDERS` keys (default: all).
    """
    wanted = tuple(PLACEHOLDERS) if kinds is None else tuple(k for k in PLACEHOLDERS if k in set(kinds))
    if len(text) <= 2000:  # logs and decision records repeat the same short texts
        return list(_find_cached(text, wanted))
    return _find(text, wanted)


@functools.lru_cache(maxsize=8192)
def _find_cached(text: str, wanted: tuple[str, ...]) -> tuple[PiiMatch, ...]:
    return tuple(_find(text, wanted))


def _find(text: str, wanted: tuple[str, ...]) -> list[PiiMatch]:
    taken: list[PiiMatch] = []
    for kind in wanted:  # priority order
        for start, end in _DETECTORS[kind](text):
            if any(start < t.end and t.start < end for t in taken):
                continue
            taken.append(PiiMatch(kind, start, end, text[start:end]))
    return sorted(taken, key=lambda m: m.start)


def _replace(text: str, matches: list[PiiMatch], render: Callable[[PiiMatch], str]) -> str:
    out: list[str] = []
    pos = 0
    for m in matches:
        out.append(text[pos : m.start])
        out.append(render(m))
        pos = m.end
    out.append(text[pos:])
    return "".join(out)


def _kinds_in_order(matches: list[PiiMatch]) -> list[str]:
    return list(dict.fromkeys(m.kind for m in matches))


def redact(text: str, kinds: Iterable[str] | None = None) -> tuple[str, list[str]]:
    """Replace PII in ``text`` with placeholders.

    Returns the redacted text and the kinds found (each once, in order of first appearance), e.g.
    ``redact("mail a@b.com") == ("mail [EMAIL]", ["email"])``.
    """
    matches = find_pii(text, kinds)
    return _replace(text, matches, lambda m: PLACEHOLDERS[m.kind]), _kinds_in_order(matches)


def _mask_hint(m: PiiMatch) -> str:
    if m.kind == "email":
        domain = m.value.rsplit("@", 1)[1]
        return f"{m.value[0]}***@{domain}"
    if m.kind in ("card_number", "iban", "phone"):
        digits = re.sub(r"[^0-9A-Za-z]", "", m.value)
        return f"{PLACEHOLDERS[m.kind][:-1]} ****{digits[-4:]}]"
    return PLACEHOLDERS[m.kind]


def mask_for_log(text: str, *, max_len: int = 500) -> str:
    """Mask PII for logs and traces, keeping a hint useful to operators.

    Emails keep their first letter and domain (``j***@example.com``); cards, IBANs and phone numbers keep
    their last four characters (``[CARD ****1111]``); the rest become placeholders. Newlines are escaped
    and the result is cut to ``max_len`` characters.
    """
    masked = _replace(text, find_pii(text), _mask_hint).replace("\r", "\\r").replace("\n", "\\n")
    return masked if len(masked) <= max_len else masked[: max_len - 1] + "…"
