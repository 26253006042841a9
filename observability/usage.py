"""Tokens and cost per node and model, from LangChain's own callbacks (no change to the model chain).

While a node runs, `observability.metrics.instrument` opens `collect()`: a LangChain configure hook then adds
`HANDLER` to every callback manager made inside the node, so each chat-model call reports its model
(`ls_model_name`), its node (`langgraph_node`) and its token usage. Cost comes from the prices in
config/observability.yaml (`llm.prices.usage_of`). Calls outside a node are not counted here.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.tracers.context import register_configure_hook

from observability import tracing


class UsageHandler(BaseCallbackHandler):
    """Counts each chat-model reply in `switchboard_llm_tokens_total` / `switchboard_llm_cost_usd_total`."""

    run_inline = True  # in the caller's thread and context, so the node's collector is the one in effect
    raise_error = False

    def __init__(self) -> None:
        self._runs: dict[UUID, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._start(run_id, kwargs.get("metadata") or {}, serialized)

    def on_llm_start(self, serialized: Any, prompts: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._start(run_id, kwargs.get("metadata") or {}, serialized)

    def _start(self, run_id: UUID, metadata: dict[str, Any], serialized: Any) -> None:
        model = metadata.get("ls_model_name") or (serialized or {}).get("name") or "unknown"
        node = metadata.get("langgraph_node") or tracing.current_node() or "none"
        with self._lock:
            self._runs[run_id] = (str(model), str(node))

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            self._runs.pop(run_id, None)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            model, node = self._runs.pop(run_id, ("unknown", tracing.current_node() or "none"))
        from langchain_core.messages import AIMessage

        from llm.prices import usage_of

        message = None
        for gens in getattr(response, "generations", None) or []:
            for gen in gens:
                message = getattr(gen, "message", None)
                break
        if not isinstance(message, AIMessage):
            return
        usage = usage_of(message, model)
        from observability.metrics import record_llm_usage

        record_llm_usage(node, model, usage)
        calls = _calls.get()
        if calls is not None:
            calls.append({"model": model, **usage})


HANDLER = UsageHandler()
_hook: contextvars.ContextVar[UsageHandler | None] = contextvars.ContextVar("switchboard_usage_hook", default=None)
_calls: contextvars.ContextVar[list[dict[str, Any]] | None] = contextvars.ContextVar(
    "switchboard_usage_calls", default=None
)
register_configure_hook(_hook, inheritable=True)


@contextmanager
def collect() -> Iterator[list[dict[str, Any]]]:
    """Inside: every chat-model call is counted and appended to the yielded list ({model, tokens, cost_usd})."""
    calls: list[dict[str, Any]] = []
    t1, t2 = _hook.set(HANDLER), _calls.set(calls)
    try:
        yield calls
    finally:
        _calls.reset(t2)
        _hook.reset(t1)
