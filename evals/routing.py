"""Routing evals of the whole graph: trajectory match on the node path, plus intent and status.

Every case runs end to end on a fresh seeded shop with the real shop classifier. The eval answers the
graph's interrupts the standard way (approve, accept the review, a human replies to an escalation) and
compares the full node path with the case's expected shape, strictly (same nodes, same order) — the
same check as agentevals' `graph_trajectory_strict_match`, without its LangSmith dependencies.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

SUITE = Path(__file__).with_name("routing_suite.yaml")
REPORTS = Path(__file__).with_name("reports")
STANDARD_ANSWERS = {
    "request_approval": {"type": "accept"},
    "review_gate": {"type": "accept"},
    "escalate": {"type": "response", "args": "A colleague replied to this ticket."},
}
FIRST_STATUS = {"request_approval": "awaiting_approval", "review_gate": "awaiting_review", "escalate": "escalated"}


def load_suite(path: Path = SUITE) -> tuple[dict[str, list[str]], list[dict[str, Any]]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    shapes, cases = data["shapes"], data["cases"]
    for case in cases:
        if case["shape"] not in shapes:
            raise ValueError(f"case {case['text']!r} names unknown shape {case['shape']!r}")
    return shapes, cases


def strict_match(actual: list[str], expected: list[str]) -> bool:
    """Trajectory strict match: the same nodes in the same order."""
    return list(actual) == list(expected)


def run_case(graph: Any, case: dict[str, Any], shapes: dict[str, list[str]]) -> dict[str, Any]:
    from langchain_core.messages import HumanMessage
    from langgraph.types import Command

    from graphs.context import Context

    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    ctx = Context(user_id=case.get("user", "demo"), channel="eval")
    started = time.perf_counter()
    graph.invoke({"messages": [HumanMessage(case["text"])]}, config, context=ctx)
    first = None
    for _ in range(4):
        snap = graph.get_state(config)
        waiting = [t.name for t in snap.tasks if t.interrupts]
        if not waiting:
            break
        first = first or FIRST_STATUS[waiting[0]]
        reviewer = ctx.model_copy(update={"role": "agent", "approver_id": "eval"})  # only reviewers answer
        graph.invoke(Command(resume=STANDARD_ANSWERS[waiting[0]]), config, context=reviewer)
    values = graph.get_state(config).values
    first = first or values.get("status")
    route = list(values.get("route", []))
    return {
        "text": case["text"],
        "expected_intent": case.get("intent"),
        "intent": values.get("intent"),
        "confidence": values.get("confidence"),
        "decision": values.get("decision"),
        "route": route,
        "trajectory_match": strict_match(route, shapes[case["shape"]]),
        "intent_match": case.get("intent") is None or values.get("intent") == case["intent"],
        "first_status": first,
        "status_match": first == case["first"],
        "ms": round((time.perf_counter() - started) * 1000, 1),
    }


def run_suite(graph_factory: Any, suite: Path = SUITE, *, progress: bool = False) -> dict[str, Any]:
    """Run every case on a fresh graph from `graph_factory()`; return scores and per-case rows. `progress` shows a
    bar on stderr (observability.progress)."""
    from observability.progress import bar

    shapes, cases = load_suite(suite)
    rows = []
    with bar(len(cases), "routing", enabled=progress) as advance:
        for case in cases:
            rows.append({**run_case(graph_factory(), case, shapes), "shape": case["shape"]})
            advance()
    n = len(rows)
    return {
        "suite": str(suite.name),
        "n_cases": n,
        "trajectory_accuracy": round(sum(r["trajectory_match"] for r in rows) / n, 4),
        "intent_accuracy": round(sum(r["intent_match"] for r in rows) / n, 4),
        "status_accuracy": round(sum(r["status_match"] for r in rows) / n, 4),
        "workflows_covered": len({c.get("intent") for c in cases if c.get("intent")}),
        "p50_ms": sorted(r["ms"] for r in rows)[n // 2],
        "failures": [r for r in rows if not (r["trajectory_match"] and r["status_match"] and r["intent_match"])],
        "rows": rows,
    }


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """routing.png: trajectory, intent and first-status accuracy per route shape (cases per shape under it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = sorted({r["shape"] for r in rows})
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.27
    for i, (key, label) in enumerate((("trajectory_match", "trajectory"), ("intent_match", "intent"),
                                      ("status_match", "first status"))):
        values = [sum(r[key] for r in rows if r["shape"] == s) / sum(1 for r in rows if r["shape"] == s)
                  for s in shapes]
        bars = ax.bar([j + (i - 1) * width for j in range(len(shapes))], values, width, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize=6, rotation=90, padding=2)
    counts = {s: sum(1 for r in rows if r["shape"] == s) for s in shapes}
    ax.set_xticks(range(len(shapes)), [f"{s}\n(n={counts[s]})" for s in shapes], fontsize=8)
    ax.set(ylim=(0, 1.3), ylabel="accuracy", title=f"Routing suite by route shape ({len(rows)} cases)")
    ax.legend(loc="upper center", ncol=3, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def graph_factory(services: Any, root: Path) -> Any:
    """A factory of graphs that each get a fresh seeded shop, working memory and decision log under `root`,
    sharing the (read-only) knowledge base and classifier of `services`."""
    import dataclasses
    import itertools

    from langgraph.checkpoint.memory import InMemorySaver

    from graphs.supervisor import build_supervisor
    from memory.working import WorkingMemory
    from observability.decisions import SqlDecisionStore
    from tools.shop import ShopDB

    counter = itertools.count()

    def factory() -> Any:
        run_dir = root / f"case-{next(counter)}"
        run_dir.mkdir(parents=True)
        shop = ShopDB(run_dir / "shop.sqlite")
        shop.seed()
        svc = dataclasses.replace(
            services,
            shop=shop,
            working=WorkingMemory(run_dir / "working.sqlite"),
            decisions=SqlDecisionStore(run_dir / "decisions.sqlite"),
            alerts=None,
        )
        return build_supervisor(svc).compile(checkpointer=InMemorySaver())

    return factory


def eval_main(argv: list[str]) -> int:
    """`python app.py eval routing [--json] [--out DIR]` on a throwaway copy of the demo data."""
    parser = argparse.ArgumentParser(prog="app.py eval routing")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", type=Path, default=REPORTS)
    args = parser.parse_args(argv)

    from config.settings import Settings
    from graphs.services import build_services, seed

    base = Settings.from_env()
    with tempfile.TemporaryDirectory(prefix="switchboard-routing-") as tmp:
        settings = base.model_copy(update={"data_dir": Path(tmp), "model_cache_dir": base.embedder_cache})
        seed(settings)
        factory = graph_factory(build_services(settings, auto_seed=False), Path(tmp) / "runs")
        from observability.progress import enabled

        report = run_suite(factory, progress=enabled(json_out=args.json))
        shutil.rmtree(tmp, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = report.pop("rows")
    (args.out / "routing.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    plot(rows, args.out / "routing.png")
    if args.json:
        print(
            json.dumps({k: v for k, v in report.items() if k != "failures"} | {"n_failures": len(report["failures"])})
        )
    else:
        print(
            f"routing: trajectory {report['trajectory_accuracy']:.1%}, intent {report['intent_accuracy']:.1%}, "
            f"status {report['status_accuracy']:.1%} over {report['n_cases']} cases"
        )
        for f in report["failures"]:
            print(f"  - {f['text'][:60]!r}: intent {f['intent']} ({f['confidence']}), first {f['first_status']}")
    return 0
