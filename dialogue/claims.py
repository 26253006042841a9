"""What a model's answer may state: every order id, amount, date and tracking number must be in the facts."""

from __future__ import annotations

import re

_CLAIM = re.compile(
    r"\b[A-Z]{2,4}[-\s]?\d{6,}[A-Z0-9]*\b|\b1Z[0-9A-Z]{10,}\b|\b\d{4}-\d{2}-\d{2}\b|"
    r"(?:EUR|USD|GBP|€|\$|£)\s?\d[\d,]*(?:\.\d{1,2})?|\b\d[\d,]*\.\d{2}\b|\b(?:order|#)\s*(\d{4,6})\b",
    re.I,
)


def _norm_claim(text: str) -> str:
    text = text.upper().replace("€", "EUR ").replace("$", "USD ").replace("£", "GBP ").replace(",", "")
    return re.sub(r"\s+", "", text)


def unsupported_claims(answer: str, facts: str) -> list[str]:
    """Order ids, amounts, dates and tracking numbers in `answer` that `facts` does not contain."""
    known = _norm_claim(facts)
    out = []
    for m in _CLAIM.finditer(answer):
        claim = m.group(1) or m.group(0)
        value = re.sub(r"^(?:EUR|USD|GBP|€|\$|£)\s?", "", claim.strip(), flags=re.I)
        if _norm_claim(value) not in known:
            out.append(claim.strip())
    return out
