"""Text that every store and tokenizer can take: lone UTF-16 surrogates replaced.

Python strings may hold lone surrogates ('\\udcff' from undecodable bytes in argv, a JSON '\\ud800' escape, a
truncated emoji); UTF-8 cannot encode them, so SQLite, the tokenizer and the node cache's key would raise on them
(red team: evals/redteam.py, kind `encoding`). `well_formed` is applied where outside text comes in.
"""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")


def well_formed(text: str) -> str:
    """`text` with each lone surrogate replaced by U+FFFD (a valid surrogate pair becomes its character)."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
