"""Rate limits: a token bucket per user and one per tenant (config/policy.yaml `rate_limits`).

Every ticket (CLI `ask` / `resume`, an API run) takes one token from the caller's user bucket and one from
their tenant's, both or neither. A bucket holds up to `capacity` tokens and refills at `per_minute`; an empty
one answers `rate_limited` with how long to wait (CLI: JSON status `rate_limited`, exit 75; API: HTTP 429
with `Retry-After`), never an error.

State lives in the process by default (`MemoryBuckets`). With `Settings.redis_url` (SWITCHBOARD_REDIS_URL)
it lives in Redis (`RedisBuckets`): one Lua script checks and takes both buckets atomically, on the Redis
server's clock, so several instances enforce one limit. If Redis cannot be reached the limiter says so in
the log and falls back to in-process buckets (each instance then limits on its own) rather than refusing
every request or letting every request through unlimited.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from config.settings import Bucket, RateLimitPolicy, Settings

log = logging.getLogger("switchboard.ratelimit")

EXIT_RATE_LIMITED = 75  # sysexits.h EX_TEMPFAIL: try again later


@dataclass(frozen=True)
class Want:
    """One bucket a request draws from."""

    key: str
    scope: str  # "user" | "tenant"
    bucket: Bucket


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float = 0.0
    scope: str | None = None  # the bucket that was empty


class RateLimited(Exception):
    """The caller is over a limit; `retry_after_s` says when a token is back. Not an error: a status."""

    def __init__(self, decision: Decision, *, user_id: str, tenant_id: str) -> None:
        self.decision, self.user_id, self.tenant_id = decision, user_id, tenant_id
        who = f"user {user_id}" if decision.scope == "user" else f"tenant {tenant_id}"
        super().__init__(f"rate limited: too many tickets for {who}; retry in {self.retry_after} s")

    @property
    def retry_after(self) -> int:
        """Whole seconds to wait (the HTTP Retry-After value), at least 1."""
        return max(1, math.ceil(self.decision.retry_after_s))

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "rate_limited",
            "scope": self.decision.scope,
            "user_id": self.user_id,
            "tenant_id": self.tenant_id,
            "retry_after_s": self.retry_after,
            "message": str(self),
        }


class Buckets(Protocol):
    def take(self, wants: Sequence[Want], cost: float = 1.0) -> Decision: ...


class MemoryBuckets:
    """Token buckets in this process (thread-safe); `clock` is injectable for tests."""

    shared = False

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, wants: Sequence[Want], cost: float = 1.0) -> Decision:
        with self._lock:
            now = self.clock()
            levels, wait, empty = [], 0.0, None
            for want in wants:
                tokens, at = self._state.get(want.key, (want.bucket.capacity, now))
                tokens = min(want.bucket.capacity, tokens + max(0.0, now - at) * want.bucket.per_second)
                levels.append(tokens)
                if tokens < cost and (need := (cost - tokens) / want.bucket.per_second) > wait:
                    wait, empty = need, want.scope
            if empty is not None:
                return Decision(False, wait, empty)
            for want, tokens in zip(wants, levels, strict=True):
                self._state[want.key] = (tokens - cost, now)
            return Decision(True)


# KEYS: the buckets; ARGV: cost, then capacity and refill per second for each key. Both taken, or neither.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cost = tonumber(ARGV[1])
local levels = {}
local wait, empty = 0, 0
for i = 1, #KEYS do
  local cap, rate = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local h = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local tokens, ts = tonumber(h[1]), tonumber(h[2])
  if tokens == nil or ts == nil then tokens, ts = cap, now end
  tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
  levels[i] = tokens
  if tokens < cost and (cost - tokens) / rate > wait then
    wait, empty = (cost - tokens) / rate, i
  end
end
if empty > 0 then return {0, tostring(wait), empty} end
for i = 1, #KEYS do
  local cap, rate = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  redis.call('HSET', KEYS[i], 'tokens', tostring(levels[i] - cost), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(cap / rate * 1000) + 1000)
end
return {1, '0', 0}
"""


class RedisBuckets:
    """Token buckets in Redis, shared by every instance (see the module docstring)."""

    shared = True

    def __init__(self, url_or_client: Any, prefix: str = "switchboard:ratelimit:") -> None:
        if isinstance(url_or_client, str):
            import redis

            url_or_client = redis.Redis.from_url(url_or_client, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.client, self.prefix = url_or_client, prefix
        self._take = self.client.register_script(_TAKE)
        self._local = MemoryBuckets()
        self._warned = False

    def take(self, wants: Sequence[Want], cost: float = 1.0) -> Decision:
        import redis

        args: list[Any] = [repr(float(cost))]
        for want in wants:
            args += [repr(float(want.bucket.capacity)), repr(want.bucket.per_second)]
        try:
            allowed, wait, empty = self._take(keys=[self.prefix + w.key for w in wants], args=args)
        except redis.RedisError as exc:
            if not self._warned:
                log.warning("rate-limit store unreachable (%s): limiting in this process only", exc)
                self._warned = True
            return self._local.take(wants, cost)
        if int(allowed):
            return Decision(True)
        return Decision(False, float(wait), wants[int(empty) - 1].scope)


class RateLimiter:
    """Checks a ticket against the user's and the tenant's bucket; raises `RateLimited` when one is empty."""

    def __init__(self, policy: RateLimitPolicy, buckets: Buckets | None = None) -> None:
        self.policy, self.buckets = policy, buckets or MemoryBuckets()

    def check(self, user_id: str, tenant_id: str, cost: float = 1.0) -> None:
        if not self.policy.enabled:
            return
        wants = [
            Want(f"user:{tenant_id}:{user_id}", "user", self.policy.user),
            Want(f"tenant:{tenant_id}", "tenant", self.policy.tenant),
        ]
        decision = self.buckets.take(wants, cost)
        if not decision.allowed:
            raise RateLimited(decision, user_id=user_id, tenant_id=tenant_id)


_lock = threading.Lock()
_limiters: dict[tuple[Any, ...], RateLimiter] = {}


def limiter_for(settings: Settings) -> RateLimiter:
    """The process-wide limiter for these settings: Redis-backed when `redis_url` is set, else in-process."""
    policy = settings.policy().rate_limits
    key = (settings.redis_url, policy)
    with _lock:
        if key not in _limiters:
            try:
                buckets: Buckets = RedisBuckets(settings.redis_url) if settings.redis_url else MemoryBuckets()
            except ImportError as exc:
                raise RuntimeError(
                    "SWITCHBOARD_REDIS_URL is set but the redis package is missing: pip install 'switchboard[redis]'"
                ) from exc
            _limiters[key] = RateLimiter(policy, buckets)
        return _limiters[key]


def reset() -> None:
    """Refill every in-process bucket of this process (tests: each test starts with full buckets)."""
    with _lock:
        for limiter in _limiters.values():
            buckets = limiter.buckets
            for local in (buckets, getattr(buckets, "_local", None)):
                if isinstance(local, MemoryBuckets):
                    with local._lock:
                        local._state.clear()
