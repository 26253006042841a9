"""Chaos, part 2: tickets served while the model endpoints fail 30 % of the time (`bench.chaos` runs it).

The real `ChatOpenAI` client (built by `llm.build_llm`, so with the chain's retries, breakers and routes) talks to
`bench.fault_server` on loopback, which answers `FAULTS`: 5xx, 429 with a short and a long Retry-After, hangs past
the client's timeout, malformed JSON, truncated bodies and streams, slow replies. One scripted outage of the primary
(`OUTAGE`, started with the first ticket after `OUTAGE_AT` that finds its circuit closed) makes sure its breaker
opens, and recovers on a slow trial while other tickets keep arriving. Tickets run `CONCURRENCY` at a time through
`graphs.tickets.ask` (lease, durability "sync"), so callers really do meet a half-open circuit together. Every
model call falls back primary -> secondary -> offline tier, and a ticket the offline tier cannot answer well goes to
a human.

Measured, not asserted:

- `fault_rate`: share of the model requests the server answered with a fault (exactly 30 of every 100 unscripted
  requests, shuffled, plus the outage);
- `ended_ok_ratio`: share of tickets that ended in an answer (`completed`) or with a human (`escalated`,
  `awaiting_review`), with no exception and nothing left to run;
- `breaker_opened`: closed -> open transitions over all endpoints (`breaker_reopened`: failed trials);
- `breaker_trials_in_half_open`: the most model requests the fault server received for one endpoint while its
  breaker was half-open (from the trial's permit to its result); `half_open_episodes` how many there were and
  `refused_in_half_open` how many callers were turned away meanwhile (proof that the one trial had company);
- `p95_ms`: 95th percentile of a ticket's wall time (every retry, timeout and fallback included), against
  `ticket_budget_s`; measured after one offline warm-up run of each ticket text (not counted), since a fresh
  process loads its classifier and embedder on first use.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from config.settings import ErrorPolicies, Settings
from llm.breaker import Limits, MemoryStore, Permit

FAULT_RATE = 0.30
FAULTS = {  # adds up to FAULT_RATE
    "500": 0.06,
    "503": 0.03,
    "429:0.2": 0.04,  # waited out (max_retry_after_s 0.5)
    "429:30": 0.02,  # too long to wait: the next tier answers
    "hang": 0.04,  # past the client's 1 s timeout
    "malformed": 0.04,
    "truncate": 0.04,
    "slow:0.3": 0.03,
}
OUTAGE = ["500", "500", "500", "slow:0.5"]
"""The primary's scripted outage, started while its circuit is closed: three failures open its breaker, and the
trial after the cool-down answers slowly (callers meanwhile are refused) and closes it."""
OUTAGE_FALLBACK = ["ok"]
"""What the secondary answers first once the outage starts: the tickets the primary fails fall back to it, and one
sure answer there keeps `answered_by.secondary` from depending on where the shuffled deck stands (with few tickets
its draws during the outage could all be faults)."""
OUTAGE_AT = 0.2  # after this share of the tickets
CONCURRENCY = 4
MODELS = {"primary": "chaos-primary", "secondary": "chaos-secondary", "strong": "chaos-strong"}
POLICIES: dict[str, Any] = {
    "defaults": {
        "model": {
            "timeout_s": 1.0,
            "retry": {"attempts": 2, "initial_s": 0.05, "factor": 2, "max_s": 0.2, "jitter_s": 0.05,
                      "max_retry_after_s": 0.5},
            "breaker": {"failure_threshold": 3, "cooldown_s": 0.5},
        }
    },
    "models": {"primary": {}, "secondary": {"stream": True}, "strong": {"model": MODELS["strong"]}},
}
"""Error policies for the bench: the shipped routes and complexity rules, shorter timeouts and cool-downs."""
TICKETS = [
    ("demo", "How long does delivery take?"),
    ("demo", "Where is my order 1006?"),
    ("demo", "My payment for order 1007 failed with error PAY-402, what can I do?"),  # technical: strong tier
    ("demo", "How long does delivery take? And do you ship to Norway?"),  # multi-part: strong tier
    ("alice", "How many days do I have to return something?"),
    ("demo", "Can I get the invoice for order 1004?"),
    ("bob", "Where are my orders 1014 and 1015?"),  # several orders: strong tier
    ("demo", "my thing has not come and I want it sorted"),  # low confidence: the cascade (classify task)
]


class ObservedStore(MemoryStore):
    """In-process breaker state that also records, with `time.monotonic()`, every transition and refusal."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[float, str, str]] = []  # (time, breaker name, event)
        self._observe = threading.Lock()

    def acquire(self, name: str, now: float, limits: Limits) -> Permit | None:
        with self._observe:
            before = super().snapshot(name, now, limits)
            permit = super().acquire(name, now, limits)
            if permit is None and before.state == "half_open":
                self.events.append((time.monotonic(), name, "refused_in_half_open"))
            elif permit is not None and permit.trial:
                self.events.append((time.monotonic(), name, "trial_start"))
            return permit

    def release(self, name: str, permit: Permit, ok: bool, now: float, limits: Limits) -> None:
        with self._observe:
            before = super().snapshot(name, now, limits).state
            super().release(name, permit, ok, now, limits)
            after = super().snapshot(name, now, limits).state
            t = time.monotonic()
            if permit.trial and before == "half_open":
                self.events.append((t, name, "trial_ok" if ok else "trial_failed"))
            elif before == "closed" and after == "open":
                self.events.append((t, name, "opened"))


