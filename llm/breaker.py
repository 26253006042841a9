"""Circuit breakers per model endpoint: closed -> open -> half-open with exactly one trial.

Hand-written, after reading the maintained ones on PyPI: pybreaker 1.4 holds one lock around the whole
protected call (callers queue behind a slow trial instead of failing fast, and its Redis storage
shares no lock between processes), reads `datetime.now()` (no injected clock) and is async only via
Tornado; purgatory 3.0 and circuitbreaker 2.1 let every caller through while half-open and read the
system clock. What is needed here is small: an atomic "claim the trial" in memory or in Redis.

- closed: every call passes; `failure_threshold` consecutive failed requests open the circuit.
- open: every call is refused (the caller falls through to its next tier) until `cooldown_s` passed.
- half-open: the first caller claims the one trial (a token); everyone else is refused while it runs.
  Its success closes the circuit, its failure re-opens it with a fresh cool-down. A trial with no
  result after `trial_timeout_s` is presumed lost (its process died) and the next caller may claim one.

Results are reported with the `Permit` that `acquire()` gave: a late result from before the circuit
opened, or from a lost trial, changes nothing. The state lives in a `BreakerStore`: `MemoryStore`
(one process) or `RedisStore` (every process that shares the Redis URL sees one state). The breaker
never blocks on a call, so the same object serves sync and async callers.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

log = logging.getLogger("switchboard.llm.breaker")

State = Literal["closed", "open", "half_open"]


class CircuitOpen(Exception):
    """Raised instead of calling an endpoint whose circuit refuses calls (open, or half-open with a trial)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"circuit {name!r} is open")
        self.name = name


@dataclass(frozen=True)
class Permit:
    """Leave to make one request: `trial` when it is the half-open probe (then `token` identifies it;
    `ANY_TRIAL` stands for whichever trial is in flight)."""

    trial: bool = False
    token: str = ""


ANY_TRIAL = "*"


@dataclass(frozen=True)
class Snapshot:
    state: State
    failures: int
    opened_at: float | None
    trial_in_flight: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "failures": self.failures,
            "opened_at": self.opened_at,
            "trial_in_flight": self.trial_in_flight,
        }


@dataclass(frozen=True)
class Limits:
    threshold: int
    cooldown_s: float
    trial_timeout_s: float


class BreakerStore(Protocol):
    """Where breaker state lives; every method is one atomic step."""

    shared: bool

    def acquire(self, name: str, now: float, limits: Limits) -> Permit | None: ...
    def release(self, name: str, permit: Permit, ok: bool, now: float, limits: Limits) -> None: ...
    def snapshot(self, name: str, now: float, limits: Limits) -> Snapshot: ...
    def force(self, name: str, failures: int | None = None, opened_at: float | None | Literal["keep"] = "keep") -> None:
        """Set the raw state (tests and operators): `opened_at` None closes, a number opens."""
        ...


@dataclass
class _Record:
    state: State = "closed"
    failures: int = 0
    opened_at: float | None = None
    token: str = ""
    trial_started: float = 0.0


class MemoryStore:
    """Breaker state in this process, behind one lock."""

    shared = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, _Record] = {}

    def _rec(self, name: str) -> _Record:
        return self._records.setdefault(name, _Record())

    def acquire(self, name: str, now: float, limits: Limits) -> Permit | None:
        with self._lock:
            rec = self._rec(name)
            if rec.state == "closed":
                return Permit()
            if rec.state == "open" and now - (rec.opened_at or 0.0) < limits.cooldown_s:
                return None
            if rec.state == "half_open" and now - rec.trial_started < limits.trial_timeout_s:
                return None  # a trial is in flight: fail fast
            rec.state, rec.token, rec.trial_started = "half_open", uuid.uuid4().hex, now
            return Permit(trial=True, token=rec.token)

    def release(self, name: str, permit: Permit, ok: bool, now: float, limits: Limits) -> None:
        with self._lock:
            rec = self._rec(name)
            if not permit.trial:
                if rec.state != "closed":
                    return  # a late result from before the circuit opened
                rec.failures = 0 if ok else rec.failures + 1
                if rec.failures >= limits.threshold:
                    rec.state, rec.opened_at = "open", now
                return
            if rec.state != "half_open" or permit.token not in (rec.token, ANY_TRIAL):
                return  # a trial presumed lost, answering late
            rec.token = ""
            if ok:
                rec.state, rec.failures, rec.opened_at = "closed", 0, None
            else:
                rec.state, rec.opened_at = "open", now

    def snapshot(self, name: str, now: float, limits: Limits) -> Snapshot:
        with self._lock:
            rec = self._rec(name)
            return _snapshot(rec.state, rec.failures, rec.opened_at, rec.trial_started, now, limits)

    def force(self, name: str, failures: int | None = None, opened_at: float | None | Literal["keep"] = "keep") -> None:
        with self._lock:
            rec = self._rec(name)
            if failures is not None:
                rec.failures = failures
            if opened_at != "keep":
                rec.state, rec.opened_at, rec.token = ("closed" if opened_at is None else "open"), opened_at, ""


