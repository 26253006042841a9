"""A real browser on the served dashboard: `langgraph dev` runs some tickets, headless Chromium loads /dashboard,
the chart script's DOM attributes show that every chart drew data, and a screenshot is saved under evals/reports/.

Also checks the routes the issue names at the top level of the served API (/dashboard, /health/semantic, ...)
next to their /switchboard/ aliases. Chromium is the Debian package; when it is missing the test setup installs
it with apt-get (only as root, with apt available), otherwise the test is skipped with the reason. Chromium runs
with --headless --no-sandbox --disable-gpu --disable-background-networking and a throwaway profile, so it fetches
nothing but the loopback page.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from tests.devserver import dev_server, langgraph_cli

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "evals" / "reports" / "dashboard.png"
pytestmark = pytest.mark.server


def chromium() -> str:
    """The chromium binary; installed from the Debian packages when missing (root + apt), else skip."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and cannot be installed here (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", "chromium", "chromium-driver"],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )
    found = shutil.which("chromium")
    if not found:
        pytest.skip(f"apt-get install chromium failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    return found


def browse(binary: str, url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
         f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--window-size=1400,1500", *extra, url],
        capture_output=True, text=True, timeout=120, check=False, env={**os.environ, "HOME": str(profile)},
    )


@pytest.fixture(scope="module")
def server(seeded_settings: Settings, model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    langgraph_cli()
    data = tmp_path_factory.mktemp("dashboard") / "data"
    shutil.copytree(seeded_settings.data_dir, data)
    from auth.keys import KeyStore

    key, _ = KeyStore(data / "auth.sqlite").create("demo", "default", "admin")
    logs = tmp_path_factory.mktemp("dashboard-logs") / "server.log"
    with dev_server(data, model_cache, logs) as url, pytest.MonkeyPatch.context() as mp:
        mp.setenv("LANGGRAPH_API_KEY", key)
        yield url


def run_tickets(url: str) -> list[dict]:
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=url)
    outputs = []
    for text in (
        "Where is my order 1006?",
        "How long does standard delivery take?",
        "I want a refund for order 1004, the monitor is faulty.",  # waits for approval: a human is needed
        "   ",  # rejected
    ):
        thread = client.threads.create()
        outputs.append(client.runs.wait(
            thread["thread_id"], "supervisor", input={"messages": [{"role": "user", "content": text}]},
            context={"user_id": "demo"},
        ))
    return outputs


def test_the_named_routes_are_served_at_the_top_level(server: str) -> None:
    import httpx

    outputs = run_tickets(server)
    assert all(o["trace_id"] and o["cost_usd"] == 0.0 for o in outputs)
    assert outputs[-1]["status"] == "rejected"
    for path in ("/health/live", "/health", "/health/semantic", "/dashboard", "/dashboard/data.json"):
        for prefix in ("", "/switchboard"):
            resp = httpx.get(f"{server}{prefix}{path}", timeout=60)
            assert resp.status_code == 200, (prefix + path, resp.text[:300])
    semantic = httpx.get(f"{server}/health/semantic", timeout=60).json()
    assert semantic["status"] == "ok" and semantic["cases"][0]["route"] == ["retrieve_knowledge"]
    om = httpx.get(f"{server}/switchboard/metrics", headers={"Accept": "application/openmetrics-text"}, timeout=10)
    assert any(o["trace_id"] in om.text for o in outputs)  # exemplars carry the tickets' trace ids
    data = httpx.get(f"{server}/dashboard/data.json", timeout=10).json()
    assert data["tickets"]["started"] >= 4 and data["tickets"]["with_human"] >= 1
    assert data["tickets"]["by_decision"].get("none", 0) >= 1  # the rejected input, not an escalation


def test_headless_chromium_draws_every_chart_with_data(server: str, tmp_path: Path) -> None:
    binary = chromium()
    import httpx

    if httpx.get(f"{server}/dashboard/data.json", timeout=10).json()["tickets"]["started"] < 4:
        run_tickets(server)
    dom = browse(binary, f"{server}/dashboard", tmp_path / "profile", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    body = re.search(r"<body([^>]*)>", html)
    assert body and 'data-loaded="true"' in body.group(1), html[:2000]
    assert int(re.search(r'data-tickets="(\d+)"', body.group(1)).group(1)) >= 4
    points = dict(re.findall(r'data-chart="(\w+)" data-points="(\d+)"', html))
    assert set(points) == {"executions", "load", "latency", "errors", "cost", "human", "confidence"}
    assert all(int(n) > 0 for n in points.values()), points
    assert "cannot load data" not in html
    assert re.search(r'data-kpi="Human intervention".*?class="value">(\d+\.\d) %', html)

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shot = browse(binary, f"{server}/dashboard", tmp_path / "profile", "--hide-scrollbars",
                  f"--screenshot={SCREENSHOT}")
    assert shot.returncode == 0 and SCREENSHOT.stat().st_size > 10_000, shot.stderr[-2000:]
