"""The model chain: tiers tried in order (LangChain `with_fallbacks`), each endpoint behind its own retries
(tenacity) and circuit breaker, picked per task and complexity from config/error-policies.yaml.

    llm.generate(messages)                                  # route `default`, simple: primary -> secondary
    llm.generate(messages, task="answer", complexity="hard") # e.g. strong -> primary -> secondary
    llm.generate(messages, task="answer", visible=True)      # its tokens reach LangGraph's `messages` stream

Only a `visible` call streams to a client: every other call (the classifier cascade, the rolling summary, a draft a
human reviews first) is tagged `nostream`, so LangGraph's `messages` stream mode leaves it out.

`generate()` returns None, never raises, when every tier failed or was refused by its breaker: the caller
then uses its offline tier and, below that, human escalation (primary -> secondary -> offline -> human).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langgraph.constants import TAG_NOSTREAM

from config.settings import (
    Complexity,
    ComplexityRules,
    ModelEndpoint,
    ModelRetry,
    Task,
)
from dialogue.messages import text_of
from llm.breaker import CircuitBreaker, CircuitOpen
from llm.prices import usage_of
from llm.retry import TruncatedReply, error_kind, retrying

log = logging.getLogger("switchboard.llm")

# An endpoint built without a policy (scripted models in tests, hand-made chains): one attempt, no waits,
# which is how the chain behaved before retries moved out of the client.
SINGLE_ATTEMPT = ModelEndpoint(retry=ModelRetry(attempts=1))


@dataclass
class LLMReply:
    text: str
    usage: dict[str, float]
    model: str  # the provider's model id (prices are looked up by it)
    endpoint: str = ""  # the configured endpoint that answered (primary, secondary, strong, ...)
    id: str | None = None  # the reply message's id (a streamed reply's chunks carry it too)


@dataclass
class LLM:
    """A chain of chat models tried in order, each behind its own retries and circuit breaker.

    `models` are (endpoint name, chat model); `routes` maps task -> complexity -> endpoint names (empty:
    every model in order); `endpoints` holds each endpoint's policy and `model_ids` its provider model id;
    `complexity` says when an answer is hard (llm.complexity; nodes pass task= and complexity= to generate()).
    `sleep` is the wait between retries (injected in tests). Calls are synchronous: the served graph runs its
    sync nodes in a thread pool.
    """

    models: list[tuple[str, BaseChatModel]]
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)
    endpoints: dict[str, ModelEndpoint] = field(default_factory=dict)
    routes: Mapping[str, Mapping[str, Sequence[str]]] = field(default_factory=dict)
    model_ids: dict[str, str] = field(default_factory=dict)
    complexity: ComplexityRules = field(default_factory=ComplexityRules)
    sleep: Callable[[float], Any] = time.sleep
    _chains: dict[tuple[str, ...], Runnable] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name = dict(self.models)
        for name, _ in self.models:
            self.breakers.setdefault(name, CircuitBreaker(name=name))

    @property
    def name(self) -> str:
        tiers = self.tiers("default", "simple")
        return self.model_ids.get(tiers[0], tiers[0]) if tiers else "none"

    def tiers(self, task: Task | str = "default", complexity: Complexity | str = "simple") -> list[str]:
        """Endpoint names tried for this task and complexity, in order."""
        if not self.routes:
            return [name for name, _ in self.models]
        for key in (task, "default"):
            names = self.routes.get(key, {}).get(complexity)
            if names:
                return [n for n in names if n in self._by_name]
        return [name for name, _ in self.models]

    def breaker_states(self) -> dict[str, str]:
        """Each endpoint's circuit: closed | open | half_open (shared across processes with a Redis store)."""
        return {name: breaker.state for name, breaker in self.breakers.items()}

    # --- calls ----------------------------------------------------------------------------------
    def generate(
        self,
        messages: Sequence[BaseMessage],
        task: Task | str = "default",
        complexity: Complexity | str = "simple",
        *,
        visible: bool = False,
    ) -> LLMReply | None:
        """First successful reply along the route's tiers, or None (caller uses its offline tier).

        `visible`: the reply is what the customer reads, so its tokens may stream on LangGraph's `messages` mode
        (the model streams when a streaming callback listens); otherwise the call is tagged `nostream`.
        """
        chain = self._chain(task, complexity)
        if chain is None:
            return None
        config: RunnableConfig | None = None if visible else {"tags": [TAG_NOSTREAM]}
        try:
            name, reply = chain.invoke(list(messages), config=config)
        except Exception as exc:  # noqa: BLE001 - every tier failed: the caller's offline tier answers
            log.warning("llm chain for %s/%s exhausted: %s", task, complexity, exc)
            return None
        return self._reply(name, reply)

    def _reply(self, name: str, reply: AIMessage) -> LLMReply:
        model_id = self.model_ids.get(name, name)
        text = text_of(reply)  # string content, or its text blocks (not the repr of a block list)
        return LLMReply(text=text, usage=usage_of(reply, model_id), model=model_id, endpoint=name, id=reply.id)

    def _chain(self, task: str, complexity: str) -> Runnable | None:
        tiers = tuple(self.tiers(task, complexity))
        if not tiers:
            return None
        if tiers not in self._chains:
            runnables = [
                RunnableLambda(partial(self._call, n), name=f"llm:{n}") for n in tiers
            ]
            first, *rest = runnables
            self._chains[tiers] = first.with_fallbacks(rest, exceptions_to_handle=(Exception,)) if rest else first
        return self._chains[tiers]

    def _call(self, name: str, messages: list[BaseMessage]) -> tuple[str, AIMessage]:
        policy = self.endpoints.get(name, SINGLE_ATTEMPT)
        model, breaker = self._by_name[name], self.breakers[name]
        trial_failed = False

        def attempt() -> AIMessage:
            nonlocal trial_failed
            permit = breaker.acquire()
            if permit is None:
                raise CircuitOpen(name)
            try:
                reply = _complete(model.invoke(messages), policy, checked=name in self.endpoints)
            except Exception as exc:
                breaker.release(permit, ok=False)
                trial_failed = permit.trial
                log.warning("llm %s failed (%s): %s", name, error_kind(exc), exc)
                raise
            breaker.release(permit, ok=True)
            return reply

        def give_up() -> bool:  # a failed trial gets no retry, nor does a request whose failure opened the circuit
            return trial_failed or breaker.state == "open"

        return name, retrying(policy.retry, self.sleep, give_up=give_up)(attempt)

def _complete(reply: Any, policy: ModelEndpoint, *, checked: bool = False) -> AIMessage:
    """The reply, or TruncatedReply when a stream ended without a finish reason.

    `checked`: a configured (OpenAI-compatible) endpoint, which reports a finish reason on every complete reply,
    streamed or not; it streams without `stream: true` too, when a streaming callback listens (`messages` mode).
    """
    if (policy.stream or checked) and not (getattr(reply, "response_metadata", None) or {}).get("finish_reason"):
        raise TruncatedReply("stream ended without a finish reason")
    return reply
