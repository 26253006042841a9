"""Node caching (LangGraph CachePolicy): classification and retrieval are served from the cache only when
everything they depend on is the same, never across customers, never after a write, never for a failure."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from graphs.context import Context
from graphs.supervisor import build_supervisor
from observability.cache import CountingCache, memory_cache, sqlite_cache
from observability.metrics import REGISTRY


def lookups(node: str, result: str) -> float:
    return REGISTRY.get_sample_value("switchboard_cache_lookups_total", {"node": node, "result": result}) or 0.0


class CountingClassifier:
    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, 0

    def predict(self, texts: list[str]) -> Any:
        self.calls += 1
        return self.inner.predict(texts)


class CountingKnowledge:
    def __init__(self, inner: Any) -> None:
        self.inner, self.searches = inner, 0

    def search_knowledge(self, *args: Any, **kwargs: Any) -> Any:
        self.searches += 1
        return self.inner.search_knowledge(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def cached(services: Any) -> tuple[Any, Any]:
    svc = dataclasses.replace(
        services, classifier=CountingClassifier(services.classifier), knowledge=CountingKnowledge(services.knowledge)
    )
    graph = build_supervisor(svc).compile(checkpointer=InMemorySaver(), cache=memory_cache())
    return svc, graph


def ask(graph: Any, text: str, user: str = "demo") -> dict:
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    graph.invoke({"messages": [HumanMessage(text)]}, config, context=Context(user_id=user))
    snap = graph.get_state(config)
    return {**snap.values, "next": snap.next}


def test_the_same_ticket_is_classified_and_retrieved_once(cached: tuple[Any, Any]) -> None:
    svc, graph = cached
    hits = lookups("classify_intent", "hit"), lookups("retrieve_knowledge", "hit")
    first = ask(graph, "Where is my order 1006?")
    second = ask(graph, "Where is my order 1006?")
    assert svc.classifier.calls == 1 and svc.knowledge.searches == 1
    assert lookups("classify_intent", "hit") == hits[0] + 1
    assert lookups("retrieve_knowledge", "hit") == hits[1] + 1
    for key in ("intent", "confidence", "route", "answer", "status"):
        assert second[key] == first[key], key
    assert second["trace_id"] != first["trace_id"]
    ask(graph, "Where is my order 1003?")  # another ticket: computed
    assert svc.classifier.calls == 2


def test_retrieval_is_never_shared_between_customers(cached: tuple[Any, Any]) -> None:
    svc, graph = cached
    mine = ask(graph, "Where is my order 1006?", user="demo")
    theirs = ask(graph, "Where is my order 1006?", user="erin")
    assert svc.classifier.calls == 1  # the intent does not depend on who asks
    assert svc.knowledge.searches == 2  # retrieval does
    assert mine["lookups"]["get_order"]["ok"] is True
    assert theirs["lookups"]["get_order"]["ok"] is False  # erin does not own order 1006
    assert mine["answer"] != theirs["answer"]


def test_a_write_through_the_graph_invalidates_cached_retrieval(cached: tuple[Any, Any]) -> None:
    from langgraph.types import Command

    svc, graph = cached
    ask(graph, "Where is my order 1009?")
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    graph.invoke({"messages": [HumanMessage("Please cancel order 1009")]}, config, context=Context(user_id="demo"))
    graph.invoke(Command(resume={"type": "accept"}), config, context=Context(user_id="demo", role="agent"))
    assert graph.get_state(config).values["action_result"]["ok"] is True
    searches = svc.knowledge.searches
    after = ask(graph, "Where is my order 1009?")
    assert svc.knowledge.searches == searches + 1  # not served from before the cancellation
    assert after["lookups"]["get_order"]["data"]["status"] == "cancelled"


def test_a_write_from_elsewhere_invalidates_on_the_next_refresh(cached: tuple[Any, Any]) -> None:
    from observability.cache import fingerprints
    from tests.test_shop_tools import as_caller
    from tools.shop import run_tool

    svc, graph = cached
    ask(graph, "Where is my order 1009?")
    caller = as_caller("cancel_order", "demo")
    result = run_tool(svc.shop, "cancel_order", {"order_id": 1009}, caller=caller, idempotency_key=str(uuid.uuid4()))
    assert result.ok, result
    fingerprints(svc).refresh()  # what the background refresher does every second
    after = ask(graph, "Where is my order 1009?")
    assert svc.knowledge.searches == 2
    assert after["lookups"]["get_order"]["data"]["status"] == "cancelled"


def test_a_new_version_of_the_code_is_not_answered_from_the_old_ones_cache(
    cached: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import observability.cache as cache
    from observability.cache import fingerprints

    svc, graph = cached
    ask(graph, "Where is my order 1009?")
    ask(graph, "Where is my order 1009?")
    assert svc.knowledge.searches == 1
    touched = cache.code_fingerprint() + "-edited"  # a deploy: a source file's mtime or size changed
    monkeypatch.setattr(cache, "_CODE_FINGERPRINT", touched)
    fingerprints(svc).refresh()
    ask(graph, "Where is my order 1009?")
    assert svc.knowledge.searches == 2


def test_the_code_fingerprint_follows_the_project_sources(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import observability.cache as cache

    first = cache.code_fingerprint()
    assert first == cache.code_fingerprint()  # once per process
    monkeypatch.setattr(cache, "_CODE_FINGERPRINT", None)
    assert cache.code_fingerprint() == first  # the same files give the same value
    monkeypatch.setattr(cache, "_CODE_FINGERPRINT", None)
    monkeypatch.setattr(cache, "_files_fingerprint", lambda paths: str(len(paths)))
    assert int(cache.code_fingerprint()) > 50, "the serving packages' sources are all read"


def test_cache_keys_never_do_io_on_an_event_loop(services: Any) -> None:
    import asyncio

    from observability.cache import Fingerprints, retrieval_policy

    class Exploding:
        def query(self, *args: Any) -> Any:
            raise AssertionError("blocking I/O in a cache key")

        def now(self) -> Any:
            return services.shop.now()

    svc = dataclasses.replace(services, shop=Exploding())
    policy = retrieval_policy(lambda: svc, 60)
    state = {"owner": {"tenant_id": "default", "user_id": "demo"}, "ticket": "hi"}

    async def on_loop() -> str:
        return policy.key_func(state)

    fp = Fingerprints(svc)
    import observability.cache as cache_module

    cache_module._fingerprints[id(svc)] = fp
    fp._thread = object()  # type: ignore[assignment] - no refresher for this test
    assert asyncio.run(on_loop()).startswith("uncacheable:")  # no values yet: a miss, never a blocking read


def test_on_an_event_loop_a_cache_key_never_builds_the_lazy_services(services: Any) -> None:
    """The server draws the graph (`GET /assistants/{id}/graph`, Studio's first call) by computing every node's cache
    key on its event loop, before any run built the services: building them there (file, model, database I/O) was a
    BlockingError, HTTP 500 (tests/test_server.py, its first test). Off the loop they are built as before."""
    import asyncio

    from observability.cache import classification_policy, retrieval_policy

    built: list[str] = []

    def lazy() -> Any:
        built.append("built")
        return services

    state = {"owner": {"tenant_id": "default", "user_id": "demo"}, "ticket": "hi"}
    policies = [make(lazy, 60, peek=lambda: None) for make in (classification_policy, retrieval_policy)]

    async def on_loop() -> list[str]:
        return [p.key_func(state) for p in policies]

    assert all(k.startswith("uncacheable:") for k in asyncio.run(on_loop())) and built == []
    for p in policies:
        p.key_func(state)  # off the loop: the provider is called (and the refresher starts)
    assert built == ["built", "built"]


def test_a_failed_result_is_never_stored() -> None:
    from langgraph.cache.memory import InMemoryCache

    cache = CountingCache(InMemoryCache())
    ns = ("__pregel_ns_writes", "x", "retrieve_knowledge")
    failed = [("failures", {"retrieve_knowledge": {"count": 1, "error": "boom"}}), ("route", ["retrieve_knowledge"])]
    fine = [("failures", {"retrieve_knowledge": {"count": 0}}), ("route", ["retrieve_knowledge"])]
    cache.set({(ns, "a"): (failed, 60), (ns, "b"): (fine, 60)})
    assert set(cache.get([(ns, "a"), (ns, "b")])) == {(ns, "b")}


def test_the_memory_cache_is_bounded_and_the_file_cache_persists(tmp_path: Any) -> None:
    cache = memory_cache(max_entries=3)
    ns = ("w", "x", "classify_intent")
    cache.set({(ns, str(i)): ([("route", [str(i)])], 60) for i in range(5)})
    assert len(cache.get([(ns, str(i)) for i in range(5)])) == 3
    path = tmp_path / "cache.sqlite"
    sqlite_cache(path).set({(ns, "k"): ([("route", ["k"])], 60)})
    assert [tuple(w) for w in sqlite_cache(path).get([(ns, "k")])[(ns, "k")]] == [("route", ["k"])]


def test_a_refresher_stops_when_its_services_are_gone() -> None:
    """One refresher thread per Services object: it must not outlive them (the suite builds hundreds)."""
    import gc

    from observability.cache import Fingerprints

    class Gone:  # no settings: every refresh fails (and is retried) while the object lives
        pass

    svc = Gone()
    fp = Fingerprints(svc, interval_s=0.01)
    assert fp.get() is None and fp._thread is not None and fp._thread.is_alive()
    del svc
    gc.collect()
    fp._thread.join(timeout=5)
    assert not fp._thread.is_alive()
