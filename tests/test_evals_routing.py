"""Routing eval as a regression floor: every workflow's ticket follows its expected node path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evals.routing import graph_factory, load_suite, run_suite, strict_match

# Measured 2026-11-21 with the seeded shop classifier: trajectory 0.968, status 0.968 over 31 cases
# (evals/reports/routing.json); floors leave a margin of ~0.1 for classifier retraining noise.
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
    report = run_suite(graph_factory(base_services, tmp_path))
    failures = [(f["text"][:50], f["intent"], f["route"][-4:]) for f in report["failures"]]
    assert report["trajectory_accuracy"] >= TRAJECTORY_FLOOR, failures
    assert report["status_accuracy"] >= STATUS_FLOOR, failures
