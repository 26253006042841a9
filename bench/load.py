"""Load benchmark: N concurrent clients send offline tickets to one or more served instances for S seconds.

    python app.py bench load --url http://127.0.0.1:P1[,http://127.0.0.1:P2] --key sb_... --clients 8 --seconds 30

Each client (langgraph-sdk, the API key in `Authorization: Bearer`) loops: a new thread, one ticket from a fixed mix of
read-only questions (order status, delivery, payment, returns: no approval, no model), streamed as `values`; the
ticket is done when the run has ended and the thread's state holds an answer. `--stream-mode updates` streams each
node's writes instead and reads the answer from the thread's state; `--durability sync|async|exit` asks each run for
that checkpoint durability instead of the server's (bench/reports/load.md: the cost is per event and per checkpoint).
Clients are spread round-robin over the URLs, so with two instances half the clients talk to each (with a
Redis-backed Aegra, the run itself goes to whichever instance's worker is free).

Under load these servers sometimes end an SSE stream without a single event; the client then falls back to joining
the run and reading the thread state (counted in `empty_streams`, not an error). An error is a request that failed,
a run that did not succeed, or a finished run without an answer.

Reports `tickets`, `tickets_per_s` (finished tickets / measured seconds), `p50_ms`, `p95_ms` (ticket latency:
thread creation to answer), `errors` (with the first messages), `empty_streams`, per-URL counts. `--warmup` seconds
of the same load run first and are not measured (an instance's first ticket builds its services). Only loopback URLs
are accepted: the load is bounded by `--seconds` and `--clients` and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

TICKETS = (
    "Where is my order 1005?",
    "How long does delivery take?",
    "What payment methods do you accept?",
    "Where is my order 1006?",
    "Can I return an item after 30 days?",
    "What is the status of order 1004?",
)
DONE = {"success"}


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    empty_streams: int = 0
    by_url: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)


def loopback_urls(text: str) -> list[str]:
    urls = [u.strip().rstrip("/") for u in text.split(",") if u.strip()]
    if not urls:
        raise ValueError("--url needs at least one http://127.0.0.1:PORT")
    for url in urls:
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            loop = host == "localhost" or ip_address(host).is_loopback
        except ValueError:
            loop = False
        if parts.scheme not in ("http", "https") or not loop or parts.port is None:
            raise ValueError(f"{url!r}: the load benchmark only targets loopback servers (http://127.0.0.1:PORT)")
    return urls


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


async def one_ticket(
    client: Any,
    text: str,
    *,
    timeout_s: float,
    mode: str = "stream",
    stream_mode: str = "values",
    durability: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Run one ticket on a new thread; returns (thread values, whether the stream came back empty).

    `durability` None leaves the server's checkpoint durability (aegra.json: sync) in force; a mode asks for that one.

    `stream_mode` "values" streams the whole state after every step (the answer arrives in the last event);
    "updates" streams only each node's writes, and the answer is read from the thread's state once the run ended."""
    thread = (await client.threads.create())["thread_id"]
    run_id, last, events = None, None, 0
    extra = {"durability": durability} if durability else {}
    if mode == "wait":  # no stream: the run's final state comes back in one response
        async with asyncio.timeout(timeout_s):
            await client.runs.wait(
                thread, "supervisor", input={"messages": [{"role": "user", "content": text}]}, **extra
            )
            return (await client.threads.get_state(thread))["values"], False
    async with asyncio.timeout(timeout_s):
        async for part in client.runs.stream(
            thread,
            "supervisor",
            input={"messages": [{"role": "user", "content": text}]},
            stream_mode=stream_mode,
            **extra,
        ):
            events += 1
            if part.event == "metadata" and isinstance(part.data, dict):
                run_id = part.data.get("run_id") or run_id
            elif part.event == "values" and isinstance(part.data, dict):
                last = part.data
            elif part.event == "error":
                raise RuntimeError(f"run error: {str(part.data)[:200]}")
        # Nothing but metadata (or nothing at all) came back: the stream was cut before the run's own events.
        empty = events <= int(run_id is not None) if stream_mode != "values" else (events == 0 or last is None)
        if empty or not (last or {}).get("answer"):
            # An empty (or cut) stream, or a mode that does not carry the state: wait for the run itself, then read
            # the thread's state.
            if run_id is None:
                runs = await client.runs.list(thread, limit=1)
                run_id = runs[0]["run_id"] if runs else None
            if run_id is None:
                raise RuntimeError("the stream was empty and the thread has no run")
            if empty:
                await client.runs.join(thread, run_id)
            last = (await client.threads.get_state(thread))["values"]
        if run_id is not None:
            status = (await client.runs.get(thread, run_id))["status"]
            if status in ("pending", "running"):  # the stream was cut before the run ended
                await client.runs.join(thread, run_id)
                status = (await client.runs.get(thread, run_id))["status"]
                last = (await client.threads.get_state(thread))["values"]
            if status not in DONE:
                raise RuntimeError(f"run ended {status}")
    return last or {}, empty


