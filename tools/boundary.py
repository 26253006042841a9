"""The boundary around every tool call: a circuit breaker per tool, retries, and a check of what the tool returned.

`tools.registry.execute` hands each validated call to `guarded(db, spec, run)`, which never raises:

- the tool's circuit breaker (keyed by tool and shop database; in Redis when `SWITCHBOARD_REDIS_URL` is set, so
  every process sees one state) refuses a call while open, or while its one half-open trial runs:
  `ok=False`, "get_order is unavailable ...". The supervisor counts that as the specialist's failure, runs it again
  up to `limits.max_specialist_failures`, then escalates to a human with the reason (a failed write escalates at
  once). A failure is a call that raised or returned malformed data; a business refusal or bad arguments are not.
- a call that raised an error of a kind in the tool's `retry_on` (a busy SQLite file) is tried again after an
  exponential, jittered wait (tenacity; `boundary().sleep` is injected in tests); a failed trial is not retried.
- what the tool returned must be a mapping of plain data (str keys; None, bool, int, finite float, str, date,
  lists and mappings of those) holding the keys answers are built from (`RESULT_KEYS`). Anything else raises
  `MalformedToolResult` inside the tool's own transaction, so a write that produced garbage is rolled back and
  nothing reaches the ledger; the ticket then degrades like any failed specialist (ran again, then a human).
- every failure is recorded: a log line, `switchboard_tool_failures_total{tool,kind}`, an `audit_log` row for a
  write tool, and the `ToolResult.error` that the specialist's failure record (and the escalation) carries.

Policies: config/error-policies.yaml `defaults.tool` and `tools` (validated against the registry's tool names).
`configure(settings)` installs them (graphs.services does, at start-up); before that the shipped file applies,
with breaker state in this process.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

from tenacity import Retrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from config.settings import ErrorPolicies, Settings, ToolPolicy
from llm.breaker import BreakerStore, CircuitBreaker, MemoryStore, RedisStore

if TYPE_CHECKING:
    from tools.registry import Caller, ToolResult, ToolSpec
    from tools.shop_db import ShopDB

log = logging.getLogger("switchboard.tools")

RETRY_ON: dict[str, type[Exception]] = {
    "sqlite_busy": sqlite3.OperationalError,
    "connection": ConnectionError,
    "timeout": TimeoutError,
}


class MalformedToolResult(Exception):
    """A tool returned something that is not a mapping of plain data."""


class ToolUnavailable(Exception):
    """The tool's circuit is open (or its half-open trial is running): the call was not made."""


NUMBER = (int, float)
RESULT_KEYS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "get_order": {"order_id": int, "status": str, "currency": str, "items": list, "total": NUMBER},
    "list_orders": {"orders": list, "count": int},
    "get_account": {"customer_id": str, "name": str, "email": str, "status": str, "addresses": list},
    "get_invoice": {"invoice_number": str, "order_id": int, "lines": list, "total": NUMBER, "currency": str},
    "get_refund_status": {"order_id": int, "refunds": list, "refunded_total": NUMBER, "refundable": NUMBER},
    "cancel_order": {"order_id": int, "status": str},
    "issue_refund": {"order_id": int, "refund_id": int, "amount": NUMBER, "currency": str},
    "update_shipping_address": {"order_id": int, "new_address": str},
    "update_account": {"field": str, "new_value": str},
    "delete_account": {"status": str, "erase_on": str},
    "set_newsletter_subscription": {"subscribed": bool},
    "create_ticket": {"ticket_id": int, "reference": str, "status": str},
}
"""What each tool's result must hold (key: type): the facts answers are built from. Checked on every call (not on a
dry run's preview), so a result with the wrong shape is caught here instead of turning into a wrong answer."""


def check_result(tool: str, value: Any, *, keys: Mapping[str, type | tuple[type, ...]] | None = None) -> dict[str, Any]:
    """`value` if it is a mapping of plain data holding `keys` (default: the tool's RESULT_KEYS) with their types,
    else MalformedToolResult naming the first bad part."""
    if not isinstance(value, Mapping):
        raise MalformedToolResult(f"malformed result from {tool}: expected a mapping, got {type(value).__name__}")
    problem = _plain(value, "result")
    for key, kind in (RESULT_KEYS.get(tool, {}) if keys is None else keys).items():
        if problem:
            break
        got = value.get(key)
        if key not in value:
            problem = f"result.{key} is missing"
        elif not isinstance(got, kind) or (isinstance(got, bool) and kind is not bool):
            problem = f"result.{key} is a {type(got).__name__}"
    if problem:
        raise MalformedToolResult(f"malformed result from {tool}: {problem}")
    return dict(value)


