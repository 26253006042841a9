"""Node outputs checked at the boundary: a node writes only declared state keys, each with its declared type.

`validated(name, fn)` wraps a node (graphs/supervisor.py does it for every node): its update (a dict, or a
Command's `update`) must use `SupportState` keys, and each value must match that key's type (one pydantic
`TypeAdapter` per key, built once per schema); a subgraph's step is checked against the subgraph's own state
(`validated(name, fn, schema=TechnicalState)`, nodes/analyze_technical.py). Anything else raises
`InvalidNodeOutput` naming the node, the key and what was wrong, so bad data never reaches a reducer or a
checkpoint. Reducer conventions are understood: `langgraph.types.Overwrite` (its value is checked) and
`RemoveMessage` in `messages`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, cast, get_type_hints

from langchain_core.messages import BaseMessage
from langgraph.types import Command, Overwrite, Send
from pydantic import TypeAdapter, ValidationError

from graphs.state import SupportState

__all__ = ["InvalidNodeOutput", "check_update", "validated"]


class InvalidNodeOutput(TypeError):
    """A node returned something the state does not declare."""


@functools.cache
def _declared(schema: type) -> dict[str, TypeAdapter[Any] | None]:
    """Each key `schema` declares, with the adapter that checks its values (None: `messages`, a list of messages)."""
    return {key: None if key == "messages" else TypeAdapter(hint) for key, hint in get_type_hints(schema).items()}


def _check_messages(name: str, value: Any) -> None:
    items = value if isinstance(value, list) else [value]
    for i, item in enumerate(items):
        if not isinstance(item, BaseMessage):
            raise InvalidNodeOutput(f"node {name!r} wrote messages[{i}] as {type(item).__name__}, not a message")


def check_update(name: str, update: Any, schema: type = SupportState) -> None:
    """Raise InvalidNodeOutput unless `update` is a valid update of node `name` to the state `schema`."""
    if update is None:
        return
    if isinstance(update, (list, tuple)) and all(isinstance(t, tuple) and len(t) == 2 for t in update):
        update = dict(update)  # Command(update=[(key, value), ...])
    if not isinstance(update, dict):
        raise InvalidNodeOutput(f"node {name!r} returned a {type(update).__name__} update; a node returns a dict")
    declared = _declared(schema)
    undeclared = sorted(str(k) for k in update if k not in declared)
    if undeclared:
        where = "" if schema is SupportState else f" of {schema.__name__}"
        raise InvalidNodeOutput(f"node {name!r} wrote undeclared state key(s){where}: {', '.join(undeclared)}")
    for key, value in update.items():
        if isinstance(value, Overwrite):
            value = value.value
        adapter = declared[key]
        if adapter is None:
            _check_messages(name, value)
            continue
        try:
            adapter.validate_python(value)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"])
            raise InvalidNodeOutput(
                f"node {name!r} wrote {key}{'.' + where if where else ''}: {problem['msg']} "
                f"(got {type(problem.get('input')).__name__})"
            ) from None


def _check_output(name: str, out: Any, schema: type) -> None:
    for item in out if isinstance(out, (list, tuple)) else [out]:
        if isinstance(item, Command):
            check_update(name, item.update, schema)
        elif isinstance(item, Send):
            continue
        else:
            check_update(name, item, schema)


def validated[F: Callable[..., Any]](name: str, fn: F, *, schema: type = SupportState) -> F:
    """`fn` with its output checked against `schema` (`check_update`) before LangGraph applies it."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def awrapper(*args: Any, **kwargs: Any) -> Any:
            out = await fn(*args, **kwargs)
            _check_output(name, out, schema)
            return out

        return cast(F, awrapper)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        out = fn(*args, **kwargs)
        _check_output(name, out, schema)
        return out

    return cast(F, wrapper)
