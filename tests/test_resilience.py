"""Failure handling against a real client: `build_llm` -> ChatOpenAI -> bench.fault_server on loopback.

Clocks are injected and waits between retries are recorded, never slept; the only real waiting is a
client timeout of a fraction of a second, which is what that test measures.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from bench.fault_server import FaultServer, parse_fault
from config.settings import ErrorPolicies, LLMPolicy, Settings, load_error_policies
from llm import LLM, CircuitBreaker, MemoryStore, RedisStore, breaker_states, build_llm
from llm.breaker import Permit
from tests.conftest import require_service

ASK = [HumanMessage("Where is my order?")]
P, S, STRONG = "p-model", "s-model", "strong-model"


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def policies(**endpoint: Any) -> ErrorPolicies:
    """primary -> secondary (and a strong tier for hard answers); `endpoint` overrides both defaults."""
    retry = {"attempts": 1, "initial_s": 0.5, "factor": 2, "max_s": 8, "jitter_s": 0, **endpoint.pop("retry", {})}
    base = {"timeout_s": 5, "retry": retry, "breaker": {"failure_threshold": 3, "cooldown_s": 30}, **endpoint}
    return ErrorPolicies.model_validate(
        {
            "defaults": {"model": base},
            "models": {"primary": {}, "secondary": {}, "strong": {"model": STRONG}},
            "routes": {"default": {"simple": ["primary", "secondary"]}, "answer": {"hard": ["strong", "primary"]}},
        }
    )


def make_llm(
    server: FaultServer,
    clock: FakeClock,
    sleeps: list[float] | None = None,
    store: Any = None,
    models: tuple[str, str] = (P, S),
    **endpoint: Any,
) -> LLM:
    settings = Settings(llm_base_url=server.url, llm_model=models[0], llm_fallback_model=models[1])
    llm = build_llm(
        settings,
        LLMPolicy(),
        policies=policies(**endpoint),
        store=store or MemoryStore(),
        clock=clock,
        sleep=(sleeps if sleeps is not None else []).append,  # recorded, never slept
    )
    assert llm is not None
    return llm


# --- retries ------------------------------------------------------------------------------------


def test_retry_waits_grow_exponentially_with_bounded_jitter(server: FaultServer, clock: FakeClock) -> None:
    sleeps: list[float] = []
    retry = {"attempts": 5, "initial_s": 0.5, "factor": 2, "max_s": 1.5, "jitter_s": 0.25}
    llm = make_llm(server, clock, sleeps, retry=retry, breaker={"failure_threshold": 10, "cooldown_s": 30})
    server.script(P, ["500", "503", "500", "502", "ok"])
    reply = llm.generate(ASK)
    assert reply is not None and reply.endpoint == "primary" and reply.text == f"{P} says ok"
    assert server.count(P) == 5 and server.count(S) == 0
    assert len(sleeps) == 4
    assert 0.5 <= sleeps[0] <= 0.75 and 1.0 <= sleeps[1] <= 1.25  # 0.5 * 2**(n-1) + uniform(0, 0.25)
    assert sleeps[2] == sleeps[3] == 1.5  # capped at max_s
    assert sleeps[:2] != [0.5, 1.0]  # jitter is there


def test_node_retry_policy_from_config_drives_langgraph_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    from langgraph.graph import END, START, StateGraph
    from langgraph.pregel import _retry
    from typing_extensions import TypedDict

    from graphs.supervisor import NODE_NAMES, node_retry_policies

    shipped = node_retry_policies(Settings())
    assert set(shipped) == {"retrieve_knowledge", "plan_action", "remember"}
    assert all(p.retry_on == (sqlite3.OperationalError,) for p in shipped.values())

    spec = ErrorPolicies.model_validate(
        {"nodes": {"remember": {"attempts": 3, "initial_s": 0.2, "factor": 3, "retry_on": ["sqlite_busy"]}}}
    )
    policy = spec.node_retry_policies(NODE_NAMES)["remember"]
    sleeps: list[float] = []
    monkeypatch.setattr(_retry.time, "sleep", sleeps.append)

    class S(TypedDict):
        n: int

    calls = {"busy": 0, "bug": 0}

    def busy(state: S) -> S:
        calls["busy"] += 1
        if calls["busy"] < 3:
            raise sqlite3.OperationalError("database is locked")
        return {"n": calls["busy"]}

    def bug(state: S) -> S:
        calls["bug"] += 1
        raise KeyError("not worth retrying")

    for name, fn in (("busy", busy), ("bug", bug)):
        g = StateGraph(S)
        g.add_node(name, fn, retry_policy=policy)
        g.add_edge(START, name)
        g.add_edge(name, END)
        if name == "busy":
            assert g.compile().invoke({"n": 0}) == {"n": 3}
        else:
            with pytest.raises(KeyError):
                g.compile().invoke({"n": 0})
    assert calls == {"busy": 3, "bug": 1}  # narrow retry_on: a bug is not retried
    assert len(sleeps) == 2
    assert 0.2 <= sleeps[0] < 1.2 and 0.6 <= sleeps[1] < 1.6  # 0.2 * 3**(n-1) + LangGraph's uniform(0, 1)


def test_rate_limit_retry_after_is_waited_out_when_within_bound(server: FaultServer, clock: FakeClock) -> None:
    sleeps: list[float] = []
    llm = make_llm(server, clock, sleeps, retry={"attempts": 3, "max_retry_after_s": 20})
    server.script(P, ["429:7", "ok"])
    reply = llm.generate(ASK)
    assert reply is not None and reply.endpoint == "primary"
    assert sleeps == [7.0]  # the server's Retry-After, not the backoff's 0.5

    server.script(P, ["429:3600"])  # longer than the bound: the next tier answers instead of waiting an hour
    reply = llm.generate(ASK)
    assert reply is not None and reply.endpoint == "secondary"
    assert sleeps == [7.0] and server.count(P) == 3


# --- fallbacks and faults -----------------------------------------------------------------------


def test_fallback_order_primary_then_secondary_then_none(server: FaultServer, clock: FakeClock) -> None:
    llm = make_llm(server, clock)
    server.script(P, ["500"])
    reply = llm.generate(ASK)
    assert reply is not None and (reply.endpoint, reply.model) == ("secondary", S)
    assert reply.usage["prompt_tokens"] == 10 and reply.usage["llm_calls"] == 1
    server.script(P, ["503"])
    server.script(S, ["500"])
    assert llm.generate(ASK) is None  # the caller's offline tier, then a human, take it from here
    assert server.log == [(P, "500"), (S, "ok"), (P, "503"), (S, "500")]


def test_routing_by_task_and_complexity(server: FaultServer, clock: FakeClock) -> None:
    llm = make_llm(server, clock)
    assert llm.generate(ASK).model == P  # type: ignore[union-attr]
    assert llm.generate(ASK, task="classify").model == P  # type: ignore[union-attr]  # no entry: default
    assert llm.generate(ASK, task="answer", complexity="hard").model == STRONG  # type: ignore[union-attr]
    server.script(STRONG, ["500"])
    assert llm.generate(ASK, task="answer", complexity="hard").model == P  # type: ignore[union-attr]
    assert [m for m, _ in server.log] == [P, P, STRONG, STRONG, P]


@pytest.mark.parametrize(
    ("fault", "stream"),
    [("malformed", False), ("malformed", True), ("truncate", False), ("truncate", True), ("truncate:1", True)],
)
def test_malformed_and_truncated_replies_fall_through_unretried(
    server: FaultServer, clock: FakeClock, fault: str, stream: bool
) -> None:
    sleeps: list[float] = []
    llm = make_llm(server, clock, sleeps, retry={"attempts": 3}, stream=stream)  # retry_on leaves both out
    server.script(P, [fault])
    reply = llm.generate(ASK)
    assert reply is not None and reply.endpoint == "secondary" and reply.text == f"{S} says ok"
    assert server.count(P) == 1 and sleeps == []
    assert llm.breakers["primary"].failures == 1


def messages_of(llm: LLM, **generate: Any) -> tuple[Any, list[Any]]:
    """`llm.generate(ASK, **generate)` inside a one-node graph streamed with `stream_mode="messages"`."""
    from langgraph.graph import END, START, StateGraph
    from typing_extensions import TypedDict

    class S(TypedDict, total=False):
        text: str

    replies: list[Any] = []

    def answer(state: S) -> S:
        replies.append(llm.generate(ASK, **generate))
        return {"text": "done"}

    g = StateGraph(S)
    g.add_node("answer", answer)
    g.add_edge(START, "answer")
    g.add_edge("answer", END)
    streamed = list(g.compile().stream({}, stream_mode="messages"))  # (message chunk, metadata) pairs
    return replies[0], streamed


def test_with_stream_false_a_listening_messages_stream_still_gets_tokens_and_a_cut_stream_falls_through(
    server: FaultServer, clock: FakeClock
) -> None:
    """`stream: false` leaves ChatOpenAI's `streaming` unset (an explicit False would switch streaming off): under
    LangGraph's `messages` mode a visible call streams, and a stream that ends without a finish reason is a truncated
    reply whether or not the policy asked for streaming."""
    llm = make_llm(server, clock, stream=False)
    server.says[P] = "Standard delivery takes two to four days."
    reply, streamed = messages_of(llm, task="answer", visible=True)
    tokens = [m.content for m, meta in streamed if meta["langgraph_node"] == "answer" and m.content]
    assert len(tokens) >= 5 and "".join(tokens) == reply.text == server.says[P]

    server.script(P, ["truncate:1"])
    reply, _ = messages_of(llm, task="answer", visible=True)
    assert reply.endpoint == "secondary" and reply.text == f"{S} says ok"
    assert llm.breakers["primary"].failures == 1

    reply, streamed = messages_of(llm, task="classify")  # not visible: tagged nostream, nothing on `messages`
    assert reply.endpoint == "primary" and streamed == []


def test_timeout_is_bounded_by_the_configured_client_timeout(server: FaultServer, clock: FakeClock) -> None:
    sleeps: list[float] = []
    llm = make_llm(server, clock, sleeps, timeout_s=0.3, retry={"attempts": 2})
    server.script(P, ["hang:30", "hang:30"])
    start = time.perf_counter()
    reply = llm.generate(ASK)
    elapsed = time.perf_counter() - start
    assert reply is not None and reply.endpoint == "secondary"
    assert server.count(P) == 2 and len(sleeps) == 1  # a timeout is worth one more try
    assert 0.6 <= elapsed < 0.6 + 2.0, elapsed  # two client timeouts, not the server's 30 s hang


# --- circuit breaker ----------------------------------------------------------------------------


def test_breaker_transitions(clock: FakeClock) -> None:
    b = CircuitBreaker(2, 10, clock, name="x", trial_timeout_s=20)
    stale = b.acquire()
    for _ in range(2):
        permit = b.acquire()
        assert permit is not None and not permit.trial
        b.release(permit, ok=False)
    assert b.state == "open" and b.acquire() is None
    clock.advance(9.9)
    assert b.acquire() is None
    clock.advance(0.1)
    assert b.state == "half_open"
    trial = b.acquire()
    assert trial is not None and trial.trial
    assert b.acquire() is None and b.acquire() is None  # one trial only
    b.release(stale, ok=True)  # a late success from before the circuit opened changes nothing
    assert b.state == "half_open" and b.snapshot().trial_in_flight
    b.release(trial, ok=False)
    assert b.state == "open"
    clock.advance(9.9)
    assert b.acquire() is None  # a fresh cool-down from the failed trial
    clock.advance(0.1)
    lost = b.acquire()
    assert lost is not None and lost.trial
    clock.advance(20)  # the trial never reported (its process died): presumed lost
    trial = b.acquire()
    assert trial is not None and trial.trial and trial.token != lost.token
    b.release(lost, ok=False)  # the lost trial answering late changes nothing
    assert b.snapshot().trial_in_flight
    b.release(trial, ok=True)
    assert b.state == "closed" and b.failures == 0
    assert b.release(Permit(), ok=False) is None and b.state == "closed"


def _five_callers_in_half_open(server: FaultServer, llms: list[LLM], primary: str = P) -> list[str]:
    """Five threads call at once while the trial is held at the server; returns who answered each."""
    results: list[str] = []
    done = threading.Condition()
    barrier = threading.Barrier(5)

    def call(llm: LLM) -> None:
        barrier.wait()
        reply = llm.generate(ASK)
        with done:
            results.append(reply.endpoint if reply else "none")
            done.notify_all()

    server.script(primary, ["hold"])
    threads = [threading.Thread(target=call, args=(llms[i % len(llms)],)) for i in range(5)]
    for t in threads:
        t.start()
    with done:  # the four refused callers answer from the secondary while the trial is still held
        assert done.wait_for(lambda: len(results) == 4, timeout=10)
    server.release()
    for t in threads:
        t.join(timeout=10)
    return results


def _open_primary(server: FaultServer, llm: LLM, primary: str = P) -> None:
    server.script(primary, ["500", "500", "500"])
    for _ in range(3):
        assert llm.generate(ASK).endpoint == "secondary"  # type: ignore[union-attr]
    assert llm.breakers["primary"].state == "open"


def test_half_open_lets_exactly_one_of_five_concurrent_callers_through(server: FaultServer, clock: FakeClock) -> None:
    llm = make_llm(server, clock)
    _open_primary(server, llm)
    assert llm.generate(ASK).endpoint == "secondary"  # type: ignore[union-attr]
    assert server.count(P) == 3  # open: refused without a request
    clock.advance(30)
    results = _five_callers_in_half_open(server, [llm])
    assert server.count(P) == 4  # exactly one trial reached the model
    assert sorted(results) == ["primary"] + ["secondary"] * 4
    assert llm.breakers["primary"].state == "closed"


def test_failed_trial_reopens_without_a_retry(server: FaultServer, clock: FakeClock) -> None:
    sleeps: list[float] = []
    llm = make_llm(server, clock, sleeps, retry={"attempts": 3})
    server.script(P, ["500"] * 3)
    assert llm.generate(ASK).endpoint == "secondary"  # type: ignore[union-attr]  # 3 attempts open it
    assert server.count(P) == 3 and llm.breakers["primary"].state == "open" and len(sleeps) == 2
    clock.advance(30)
    server.script(P, ["500"])
    assert llm.generate(ASK).endpoint == "secondary"  # type: ignore[union-attr]
    assert server.count(P) == 4 and len(sleeps) == 2  # the trial got one request: no retry, not even a wait
    clock.advance(29)
    assert llm.generate(ASK).endpoint == "secondary" and server.count(P) == 4  # type: ignore[union-attr]
    clock.advance(1)
    assert llm.generate(ASK).endpoint == "primary" and llm.breaker_states()["primary"] == "closed"  # type: ignore[union-attr]


def test_a_failure_that_opens_the_circuit_is_not_followed_by_a_wait(server: FaultServer, clock: FakeClock) -> None:
    sleeps: list[float] = []
    llm = make_llm(server, clock, sleeps, retry={"attempts": 5}, breaker={"failure_threshold": 2, "cooldown_s": 30})
    server.script(P, ["500", "500", "ok"])
    reply = llm.generate(ASK)
    assert reply is not None and reply.endpoint == "secondary"  # the open circuit sends it on at once
    assert server.count(P) == 2 and len(sleeps) == 1  # one wait between the two failures, none after the second


# --- shared state through Redis -----------------------------------------------------------------


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = os.environ.get("SWITCHBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        require_service(f"Redis not reachable at {url}")
    yield url


def test_breaker_state_is_shared_across_two_llm_objects_via_redis(server: FaultServer, redis_url: str) -> None:
    import redis

    clock = FakeClock(time.time())  # a shared store compares wall-clock times across processes
    p, s = f"p-{uuid.uuid4().hex[:8]}", f"s-{uuid.uuid4().hex[:8]}"
    try:
        a = make_llm(server, clock, store=RedisStore(redis_url), models=(p, s))
        b = make_llm(server, clock, store=RedisStore(redis_url), models=(p, s))  # another process, in effect
        _open_primary(server, a, p)
        assert b.breaker_states()["primary"] == "open"
        assert b.generate(ASK).endpoint == "secondary" and server.count(p) == 3  # type: ignore[union-attr]

        settings = Settings(llm_base_url=server.url, llm_model=p, llm_fallback_model=s, redis_url=redis_url)
        assert breaker_states(None, settings) == {"primary": "open", "secondary": "closed", "strong": "closed"}
        from observability.http import check_llm

        assert check_llm(settings, None)["breakers"]["primary"] == "open"  # health with no chain in-process

        clock.advance(30)
        results = _five_callers_in_half_open(server, [a, b], p)  # 3 callers through a, 2 through b
        assert server.count(p) == 4 and sorted(results) == ["primary"] + ["secondary"] * 4
        assert a.breaker_states()["primary"] == b.breaker_states()["primary"] == "closed"
    finally:
        client = redis.Redis.from_url(redis_url)
        for model in (p, s):
            for key in client.scan_iter(f"switchboard:breaker:{model}@*"):
                client.delete(key)


def test_unreachable_redis_degrades_to_in_process_state(clock: FakeClock) -> None:
    b = CircuitBreaker(1, 10, clock, name="x", store=RedisStore("redis://127.0.0.1:1/0"))
    permit = b.acquire()
    assert permit is not None
    b.release(permit, ok=False)
    assert b.acquire() is None and b.state == "open"


# --- config -------------------------------------------------------------------------------------


def test_shipped_error_policies_validate() -> None:
    shipped = Settings().error_policies()
    assert shipped.route("answer", "hard")[0] == "strong" and shipped.route("summarise", "simple")[0] == "primary"
    assert shipped.models["strong"].timeout_s == 60 and shipped.models["primary"].timeout_s == 30  # defaults merged


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models: {primary: {retry: {attempts: 0}}}", "models.primary.retry.attempts: Input should be greater"),
        ("models: {primary: {timeout: 5}}", "models.primary.timeout: Extra inputs are not permitted"),
        ("models: {primary: {retry: {retry_on: [sqlite_busy]}}}", "models.primary.retry.retry_on[0]: Input should be"),
        ("defaults: {model: {breaker: {cooldown_s: -1}}}", "defaults.model.breaker.cooldown_s: Input should be"),
        ("models: {primary: {}}\nroutes: {answer: {hard: [strnog]}}", "routes.answer.hard[0]: unknown model endpoint"),
        ("models: {fast: {}}", "models.fast.model: required"),
        ("routes: {translate: {simple: []}}", "routes.translate: Input should be"),
        ("nodes: {remember: {attempts: 2, retry_on: []}}", "nodes.remember.retry_on: Tuple should have at least 1"),
        ("version: 2", "version: Input should be 1"),
    ],
)
def test_bad_error_policies_fail_with_one_line_naming_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "error-policies.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        load_error_policies(path)
    message = str(info.value)
    assert expected in message and str(path) in message and "\n" not in message


def test_unknown_node_in_config_is_an_error() -> None:
    from graphs.supervisor import NODE_NAMES

    spec = ErrorPolicies.model_validate({"nodes": {"retrive_knowledge": {"retry_on": ["sqlite_busy"]}}})
    with pytest.raises(ValueError, match=r"unknown node\(s\) \['retrive_knowledge'\]"):
        spec.node_retry_policies(NODE_NAMES)


# --- the fault server itself ----------------------------------------------------------------------


def test_fault_server_rates_are_seeded_and_counted() -> None:
    import json
    import urllib.request

    def run(seed: int) -> list[tuple[str, str]]:
        with FaultServer(rates={"500": 0.3, "429:2": 0.2}, seed=seed) as srv:
            for _ in range(20):
                body = json.dumps({"model": "m", "messages": []}).encode()
                req = urllib.request.Request(f"{srv.url}/chat/completions", body, {"Content-Type": "application/json"})
                try:
                    urllib.request.urlopen(req, timeout=5).read()
                except urllib.error.HTTPError:
                    pass
            assert srv.count("m") == 20
            return list(srv.log)

    first = run(7)
    assert first == run(7) and {f for _, f in first} == {"ok", "500", "429:2"}
    with pytest.raises(ValueError, match="unknown fault"):
        parse_fault("teapot")