def _plain(value: Any, where: str) -> str | None:
    if value is None or isinstance(value, (bool, int, str, date)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} is {value}"
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has a non-text key {key!r}"
            problem = _plain(item, f"{where}.{key}")
            if problem:
                return problem
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            problem = _plain(item, f"{where}[{i}]")
            if problem:
                return problem
        return None
    return f"{where} is a {type(value).__name__}"


def _checked(spec: ToolSpec) -> ToolSpec:
    """`spec` with its function (and preconditions) checked on return, inside the caller's transaction."""

    def wrap(fn: Callable[..., Any], keys: Mapping[str, Any] | None) -> Callable[..., Any]:
        def checked(ctx: Any, args: Any) -> dict[str, Any]:
            return check_result(spec.name, fn(ctx, args), keys=keys)

        return checked

    check = wrap(spec.check, {}) if spec.check is not None else None
    return dataclasses.replace(spec, fn=wrap(spec.fn, None), check=check)


class ToolBoundary:
    """Breakers (one per tool and database) and retry policies; process-wide, see `boundary()`."""

    def __init__(
        self,
        policies: ErrorPolicies,
        store: BreakerStore | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.policies, self.store, self.clock, self.sleep = policies, store or MemoryStore(), clock, sleep
        self._breakers: dict[tuple[str, str], CircuitBreaker] = {}
        self._lock = threading.Lock()

    def breaker(self, tool: str, db_key: str) -> CircuitBreaker:
        with self._lock:
            if (tool, db_key) not in self._breakers:
                b = self.policies.tool(tool).breaker
                self._breakers[(tool, db_key)] = CircuitBreaker(
                    b.failure_threshold,
                    b.cooldown_s,
                    self.clock,
                    name=f"tool:{tool}@{db_key}",
                    store=self.store,
                    trial_timeout_s=b.trial_timeout_s or max(2 * b.cooldown_s, 60.0),
                )
            return self._breakers[(tool, db_key)]

    def states(self, db_key: str, tools: Collection[str] = ()) -> dict[str, str]:
        """Circuit state per tool of one database: the breakers made in this process, plus `tools` when given."""
        with self._lock:
            names = sorted({t for t, k in self._breakers if k == db_key} | set(tools))
        return {name: self.breaker(name, db_key).state for name in names}

    def call(
        self, db: ShopDB, spec: ToolSpec, run: Callable[[ToolSpec], ToolResult], caller: Caller, args: Any
    ) -> ToolResult:
        policy = self.policies.tool(spec.name)
        breaker = self.breaker(spec.name, db_key(db))
        checked = _checked(spec)
        trial_failed = False

        def attempt() -> ToolResult:
            nonlocal trial_failed
            permit = breaker.acquire()
            if permit is None:
                raise ToolUnavailable(f"{spec.name} is unavailable after repeated failures; try again later")
            try:
                result = run(checked)
            except Exception:
                breaker.release(permit, ok=False)
                trial_failed = permit.trial
                raise
            breaker.release(permit, ok=True)
            return result

        def give_up() -> bool:  # a failed trial gets no retry, nor does a call whose failure opened the circuit
            return trial_failed or breaker.state == "open"

        try:
            return _retrying(policy, self.sleep, give_up)(attempt)
        except ToolUnavailable as exc:
            return _failed(db, spec, caller, args, "circuit_open", str(exc), None)
        except MalformedToolResult as exc:
            return _failed(db, spec, caller, args, "malformed", str(exc), exc)
        except Exception as exc:  # noqa: BLE001 - the boundary: recorded and reported, never crashes the graph
            error = f"internal error in {spec.name}: {type(exc).__name__}"
            return _failed(db, spec, caller, args, "raised", error, exc)


def _retrying(policy: ToolPolicy, sleep: Callable[[float], Any], give_up: Callable[[], bool]) -> Retrying:
    kinds = tuple(RETRY_ON[k] for k in policy.retry_on)
    return Retrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait_exponential_jitter(
            multiplier=policy.initial_s, max=policy.max_s, exp_base=policy.factor, jitter=policy.jitter_s
        ),
        retry=retry_if_exception(lambda exc: isinstance(exc, kinds) and not give_up()),
        sleep=sleep,
        reraise=True,
    )


