"""The red-team suite (evals/redteam.py): 0 violations in process and against a real `langgraph dev` with auth on,
enough cases of every kind, and a detector that is not blind (with a protection switched off, it reports the attack).

One in-process target and one dev server for the module; each runs every case once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.settings import Settings
from evals import redteam
from tests.devserver import langgraph_cli

MIN_CASES_PER_KIND = 3


def violations(results: list[redteam.Result]) -> list[str]:
    return [f"{r.kind} {r.name}: tried {r.tried}; observed {r.observed}" for r in results if r.violation]


@pytest.fixture(scope="module")
def settings(seeded_settings: Settings, model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return redteam.seeded_copy(seeded_settings.data_dir, tmp_path_factory.mktemp("redteam") / "data", model_cache)


@pytest.fixture(scope="module")
def local_results(settings: Settings) -> list[redteam.Result]:
    return redteam.run_local(settings)


@pytest.fixture(scope="module")
def served(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[redteam.Api]:
    langgraph_cli()
    with redteam.local_server(settings, tmp_path_factory.mktemp("redteam-server")) as api:
        assert isinstance(api, redteam.Api), api
        api.setup()
        yield api
        api.cleanup()


@pytest.fixture(scope="module")
def api_results(served: redteam.Api) -> list[redteam.Result]:
    return redteam.run_cases(redteam.API, served)


# ---------------------------------------------------------------- the suite holds


def test_in_process_attacks_all_fail(local_results: list[redteam.Result]) -> None:
    assert violations(local_results) == []
    assert {r.surface for r in local_results} == {"inprocess", "cli"}
    assert all(r.tried and r.observed for r in local_results)


@pytest.mark.server
def test_attacks_on_the_served_api_all_fail(served: redteam.Api, api_results: list[redteam.Result]) -> None:
    assert violations(api_results) == []
    assert served.demo_untouched() is None, "demo's refund still waits for a reviewer"


@pytest.mark.server
def test_the_report_counts_every_kind(local_results: list[redteam.Result], api_results: list[redteam.Result]) -> None:
    report = redteam.summary(local_results + api_results)
    assert report["cases"] == len(redteam.LOCAL) + len(redteam.API) >= 100
    assert report["violations"] == 0
    assert set(report["violations_by_kind"]) == set(redteam.KINDS) == set(report["cases_by_kind"])
    thin = {k: n for k, n in report["cases_by_kind"].items() if n < MIN_CASES_PER_KIND}
    assert thin == {}, f"kinds with fewer than {MIN_CASES_PER_KIND} cases: {thin}"
    api_kinds = {r.kind for r in api_results}
    assert {"cross_user", "cross_tenant", "claimed_identity", "self_approval", "malformed_input"} <= api_kinds
    json.dumps(report)  # the --json output is one JSON object


# ---------------------------------------------------------------- the wrong-owner refusals are audited


@pytest.mark.server
def test_wrong_owner_requests_are_audited_as_policy_refusals(
    served: redteam.Api, api_results: list[redteam.Result]
) -> None:
    from auth.audit import SqlAuditLog

    assert served.data_dir is not None
    events = SqlAuditLog(served.data_dir / "audit.sqlite").query(kind="policy_refusal", limit=10_000)
    alice = [e for e in events if e.actor == "alice"]
    hidden = [e for e in alice if e.outcome == "404" and e.thread_id == served.demo_thread]
    assert {e.action for e in hidden} >= {
        f"GET /threads/{served.demo_thread}",
        f"GET /threads/{served.demo_thread}/state",
        f"POST /threads/{served.demo_thread}/history",
    }
    assert all((e.role, e.tenant) == ("customer", "default") for e in hidden)
    refused = [e for e in alice if e.outcome == "403"]  # the handlers' own refusals, recorded once each
    assert any(e.action == "threads.update" and e.thread_id == served.demo_thread for e in refused), refused
    assert any(e.action.startswith("store.") for e in refused)
    otto = [e for e in events if e.actor == "otto" and e.thread_id == served.demo_thread and e.outcome == "404"]
    assert otto and all(e.tenant == "other" and e.role == "agent" for e in otto)
    mallory = [e for e in events if e.actor == "demo" and e.tenant == "other" and e.outcome == "404"]
    assert {e.thread_id for e in mallory} == {served.demo_thread}, "demo of tenant other is refused demo@default's"
    demo_own = [e for e in events if e.actor == "demo" and e.tenant == "default" and e.outcome == "404"]
    assert demo_own == [], "the owner's own reads are not refusals"


# ---------------------------------------------------------------- the detector is not blind


def _control_target(settings: Settings, tmp_path: Path) -> redteam.Local:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(settings.data_dir, data, ignore=shutil.ignore_patterns("checkpoints.sqlite*", "cache.sqlite*"))
    return redteam.Local(settings.model_copy(update={"data_dir": data}))


def test_with_the_permission_check_off_the_suite_reports_tool_calls_outside_permissions(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from config.permissions import Permissions

    monkeypatch.setattr(Permissions, "allows", lambda self, node, tool, dry_run=False: True)
    target = _control_target(settings, tmp_path)
    try:
        cases = [c for c in redteam.LOCAL if c.name.startswith("permission_") and c.name != "permission_unknown_node"]
        results = redteam.run_cases(cases, target)
    finally:
        target.close()
    assert len(results) >= 5 and all(r.violation for r in results), [(r.name, r.observed) for r in results]
    wrote = [r for r in results if "the call ran (ok=True" in r.observed]
    assert wrote, "a real write went through: the plan_action cancel of order 1008"


def test_with_the_reviewer_check_off_the_suite_reports_self_approval(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nodes import hitl

    monkeypatch.setattr(hitl, "require_reviewer", lambda role: None)
    target = _control_target(settings, tmp_path)
    try:
        [case] = [c for c in redteam.LOCAL if c.name == "self_inbox_accept"]
        [result] = redteam.run_cases([case], target)
    finally:
        target.close()
    assert result.violation and "shop changed True" in result.observed, result.observed


def test_against_an_api_that_serves_everyone_every_access_case_is_a_violation() -> None:
    """A deliberately insecure fake server: every request is served (200) with demo's thread in the body."""

    def insecure(request: httpx.Request) -> httpx.Response:
        body = {
            "thread_id": "t-demo",
            "next": ["request_approval"],
            "values": {"status": "awaiting_approval"},
            "metadata": {"owner": "demo", "tenant": "default"},
            "namespaces": [["default", "demo", "prefs"]],
        }
        if request.url.path == "/threads/search":
            return httpx.Response(200, json=[{**body, "metadata": {"owner": "demo", "tenant": "default"}}])
        return httpx.Response(200, json=body)

    keys = {who: f"sb_fake_{who}" for who in redteam.API_USERS}
    api = redteam.Api(
        "http://insecure.test",
        keys,
        client=httpx.Client(base_url="http://insecure.test", transport=httpx.MockTransport(insecure)),
    )
    api.setup()
    access = [c for c in redteam.API if c.name.startswith(("api_alice_", "api_otto_", "api_mallory_"))]
    results = redteam.run_cases(access, api)
    missed = [r.name for r in results if not r.violation]
    assert len(results) >= 25 and missed == [], missed


