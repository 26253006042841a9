"""`python app.py bench ticket`: the report has every figure the issue asks for, measured on the real graph
(no timing is asserted: the figures are the benchmark's to report, not the test's to judge)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings

KEYS = {"p50_ms", "p95_ms", "overhead_ratio", "peak_rss_mb", "tickets", "cold_start_s"}


@pytest.fixture
def env(seeded_settings: Settings, model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(seeded_settings.data_dir))
    monkeypatch.setenv("SWITCHBOARD_MODEL_CACHE", str(model_cache))
    for var in ("OPENAI_API_KEY", "SWITCHBOARD_LLM_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


def test_the_report_measures_the_graph_the_plain_calls_and_a_cold_start(env: None) -> None:
    from bench.ticket import GOALS, run

    report = run(rounds=2, cold_runs=1, limit=3)
    assert KEYS <= set(report) and set(report["goals_met"]) == set(GOALS)
    assert report["tickets"] == 6 and report["mix"] == 3
    assert report["p95_ms"] >= report["p50_ms"] > 0
    assert report["graph_ms_per_mix"] > 0 and report["plain_ms_per_mix"] > 0
    assert report["overhead_ratio"] == pytest.approx(report["graph_ms_per_mix"] / report["plain_ms_per_mix"], 0.01)
    assert report["node_calls_per_mix"] >= 3 * 5  # every ticket's nodes were recorded and replayed
    assert report["cold_start_s"] > 0 and len(report["cold_start_runs_s"]) == 1
    assert report["peak_rss_mb"] > 0


def test_the_cli_prints_one_json_object_and_writes_the_report(
    env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import bench.ticket as ticket

    real = ticket.run

    def small(rounds: int, **kw: Any) -> dict[str, Any]:
        return real(1, **{**kw, "cold_runs": 0, "limit": 2})

    monkeypatch.setattr(ticket, "run", small)
    from bench.cli import bench_main

    assert bench_main(["ticket", "--json", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)  # nothing but the report on stdout
    assert KEYS <= set(report) and report["cold_start_s"] is None
    assert json.loads((tmp_path / "ticket.json").read_text())["tickets"] == report["tickets"] == 2
    assert (tmp_path / "ticket.png").stat().st_size > 1000
    assert bench_main(["ticket", "--rounds", "0"]) == 2