def _failed(
    db: ShopDB, spec: ToolSpec, caller: Caller, args: Any, kind: str, error: str, exc: Exception | None
) -> ToolResult:
    from tools.registry import ToolResult, _audit, _event

    if exc is not None:
        log.warning("tool %s failed (%s): %s", spec.name, kind, exc, exc_info=kind == "raised")
    else:
        log.warning("tool %s refused: %s", spec.name, error)
    _failures().labels(spec.name, kind).inc()
    if spec.is_write:
        try:
            with db.transaction() as conn:  # the tool's own transaction was rolled back; this row stays
                outcome = f"failed: {kind}: {error}"
                _audit(conn, _event(caller, spec.name, args, outcome, db.now()), args, outcome)
        except Exception as audit_exc:  # noqa: BLE001 - a broken database must not hide the tool's failure
            log.warning("could not audit the failure of %s: %s", spec.name, audit_exc)
    return ToolResult(ok=False, error=error)


_FAILURES: Any = None


def _failures() -> Any:
    global _FAILURES
    if _FAILURES is None:
        from prometheus_client import Counter

        from observability.metrics import REGISTRY

        _FAILURES = Counter(
            "switchboard_tool_failures_total",
            "Tool calls that failed at the boundary: raised, malformed (bad result data) or circuit_open (refused).",
            ["tool", "kind"],
            registry=REGISTRY,
        )
    return _FAILURES


def db_key(db: ShopDB) -> str:
    """How a shop database names its breakers: its resolved path, or its URL without the password on Postgres
    (an in-memory one, its object id)."""
    if getattr(db, "is_postgres", False):
        return str(db.where)
    path = getattr(db, "path", None)
    return f"memory-{id(db)}" if path is None or str(path) == ":memory:" else str(path.resolve())


# ------------------------------------------------------------------ the process-wide boundary

_current: ToolBoundary | None = None
_current_lock = threading.Lock()


def configure(settings: Settings, *, store: BreakerStore | None = None, **kwargs: Any) -> ToolBoundary:
    """Install the settings' tool policies (validated against the registry) and breaker store."""
    global _current
    from tools.shop import TOOLS

    policies = settings.error_policies()
    policies.check_tools(TOOLS)
    if store is None:
        store = RedisStore(settings.redis_url) if settings.redis_url else MemoryStore()
    with _current_lock:
        _current = ToolBoundary(policies, store, **kwargs)
        return _current


def boundary() -> ToolBoundary:
    """The installed boundary, or one from the shipped config with in-process state."""
    global _current
    with _current_lock:
        if _current is None:
            _current = ToolBoundary(Settings().error_policies())
        return _current


def reset() -> None:
    """Forget the installed boundary and its breakers (tests)."""
    global _current
    with _current_lock:
        _current = None


def guarded(
    db: ShopDB, spec: ToolSpec, run: Callable[[ToolSpec], ToolResult], *, caller: Caller, args: Any = None
) -> ToolResult:
    """Run `run(checked_spec)` through the tool's breaker, retries and result check (module docstring);
    `caller` and `args` are what a write's failure is audited with."""
    return boundary().call(db, spec, run, caller, args if args is not None else {})


def breaker_states(settings: Settings) -> dict[str, str] | None:
    """Each tool's circuit for the settings' shop database: this process's breakers, or every tool's state in the
    shared Redis store when one is configured; None when neither has anything to say (no tool ran here)."""
    from storage.sql import is_postgres, redact, sqlite_file
    from tools.shop import TOOLS

    target = settings.shop_target
    key = redact(str(target)) if is_postgres(target) else str(sqlite_file(target).resolve())
    current = boundary()
    if settings.redis_url and not current.store.shared:  # e.g. `app.py health`: no tool ran in this process
        current = ToolBoundary(settings.error_policies(), RedisStore(settings.redis_url))
    return current.states(key, TOOLS if current.store.shared else ()) or None
