"""Warm per-ticket latency of the whole graph, offline (`python app.py bench latency --json`).

Services are loaded once (as in a server); each ticket is a fresh thread on the routing suite's texts, run
to its first stop (completion or interrupt). Reports median and p95 over several rounds, and the process's
peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any


def run(rounds: int = 5) -> dict[str, Any]:
    from langchain_core.messages import HumanMessage

    from config.settings import Settings
    from evals.routing import graph_factory, load_suite
    from graphs.context import Context
    from graphs.services import build_services

    settings = Settings.from_env()
    with tempfile.TemporaryDirectory(prefix="switchboard-latency-") as tmp:
        started = time.perf_counter()
        services = build_services(settings)
        load_s = time.perf_counter() - started
        graph = graph_factory(services, Path(tmp))()
        _, cases = load_suite()
        timings: list[float] = []
        for r in range(rounds + 1):
            for case in cases:
                config = {"configurable": {"thread_id": str(uuid.uuid4())}}
                t0 = time.perf_counter()
                graph.invoke(
                    {"messages": [HumanMessage(case["text"])]},
                    config,
                    context=Context(user_id=case.get("user", "demo")),
                )
                if r > 0:  # round 0 warms caches
                    timings.append((time.perf_counter() - t0) * 1000)
    timings.sort()
    _plot(timings, Path(__file__).with_name("reports") / "latency.png")
    return {
        "tickets": len(timings),
        "warm_p50_ms": round(statistics.median(timings), 1),
        "warm_p95_ms": round(timings[int(0.95 * (len(timings) - 1))], 1),
        "services_load_s": round(load_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _plot(timings: list[float], path: Path) -> None:
    """latency.png: the distribution of warm per-ticket times, with p50 and p95 marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p50, p95 = statistics.median(timings), timings[int(0.95 * (len(timings) - 1))]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.hist(timings, bins=40, color="#3867d6")
    for value, label, color in ((p50, "p50", "#20a39e"), (p95, "p95", "#d64545")):
        ax.axvline(value, color=color, linestyle="--", label=f"{label} {value:.1f} ms")
    ax.set(xlabel="ms per ticket (warm)", ylabel="tickets", title=f"Graph latency, {len(timings)} tickets")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="app.py bench latency")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = run(args.rounds)
    print(json.dumps(report) if args.json else "\n".join(f"{k:18} {v}" for k, v in report.items()))
    out = Path(__file__).with_name("reports")
    out.mkdir(exist_ok=True)
    (out / "latency.json").write_text(json.dumps(report, indent=2))
    return 0
