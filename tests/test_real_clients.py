"""The real Agent Inbox and Agent Chat UI approve a waiting action on a real `langgraph dev` (evals/clients.py).

Opt-in and heavy (two Next.js apps, headless Chromium): it runs only when SWITCHBOARD_CLIENTS_DIR names a folder
holding built checkouts of langchain-ai/agent-inbox and langchain-ai/agent-chat-ui (`make test-clients
CLIENTS_DIR=...`); otherwise it is skipped with the reason, so `make test` and CI never pay for it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from config.settings import Settings

CLIENTS_DIR = os.environ.get("SWITCHBOARD_CLIENTS_DIR", "")


def why_not() -> str | None:
    """Decided at collection, before the seeded-data fixture is built: a skipped run costs nothing."""
    if not CLIENTS_DIR:
        return ("opt-in: set SWITCHBOARD_CLIENTS_DIR to built agent-inbox + agent-chat-ui checkouts "
                "(make test-clients CLIENTS_DIR=...)")  # fmt: skip
    from evals.clients import missing

    return missing(Path(CLIENTS_DIR))


SKIP = why_not()
pytestmark = [pytest.mark.server, pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]


def test_each_real_app_shows_the_interrupt_as_a_form_and_its_approval_runs_the_action_once(
    seeded_settings: Settings, model_cache: Path
) -> None:
    from evals import clients

    results = clients.run(Path(CLIENTS_DIR), data=seeded_settings.data_dir, model_cache=model_cache)
    assert [r.app for r in results] == list(clients.APPS)
    for r in results:
        assert r.ok, f"{r.app}: {r.error}"
        assert r.rendered["action"] and all(r.rendered["args"].values()), r.rendered
        assert r.outcome["new_refunds"] == 1 and r.outcome["approver"] == "rita", r.outcome
