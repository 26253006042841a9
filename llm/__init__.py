"""Optional language model: langchain-openai behind retries, circuit breakers and a fallback chain.

Without `OPENAI_API_KEY` or `SWITCHBOARD_LLM_BASE_URL` there is no model and every caller uses its
offline tier. With one, `LLM.generate()` returns None instead of raising when the chain is exhausted,
so callers fall back to the offline tier (primary -> secondary -> offline -> human).

- `llm.chain`: `LLM` (routing by task and complexity, the fallback chain), `LLMReply`.
- `llm.factory`: `build_llm` (the chain from settings), `build_breakers`, `breaker_states`.
- `llm.breaker`: circuit breakers, in process or shared through Redis.
- `llm.retry`: error kinds, Retry-After, backoff with jitter (tenacity).
- `llm.prices`: token prices and usage.
Policies live in config/error-policies.yaml.
"""

from llm.breaker import CircuitBreaker, CircuitOpen, MemoryStore, RedisStore
from llm.chain import LLM, LLMReply
from llm.factory import breaker_states, build_breakers, build_llm
from llm.prices import PRICES, usage_of
from llm.retry import TruncatedReply, error_kind

__all__ = [
    "LLM",
    "PRICES",
    "CircuitBreaker",
    "CircuitOpen",
    "LLMReply",
    "MemoryStore",
    "RedisStore",
    "TruncatedReply",
    "breaker_states",
    "build_breakers",
    "build_llm",
    "error_kind",
    "usage_of",
]
