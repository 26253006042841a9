"""Where a country is, in the words shop policies use ("EU", "neighbouring countries", "rest of the world").

Delivery and customs articles group destinations by region, not by country: a ticket about Spain has to be
read as a ticket about the EU before an article's "EU and neighbouring countries" row can answer it.
"""

from __future__ import annotations

import re

EU = frozenset(
    "austria belgium bulgaria croatia cyprus czechia denmark estonia finland france germany greece hungary ireland "
    "italy latvia lithuania luxembourg malta netherlands poland portugal romania slovakia slovenia spain sweden"
    .split()
)
ALIASES = {
    "czech republic": "czechia", "holland": "netherlands", "the netherlands": "netherlands", "deutschland": "germany",
    "españa": "spain", "espana": "spain", "italia": "italy", "belgië": "belgium", "belgique": "belgium",
    "österreich": "austria", "united kingdom": "uk", "great britain": "uk", "britain": "uk", "england": "uk",
    "scotland": "uk", "wales": "uk", "schweiz": "switzerland", "suisse": "switzerland",
}
NEIGHBOURS = frozenset({"uk", "switzerland", "norway", "iceland", "liechtenstein"})
_NAMES = sorted({*EU, *NEIGHBOURS, *ALIASES}, key=len, reverse=True)
_COUNTRY = re.compile(r"\b(" + "|".join(re.escape(n) for n in _NAMES) + r")\b", re.I)


def regions_in(text: str) -> list[str]:
    """Region words for the countries a text names: 'to Spain' -> ['EU'], 'to Norway' -> ['neighbouring countries']."""
    out: list[str] = []
    for m in _COUNTRY.finditer(text):
        name = ALIASES.get(m.group(1).lower(), m.group(1).lower())
        region = "EU" if name in EU else "neighbouring countries" if name in NEIGHBOURS else None
        if region and region not in out:
            out.append(region)
    return out


def with_regions(text: str) -> str:
    """The text with the regions of the countries it names appended ("... to Spain (EU)")."""
    regions = regions_in(text)
    return f"{text} ({', '.join(regions)})" if regions else text
