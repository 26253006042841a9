"""A scripted chat model for tests: answers from a fixed list, records what it was sent, fails on a surprise.

As openai-agents-python's scripted model and langgraph-supervisor-py's `FakeChatModelWithAssertion` do, a test
asserts on the messages the model received (its prompt), not on the text the fake itself returns. A call beyond
the script fails the test at once; the `scripted` fixture (tests/conftest.py) fails it afterwards when a scripted
reply was never asked for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field


class UnexpectedModelCall(BaseException):
    """A model call the script did not plan for.

    Not an `Exception`: the LLM chain's fallbacks and the callers' offline tiers catch `Exception`, and must not turn
    this failure into an offline answer that lets the test pass.
    """


def text_of(message: BaseMessage) -> str:
    return message.content if isinstance(message.content, str) else str(message.content)


class ScriptedChatModel(BaseChatModel):
    """Answers call i with `replies[i]` (an exception in the list is raised for that call: a provider failure).

    `received` holds the messages of every call, in order.
    """

    replies: list[Any]  # AIMessage | Exception (a union pydantic would try to coerce exceptions into)
    received: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        return ChatResult(generations=[ChatGeneration(message=self._next(messages))])

    def _stream(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        """The scripted reply word by word (LangGraph's `messages` stream mode streams a model that can)."""
        reply = self._next(messages)
        for piece in re.findall(r"\S+\s*|\s+", text_of(reply)):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager is not None:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk

    def _next(self, messages: list[BaseMessage]) -> AIMessage:
        self.received.append(list(messages))
        n = len(self.received)
        if n > len(self.replies):
            last = text_of(messages[-1])[:300] if messages else ""
            raise UnexpectedModelCall(
                f"{self.name or 'scripted model'}: unexpected call #{n}, the script has {len(self.replies)}; "
                f"last message sent: {last!r}"
            )
        reply = self.replies[n - 1]
        if isinstance(reply, Exception):
            raise reply
        return reply

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedChatModel:  # tool calls come from the script
        return self

    @property
    def prompts(self) -> list[str]:
        """Each call's messages as one text (for `in` checks)."""
        return ["\n".join(text_of(m) for m in call) for call in self.received]

    def problems(self) -> list[str]:
        name = self.name or "scripted model"
        out = []
        if len(self.received) > len(self.replies):
            out.append(f"{name}: {len(self.received) - len(self.replies)} unexpected call(s)")
        if len(self.received) < len(self.replies):
            unused = [r if isinstance(r, Exception) else text_of(r)[:80] for r in self.replies[len(self.received) :]]
            out.append(f"{name}: {len(unused)} scripted repl(ies) never asked for: {unused!r}")
        return out


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedChatModel]]:
    """`scripted(*replies, name=...)` makes a ScriptedChatModel; after the test, every model made must have been
    called exactly as often as its script says (no unexpected call, no leftover reply)."""
    made: list[ScriptedChatModel] = []

    def make(*replies: AIMessage | Exception | str, name: str = "scripted") -> ScriptedChatModel:
        script: Sequence[AIMessage | Exception] = [AIMessage(r) if isinstance(r, str) else r for r in replies]
        model = ScriptedChatModel(replies=list(script), name=name)
        made.append(model)
        return model

    yield make
    problems = [p for model in made for p in model.problems()]
    if problems:
        pytest.fail("scripted models were not used as scripted:\n" + "\n".join(problems), pytrace=False)
