"""Dialogue understanding shared by nodes and memory: typed slot extraction and its shared regexes."""

from dialogue.slots import (
    EMAIL_RE,
    MONEY_RE,
    ORDER_ID_RE,
    PHONE_CANDIDATE_RE,
    POSTCODE_RE,
    Address,
    Money,
    Slots,
    extract_slots,
)

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
