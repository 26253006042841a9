"""Rate limits: token buckets per user and tenant, in process and in Redis, and how the CLI and the auth
handler answer a caller over the limit (a `rate_limited` status / HTTP 429, never an error)."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import Auth

from auth import handlers
from auth.audit import MemoryAuditLog
from auth.identity import Identity
from auth.ratelimit import EXIT_RATE_LIMITED, MemoryBuckets, RateLimited, RateLimiter, RedisBuckets
from config.settings import Bucket, RateLimitPolicy, Settings
from tests.conftest import require_service

TIGHT = RateLimitPolicy(user=Bucket(capacity=2, per_minute=6), tenant=Bucket(capacity=3, per_minute=6))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refused(limiter: RateLimiter, user: str, tenant: str = "t") -> RateLimited:
    with pytest.raises(RateLimited) as info:
        limiter.check(user, tenant)
    return info.value


def test_a_user_bucket_empties_and_refills() -> None:
    clock = Clock()
    limiter = RateLimiter(TIGHT, MemoryBuckets(clock))
    limiter.check("ann", "t")
    limiter.check("ann", "t")
    exc = refused(limiter, "ann")
    assert exc.decision.scope == "user" and exc.decision.retry_after_s == pytest.approx(10.0)  # 6/min: one per 10 s
    assert exc.retry_after == 10 and exc.as_dict()["status"] == "rate_limited"
    clock.now += 9.9
    refused(limiter, "ann")
    clock.now += 0.2
    limiter.check("ann", "t")


def test_the_tenant_bucket_is_shared_and_a_refusal_takes_nothing() -> None:
    clock = Clock()
    limiter = RateLimiter(TIGHT, MemoryBuckets(clock))
    limiter.check("ann", "t")
    limiter.check("ann", "t")
    limiter.check("bob", "t")
    exc = refused(limiter, "cid")  # cid's own bucket is full, the tenant's is empty
    assert exc.decision.scope == "tenant" and "tenant t" in str(exc)
    limiter.check("cid", "other")  # another tenant is not affected
    clock.now += 10
    limiter.check("cid", "t")  # the refused call took no token from cid's bucket: one tenant token was enough


def test_disabled_limits_never_refuse() -> None:
    limiter = RateLimiter(RateLimitPolicy(enabled=False, user=Bucket(capacity=1, per_minute=1)), MemoryBuckets())
    for _ in range(5):
        limiter.check("ann", "t")


# ---------------------------------------------------------------- Redis: several instances, one limit


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = os.environ.get("SWITCHBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        require_service(f"Redis not reachable at {url}")
    yield url


def test_two_instances_share_one_limit_through_redis(redis_url: str) -> None:
    import redis

    prefix = f"switchboard:test:{uuid.uuid4().hex}:"
    policy = RateLimitPolicy(user=Bucket(capacity=3, per_minute=1), tenant=Bucket(capacity=100, per_minute=60))
    one = RateLimiter(policy, RedisBuckets(redis_url, prefix=prefix))
    two = RateLimiter(policy, RedisBuckets(redis_url, prefix=prefix))  # another process, in effect
    try:
        one.check("ann", "t")
        two.check("ann", "t")
        one.check("ann", "t")
        exc = refused(two, "ann")
        assert exc.decision.scope == "user" and 55 < exc.decision.retry_after_s <= 60  # one token a minute
        refused(one, "ann")
        two.check("bob", "t")  # bob has his own bucket
        client = redis.Redis.from_url(redis_url)
        assert float(client.hget(prefix + "user:t:ann", "tokens")) < 1
        assert 0 < client.pttl(prefix + "user:t:ann") <= 181_000  # the key expires once the bucket would be full
    finally:
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(prefix + "*"):
            client.delete(key)


def test_unreachable_redis_degrades_to_in_process_buckets() -> None:
    limiter = RateLimiter(TIGHT, RedisBuckets("redis://127.0.0.1:1/0"))
    limiter.check("ann", "t")
    limiter.check("ann", "t")
    assert refused(limiter, "ann").decision.scope == "user"


# ---------------------------------------------------------------- the auth handler: 429 with Retry-After


def test_the_run_handler_answers_429_with_retry_after_and_audits_it(monkeypatch: pytest.MonkeyPatch) -> None:
    audit = MemoryAuditLog()
    monkeypatch.setattr(handlers, "AUDIT", audit)
    monkeypatch.setattr(handlers, "LIMITER", RateLimiter(TIGHT, MemoryBuckets(Clock())))
    user = Identity(user_id="ann", tenant_id="t").as_user()
    ctx = Auth.types.AuthContext(user=user, permissions=[], resource="threads", action="create_run")  # type: ignore[arg-type]

    def run() -> Any:
        value = {"thread_id": "t1", "kwargs": {"input": {}}, "metadata": {}}
        return asyncio.run(handlers.on_create_run(ctx=ctx, value=value))

    run()
    run()
    with pytest.raises(Auth.exceptions.HTTPException) as info:
        run()
    assert info.value.status_code == 429 and info.value.headers == {"Retry-After": "10"}
    assert "rate limited" in str(info.value.detail)
    [event] = audit.query()
    assert (event.kind, event.actor, event.tenant, event.outcome, event.thread_id) == (
        "rate_limited", "ann", "t", "429", "t1"
    )


# ---------------------------------------------------------------- the CLI: status rate_limited, exit 75


@pytest.fixture
def cli(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The shared CLI fixture (conftest) with a per-user bucket of one ticket, refilled every two minutes."""
    config = tmp_path / "config"
    shutil.copytree(Settings().config_dir, config, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    policy = (config / "policy.yaml").read_text().replace(
        "user: {capacity: 10, per_minute: 30}", "user: {capacity: 1, per_minute: 0.5}"
    )
    (config / "policy.yaml").write_text(policy)
    monkeypatch.setenv("SWITCHBOARD_CONFIG_DIR", str(config))
    return cli


def test_the_cli_answers_rate_limited_with_status_and_exit_75(cli: Any, tmp_path: Path) -> None:
    code, first, _ = cli("ask", "How long does standard delivery take?", "--json")
    assert code == 0 and first["status"] == "completed"
    checkpoints = (tmp_path / "data" / "checkpoints.sqlite").stat().st_size
    code, out, err = cli("ask", "And to Belgium?", "--thread", first["thread_id"], "--json")
    assert code == EXIT_RATE_LIMITED
    wait = out.pop("retry_after_s")
    assert 0 < wait <= 120  # one token every 120 s, less the time the first ticket took
    assert out == {
        "status": "rate_limited", "scope": "user", "user_id": "demo", "tenant_id": "default",
        "message": f"rate limited: too many tickets for user demo; retry in {wait} s",
    }  # fmt: skip
    assert err.strip() == out["message"]
    assert (tmp_path / "data" / "checkpoints.sqlite").stat().st_size == checkpoints, "nothing ran"
    code, other, _ = cli("ask", "How long does standard delivery take?", "--user", "alice", "--json")
    assert code == 0 and other["status"] == "completed"  # alice has her own bucket
    code, _, err = cli("ask", "   ", "--json")
    assert code == 2 and "empty" in err  # bad input is still bad input, not a rate limit
