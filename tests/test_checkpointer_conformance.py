"""LangGraph's checkpointer conformance suite (`langgraph-checkpoint-conformance`) on every checkpointer the project
configures: what `memory.checkpointer.open_checkpointer` opens (in memory, SQLite, Postgres) and the async Postgres
saver an Aegra instance runs on.

The suite drives the async API. The CLI's savers are the synchronous `SqliteSaver` / `PostgresSaver`, so they are
checked through `async_over_sync`, which offers exactly the async methods whose synchronous method the saver
implements (the suite detects capabilities from what a class overrides) and runs each in a worker thread.
Each Postgres saver gets a database of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

conformance = pytest.importorskip(
    "langgraph.checkpoint.conformance",
    reason="langgraph-checkpoint-conformance is not installed (a dev dependency: make test installs it)",
)
from langgraph.checkpoint.base import BaseCheckpointSaver  # noqa: E402

from memory.checkpointer import open_checkpointer  # noqa: E402

BASE = {"put", "put_writes", "get_tuple", "list", "delete_thread"}


def _implements(kind: type, method: str) -> bool:
    return getattr(kind, method, None) is not getattr(BaseCheckpointSaver, method, None)


def async_over_sync(inner: BaseCheckpointSaver) -> BaseCheckpointSaver:
    """The async API of a synchronous saver: each async method runs its sync counterpart in a worker thread."""
    kind = type(inner)

    async def aput(self: Any, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        return await asyncio.to_thread(inner.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(self: Any, config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
        await asyncio.to_thread(inner.put_writes, config, writes, task_id, task_path)

    async def aget_tuple(self: Any, config: Any) -> Any:
        return await asyncio.to_thread(inner.get_tuple, config)

    async def alist(
        self: Any, config: Any, *, filter: Any = None, before: Any = None, limit: int | None = None
    ) -> AsyncIterator[Any]:
        items = await asyncio.to_thread(lambda: list(inner.list(config, filter=filter, before=before, limit=limit)))
        for item in items:
            yield item

    async def adelete_thread(self: Any, thread_id: str) -> None:
        await asyncio.to_thread(inner.delete_thread, thread_id)

    async def adelete_for_runs(self: Any, run_ids: Any) -> None:
        await asyncio.to_thread(inner.delete_for_runs, run_ids)

    async def acopy_thread(self: Any, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(inner.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self: Any, thread_ids: Any, *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(inner.prune, thread_ids, strategy=strategy)

    methods: dict[str, Any] = {
        "get_next_version": lambda self, current, channel: inner.get_next_version(current, channel),
        "config_specs": property(lambda self: inner.config_specs),
    }
    for name, fn in {
        "aput": aput,
        "aput_writes": aput_writes,
        "aget_tuple": aget_tuple,
        "alist": alist,
        "adelete_thread": adelete_thread,
        "adelete_for_runs": adelete_for_runs,
        "acopy_thread": acopy_thread,
        "aprune": aprune,
    }.items():
        if _implements(kind, name[1:]):
            methods[name] = fn
    adapter = type(f"AsyncOver{kind.__name__}", (BaseCheckpointSaver,), methods)
    return adapter(serde=inner.serde)


def run_suite(name: str, factory: Any) -> Any:
    registered = conformance.checkpointer_test(name=name)(factory)
    report = asyncio.run(conformance.validate(registered))
    failures = {cap: r.failures for cap, r in report.results.items() if r.detected and r.passed is not True}
    detected = {cap for cap, r in report.results.items() if r.detected}
    assert BASE <= detected, f"{name}: base capabilities missing: {sorted(BASE - detected)}"
    assert not failures, f"{name}: {report.conformance_level()} {failures}"
    return report


@pytest.fixture
def sync_saver_factory(tmp_path: Path) -> Iterator[Any]:
    """A factory of fresh checkpointers as the CLI opens them, each in its own file (or database)."""
    from contextlib import ExitStack

    stack = ExitStack()
    counter = iter(range(1000))

    def make(target_of: Any) -> Any:
        async def factory() -> AsyncIterator[BaseCheckpointSaver]:
            saver = stack.enter_context(open_checkpointer(target_of(next(counter))))
            yield async_over_sync(saver) if not isinstance(saver, _native_async()) else saver

        return factory

    with stack:
        yield make


def _native_async() -> tuple[type, ...]:
    from langgraph.checkpoint.memory import InMemorySaver

    return (InMemorySaver,)


def test_in_memory_saver_conforms(sync_saver_factory: Any) -> None:
    report = run_suite("memory", sync_saver_factory(lambda i: "memory"))
    assert report.passed_all()


def test_sqlite_saver_conforms(sync_saver_factory: Any, tmp_path: Path) -> None:
    report = run_suite("sqlite", sync_saver_factory(lambda i: str(tmp_path / f"c{i}.sqlite")))
    assert report.passed_all_base()


def test_postgres_saver_conforms(sync_saver_factory: Any) -> None:
    from tests.conftest import require_service
    from tests.pg import fresh_database, postgres_problem

    if problem := postgres_problem():
        require_service(problem)
    with ExitStackOf(fresh_database) as databases:
        report = run_suite("postgres", sync_saver_factory(lambda i: databases.new()))
    assert report.passed_all_base()


def test_async_postgres_saver_conforms() -> None:
    """The saver an Aegra instance runs on (langgraph-checkpoint-postgres' AsyncPostgresSaver)."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    from tests.conftest import require_service
    from tests.pg import fresh_database, postgres_problem

    if problem := postgres_problem():
        require_service(problem)
    with ExitStackOf(fresh_database) as databases:

        async def factory() -> AsyncIterator[BaseCheckpointSaver]:
            async with AsyncPostgresSaver.from_conn_string(databases.new()) as saver:
                await saver.setup()
                yield saver

        report = run_suite("async-postgres", factory)
    assert report.passed_all_base()


class ExitStackOf:
    """Fresh resources from a context-manager factory, all closed together."""

    def __init__(self, factory: Any) -> None:
        from contextlib import ExitStack

        self.factory, self.stack = factory, ExitStack()

    def new(self) -> Any:
        return self.stack.enter_context(self.factory())

    def __enter__(self) -> ExitStackOf:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()