def run_model_faults(
    services: Any, settings: Settings, work: Path, *, tickets: int = 200, seed: int = 0
) -> dict[str, Any]:
    """Serve `tickets` tickets through a fault-injecting model chain; see the module docstring."""
    from bench.fault_server import FaultServer
    from graphs import tickets as service
    from graphs.supervisor import build_supervisor
    from llm import build_llm
    from memory.checkpointer import open_checkpointer

    policies = ErrorPolicies.model_validate({**POLICIES, "routes": settings.error_policies().routes,
                                             "complexity": settings.error_policies().complexity.model_dump()})
    store = ObservedStore()
    budget_s = services.policy.limits.ticket_budget_s
    with FaultServer(rates=FAULTS, seed=seed, exact=True) as server:
        llm_settings = settings.model_copy(update={
            "llm_base_url": server.url, "llm_model": MODELS["primary"], "llm_fallback_model": MODELS["secondary"],
            "openai_api_key": "chaos", "checkpointer_url": str(work / "checkpoints-models.sqlite")})
        llm = build_llm(llm_settings, services.policy.llm, policies=policies, store=store)
        assert llm is not None
        svc = dataclasses.replace(services, llm=llm, settings=llm_settings)
        latencies: list[float] = []
        statuses: Counter[str] = Counter()
        flags: Counter[str] = Counter()
        crashes: list[str] = []
        lock = threading.Lock()
        outage_at = max(1, int(tickets * OUTAGE_AT))
        with open_checkpointer(llm_settings.checkpoint_target) as saver:
            board = service.Switchboard(build_supervisor(svc).compile(checkpointer=saver), svc)
            offline = service.Switchboard(build_supervisor(services).compile(checkpointer=saver), services)
            warm = time.perf_counter()
            for user, text in TICKETS:  # warm-up, offline and not counted: a fresh process loads its models lazily
                service.ask(llm_settings, text, user=user, thread=None, board=offline)
            started = time.perf_counter()
            warmup_s = started - warm

            outage = {"due": outage_at}

            def one(n: int) -> None:
                with lock:
                    start_outage = n >= outage["due"] > -1 and llm.breakers["primary"].state == "closed"
                    if start_outage:
                        outage["due"] = -1  # once
                if start_outage:
                    server.script(MODELS["secondary"], OUTAGE_FALLBACK)
                    server.script(MODELS["primary"], OUTAGE)
                user, text = TICKETS[n % len(TICKETS)]
                t0 = time.perf_counter()
                try:
                    result = service.ask(llm_settings, text, user=user, thread=None, board=board)
                except Exception as exc:  # noqa: BLE001 - a crash is what this bench counts
                    with lock:
                        crashes.append(f"{n}: {type(exc).__name__}: {exc}"[:200])
                    return
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    latencies.append(ms)
                    statuses[result["status"]] += 1
                    flags.update(f for f in result["flags"] if f.startswith("llm_"))

            with concurrent.futures.ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="ticket") as pool:
                list(pool.map(one, range(tickets)))
        wall_s = time.perf_counter() - started
        arrivals = list(server.arrivals)
    report = _report(tickets, latencies, statuses, flags, crashes, arrivals, store.events, budget_s, wall_s)
    return {**report, "warmup_s": round(warmup_s, 1)}