def test_a_5xx_is_a_violation_not_a_refusal() -> None:
    assert redteam.denied(httpx.Response(500, text="Internal Server Error"))[0] is True
    assert redteam.denied(httpx.Response(404, text="not found"))[0] is False
    assert redteam.denied(httpx.Response(200, json={"x": "t-1"}), leak="t-1")[0] is True
    assert redteam.denied(httpx.Response(200, json=[]), leak="t-1")[0] is False


# ---------------------------------------------------------------- what the suite found, fixed


def test_a_lone_surrogate_never_costs_an_audit_record(tmp_path: Path) -> None:
    """Found by the suite (kind encoding): a reviewer reply with '\\ud800' made the audit append fail (record lost)."""
    from auth.audit import AuditEvent, SqlAuditLog
    from guards.text import well_formed

    log = SqlAuditLog(tmp_path / "audit.sqlite")
    log.append(AuditEvent(kind="approval", actor="rita", action="approve issue_refund", outcome="response",
                          detail={"reason": "No refund \ud800 sorry"}))  # fmt: skip
    [event] = log.query()
    assert event.detail["reason"] == "No refund \ufffd sorry"
    assert well_formed("caf\udcc3\udca9 \ud83d\ude00") == "caf\ufffd\ufffd \U0001f600"
    assert well_formed("plain") == "plain"


def test_a_lone_surrogate_in_a_ticket_is_answered(embedder: Any) -> None:
    """Found by the suite: the tokenizer and the node cache's key raised on a lone surrogate (TypeError,
    UnicodeEncodeError), so `app.py ask` with undecodable argv bytes crashed."""
    from observability.cache import _dump

    assert embedder.embed(["Where is my order 1006? \ud800"]).shape == (1, 384)
    _dump({"ticket": "order 1006 \udcff"}).encode()


def test_the_cli_verb_wants_keys_with_a_url(capsys: pytest.CaptureFixture[str]) -> None:
    from evals.cli import eval_main

    with pytest.raises(SystemExit) as info:
        eval_main(["redteam", "--url", "http://127.0.0.1:9"])
    assert info.value.code == 2
    assert "--url needs --keys FILE" in capsys.readouterr().err