def _snapshot(
    state: State, failures: int, opened_at: float | None, trial_started: float, now: float, limits: Limits
) -> Snapshot:
    if state == "open" and now - (opened_at or 0.0) >= limits.cooldown_s:
        return Snapshot("half_open", failures, opened_at)  # the next caller gets the trial
    in_flight = state == "half_open" and now - trial_started < limits.trial_timeout_s
    return Snapshot(state, failures, opened_at, trial_in_flight=in_flight)


_ACQUIRE = """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'closed' then return {'closed', ''} end
local now = tonumber(ARGV[1])
if state == 'open' and now - tonumber(redis.call('HGET', KEYS[1], 'opened_at') or '0') < tonumber(ARGV[2]) then
  return {'refused', ''}
end
if state == 'half_open' and now - tonumber(redis.call('HGET', KEYS[1], 'trial_started') or '0') < tonumber(ARGV[3]) then
  return {'refused', ''}
end
redis.call('HSET', KEYS[1], 'state', 'half_open', 'token', ARGV[4], 'trial_started', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {'trial', ARGV[4]}
"""

_RELEASE = """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local trial, ok = ARGV[1] == '1', ARGV[3] == '1'
if not trial then
  if state ~= 'closed' then return state end
  if ok then redis.call('HSET', KEYS[1], 'failures', 0) redis.call('EXPIRE', KEYS[1], ARGV[6]) return 'closed' end
  local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
  if failures >= tonumber(ARGV[5]) then redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ARGV[4]) end
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  return state
end
if state ~= 'half_open' or (ARGV[2] ~= '*' and redis.call('HGET', KEYS[1], 'token') ~= ARGV[2]) then
  return state
end
redis.call('HDEL', KEYS[1], 'token')
if ok then
  redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0)
  redis.call('HDEL', KEYS[1], 'opened_at')
else
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ARGV[4])
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
return state
"""