async def client_loop(
    n: int,
    url: str,
    key: str,
    stop_at: float,
    tally: Tally,
    timeout_s: float,
    mode: str = "stream",
    stream_mode: str = "values",
    durability: str | None = None,
) -> None:
    from langgraph_sdk import get_client

    client = get_client(url=url, api_key=None, headers={"Authorization": f"Bearer {key}"}, timeout=timeout_s)
    i = n
    while time.monotonic() < stop_at:
        text = TICKETS[i % len(TICKETS)]
        i += 1
        started = time.perf_counter()
        try:
            values, empty = await one_ticket(
                client, text, timeout_s=timeout_s, mode=mode, stream_mode=stream_mode, durability=durability
            )
            if not values.get("answer"):
                raise RuntimeError(f"no answer (status {values.get('status')})")
        except Exception as exc:  # noqa: BLE001 - every failure is counted and reported, the load goes on
            tally.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            continue
        tally.latencies_ms.append((time.perf_counter() - started) * 1000)
        tally.empty_streams += int(empty)
        tally.by_url[url] = tally.by_url.get(url, 0) + 1
        status = str(values.get("status"))
        tally.statuses[status] = tally.statuses.get(status, 0) + 1


async def run_load(
    urls: list[str],
    key: str,
    clients: int,
    seconds: float,
    timeout_s: float = 120,
    mode: str = "stream",
    warmup_s: float = 5,
    stream_mode: str = "values",
    durability: str | None = None,
) -> dict[str, Any]:
    # Warm-up, not measured: every client's loop for `warmup_s` (an instance's first ticket builds its services, and
    # with a shared job queue any instance may run any ticket, so one ticket per URL would not warm them all).
    warm = Tally()
    warm_until = time.monotonic() + warmup_s
    await asyncio.gather(
        *(
            client_loop(n, urls[n % len(urls)], key, warm_until, warm, timeout_s, mode, stream_mode, durability)
            for n in range(clients)
        )
    )
    tally = Tally()
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    stop_at = started + seconds
    await asyncio.gather(
        *(
            client_loop(n, urls[n % len(urls)], key, stop_at, tally, timeout_s, mode, stream_mode, durability)
            for n in range(clients)
        )
    )
    elapsed = time.monotonic() - started  # includes the tickets in flight at the deadline
    done = len(tally.latencies_ms)
    return {
        "urls": urls,
        "instances": len(urls),
        "mode": mode,
        "stream_mode": stream_mode if mode == "stream" else None,
        "durability": durability or "server default",
        "clients": clients,
        "seconds": seconds,
        "elapsed_s": round(elapsed, 2),
        "tickets": done,
        "tickets_per_s": round(done / elapsed, 2) if elapsed else 0.0,
        "p50_ms": round(percentile(tally.latencies_ms, 50), 1),
        "p95_ms": round(percentile(tally.latencies_ms, 95), 1),
        "mean_ms": round(statistics.fmean(tally.latencies_ms), 1) if done else 0.0,
        "errors": len(tally.errors),
        "error_samples": sorted(set(tally.errors))[:5],
        "empty_streams": tally.empty_streams,
        "tickets_by_url": tally.by_url,
        "ticket_statuses": tally.statuses,
        "warmup_s": warmup_s,
        "warmup_tickets": len(warm.latencies_ms),
        "warmup_errors": warm.errors[:5],
        "cpus": os.cpu_count(),
        # The machine's 1-minute load average around the run: other work on the same cores shows up here.
        "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="app.py bench load", description="Concurrent ticket load on served instances.")
    p.add_argument("--url", required=True, help="instance URL(s), comma-separated (loopback only)")
    p.add_argument("--key", default=os.environ.get("SWITCHBOARD_API_KEY"), help="API key (or SWITCHBOARD_API_KEY)")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--timeout", type=float, default=120, help="per-ticket timeout (s)")
    p.add_argument("--warmup", type=float, default=5, help="seconds of unmeasured load first (default 5)")
    p.add_argument("--mode", choices=("stream", "wait"), default="stream", help="stream values (default) or wait")
    p.add_argument(
        "--stream-mode",
        choices=("values", "updates"),
        default="values",
        help="what the stream carries: the whole state each step (values, default) or each node's writes"
        " (updates; the answer is then read from the thread's state)",
    )
    p.add_argument(
        "--durability",
        choices=("sync", "async", "exit"),
        help="checkpoint durability asked for each run (default: the server's, aegra.json sync)",
    )
    p.add_argument("--out", type=Path, help="also write the report here (e.g. bench/reports/load-2.json)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    try:
        urls = loopback_urls(a.url)
        if not a.key or not a.key.startswith("sb_"):
            raise ValueError("--key: an API key from `python app.py apikey create --user demo --json` is needed")
        if not 1 <= a.clients <= 256 or not 1 <= a.seconds <= 600:
            raise ValueError("--clients must be 1-256 and --seconds 1-600")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = asyncio.run(
        run_load(urls, a.key, a.clients, a.seconds, a.timeout, a.mode, a.warmup, a.stream_mode, a.durability)
    )
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(report, indent=2) + "\n")
    if a.json:
        print(json.dumps(report))
    else:
        for k in ("instances", "clients", "tickets", "tickets_per_s", "p50_ms", "p95_ms", "errors", "empty_streams"):
            print(f"{k}: {report[k]}")
    return 0 if report["errors"] == 0 and not report["warmup_errors"] else 1
