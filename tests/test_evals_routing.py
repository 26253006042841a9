"""Routing eval as a regression floor: every workflow's ticket follows its expected node path."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from evals.routing import load_suite, run_suite, strict_match
from graphs.supervisor import build_supervisor

# Measured 2026-11-21 with the seeded shop classifier: see evals/reports/routing.json.
TRAJECTORY_FLOOR = 0.85
STATUS_FLOOR = 0.85


def test_suite_covers_every_workflow(base_services: Any) -> None:
    _, cases = load_suite()
    covered = {c["intent"] for c in cases if c.get("intent")}
    assert covered == set(base_services.workflows)


def test_strict_match_is_strict() -> None:
    assert strict_match(["a", "b"], ["a", "b"])
    assert not strict_match(["b", "a"], ["a", "b"])
    assert not strict_match(["a"], ["a", "b"])


def test_routing_suite_meets_its_floor(base_services: Any, tmp_path: Path) -> None:
    from memory.working import WorkingMemory
    from tools.shop import ShopDB

    counter = iter(range(1000))

    def factory() -> Any:
        run_dir = tmp_path / str(next(counter))
        run_dir.mkdir()
        shop = ShopDB(run_dir / "shop.sqlite")
        shop.seed()
        svc = dataclasses.replace(base_services, shop=shop, working=WorkingMemory(run_dir / "w.sqlite"),
                                  audit_path=run_dir / "audit.jsonl")
        return build_supervisor(svc).compile(checkpointer=InMemorySaver())

    report = run_suite(factory)
    failures = [(f["text"][:50], f["intent"], f["route"][-4:]) for f in report["failures"]]
    assert report["trajectory_accuracy"] >= TRAJECTORY_FLOOR, failures
    assert report["status_accuracy"] >= STATUS_FLOOR, failures