def _report(
    tickets: int,
    latencies: list[float],
    statuses: Counter[str],
    flags: Counter[str],
    crashes: list[str],
    arrivals: list[tuple[float, str, str]],
    events: list[tuple[float, str, str]],
    budget_s: float,
    wall_s: float,
) -> dict[str, Any]:
    faulty = [a for a in arrivals if a[2] != "ok"]
    ok_statuses = ("completed", "escalated", "awaiting_review")
    episodes = half_open_episodes(events, arrivals)
    lat = sorted(latencies)
    p95 = lat[int(0.95 * (len(lat) - 1))] if lat else None
    by_model = Counter(m for _, m, f in arrivals if f == "ok" or f.startswith("slow"))
    return {
        "tickets": tickets,
        "fault_rate": round(len(faulty) / max(1, len(arrivals)), 3),
        "fault_rate_configured": round(sum(FAULTS.values()), 2),
        "model_requests": len(arrivals),
        "faults": dict(Counter(f for _, _, f in faulty)),
        "ended_ok_ratio": round(sum(statuses[s] for s in ok_statuses) / tickets, 3),
        "statuses": dict(statuses),
        "crashes": crashes,
        "answered_by": {**{k: by_model[v] for k, v in MODELS.items()}, "offline_tier": flags["llm_fallback_offline"]},
        "breaker_opened": sum(e == "opened" for _, _, e in events),
        "breaker_reopened": sum(e == "trial_failed" for _, _, e in events),
        "breaker_recovered": sum(e == "trial_ok" for _, _, e in events),
        "half_open_episodes": len(episodes),
        "breaker_trials_in_half_open": max((n for _, n in episodes), default=0),
        "trials_per_episode": dict(Counter(n for _, n in episodes)),
        "refused_in_half_open": sum(e == "refused_in_half_open" for _, _, e in events),
        "p95_ms": round(p95, 1) if p95 is not None else None,
        "p50_ms": round(lat[len(lat) // 2], 1) if lat else None,
        "max_ms": round(lat[-1], 1) if lat else None,
        "ticket_budget_s": budget_s,
        "p95_within_budget": p95 is not None and p95 < budget_s * 1000,
        "concurrency": CONCURRENCY,
        "wall_s": round(wall_s, 1),
    }


def half_open_episodes(
    events: list[tuple[float, str, str]], arrivals: list[tuple[float, str, str]]
) -> list[tuple[str, int]]:
    """(endpoint model id, requests the server received for it) per half-open episode: trial start to result."""
    out: list[tuple[str, int]] = []
    open_trials: dict[str, float] = {}
    for t, name, event in sorted(events):
        model = name.split("@", 1)[0]
        if event == "trial_start":
            open_trials[model] = t
        elif event in ("trial_ok", "trial_failed") and model in open_trials:
            start = open_trials.pop(model)
            out.append((model, sum(1 for at, m, _ in arrivals if m == model and start <= at <= t)))
    return out