class RedisStore:
    """Breaker state in Redis (one hash per endpoint, updated by Lua scripts, so each step is atomic
    across processes). Clocks must agree between processes: breakers on this store default to
    `time.time`. If Redis fails, each step falls back to an in-process store and says so once."""

    shared = True

    def __init__(self, url_or_client: Any, prefix: str = "switchboard:breaker:", ttl_s: int = 86400) -> None:
        if isinstance(url_or_client, str):
            import redis

            url_or_client = redis.Redis.from_url(url_or_client, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.client = url_or_client
        self.prefix, self.ttl_s = prefix, ttl_s
        self._acquire = self.client.register_script(_ACQUIRE)
        self._release = self.client.register_script(_RELEASE)
        self._local = MemoryStore()
        self._warned = False

    def _key(self, name: str) -> str:
        return self.prefix + name

    def _degraded(self, exc: Exception) -> None:
        if not self._warned:
            log.warning("breaker store unreachable (%s): using in-process state", exc)
            self._warned = True

    def acquire(self, name: str, now: float, limits: Limits) -> Permit | None:
        import redis

        token = uuid.uuid4().hex
        args = [repr(now), limits.cooldown_s, limits.trial_timeout_s, token, self.ttl_s]
        try:
            kind, got = self._acquire(keys=[self._key(name)], args=args)
        except redis.RedisError as exc:
            self._degraded(exc)
            return self._local.acquire(name, now, limits)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "refused":
            return None
        return Permit(trial=kind == "trial", token=got.decode() if isinstance(got, bytes) else got)

    def release(self, name: str, permit: Permit, ok: bool, now: float, limits: Limits) -> None:
        import redis

        args = [int(permit.trial), permit.token, int(ok), repr(now), limits.threshold, self.ttl_s]
        try:
            self._release(keys=[self._key(name)], args=args)
        except redis.RedisError as exc:
            self._degraded(exc)
            self._local.release(name, permit, ok, now, limits)

    def snapshot(self, name: str, now: float, limits: Limits) -> Snapshot:
        import redis

        try:
            raw = {k.decode(): v.decode() for k, v in self.client.hgetall(self._key(name)).items()}
        except redis.RedisError as exc:
            self._degraded(exc)
            return self._local.snapshot(name, now, limits)
        opened = float(raw["opened_at"]) if raw.get("opened_at") else None
        state: State = raw.get("state", "closed")
        return _snapshot(state, int(raw.get("failures", 0)), opened, float(raw.get("trial_started", 0)), now, limits)

    def force(self, name: str, failures: int | None = None, opened_at: float | None | Literal["keep"] = "keep") -> None:
        key = self._key(name)
        if failures is not None:
            self.client.hset(key, "failures", failures)
        if opened_at is None:
            self.client.hset(key, "state", "closed")
            self.client.hdel(key, "opened_at", "token")
        elif opened_at != "keep":
            self.client.hset(key, mapping={"state": "open", "opened_at": repr(opened_at)})
            self.client.hdel(key, "token")
        self.client.expire(key, self.ttl_s)


class CircuitBreaker:
    """One endpoint's breaker. `acquire()` / `release()` bracket each request; `allow()` / `record()` are
    the older one-shot pair (record applies to whatever the current state is)."""

    def __init__(
        self,
        threshold: int = 3,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] | None = None,
        *,
        name: str = "",
        store: BreakerStore | None = None,
        trial_timeout_s: float | None = None,
    ) -> None:
        self.name = name or uuid.uuid4().hex[:8]
        self.store: BreakerStore = store or MemoryStore()
        self.clock: Callable[[], float] = clock or (time.time if self.store.shared else time.monotonic)
        self.limits = Limits(threshold, cooldown_s, trial_timeout_s or max(2 * cooldown_s, 60.0))

    @property
    def threshold(self) -> int:
        return self.limits.threshold

    @property
    def cooldown_s(self) -> float:
        return self.limits.cooldown_s

    def acquire(self) -> Permit | None:
        """A permit for one request, or None: refused (open, or half-open with its trial in flight)."""
        return self.store.acquire(self.name, self.clock(), self.limits)

    def release(self, permit: Permit, ok: bool) -> None:
        """Report the outcome of the request `permit` allowed."""
        self.store.release(self.name, permit, ok, self.clock(), self.limits)

    def snapshot(self) -> Snapshot:
        return self.store.snapshot(self.name, self.clock(), self.limits)

    @property
    def state(self) -> State:
        return self.snapshot().state

    # --- the one-shot pair and raw fields, as before the permits ----------------------------------
    def allow(self) -> bool:
        """Whether a call may go ahead now; in half-open this claims the one trial."""
        return self.acquire() is not None

    def record(self, ok: bool) -> None:
        """Report an outcome without a permit: the trial's when a trial is in flight, else a closed call's."""
        snap = self.snapshot()
        self.release(Permit(trial=True, token=ANY_TRIAL) if snap.trial_in_flight else Permit(), ok)

    @property
    def failures(self) -> int:
        return self.snapshot().failures

    @failures.setter
    def failures(self, value: int) -> None:
        self.store.force(self.name, failures=value)

    @property
    def opened_at(self) -> float | None:
        return self.snapshot().opened_at

    @opened_at.setter
    def opened_at(self, value: float | None) -> None:
        self.store.force(self.name, opened_at=value)
