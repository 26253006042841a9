"""`python app.py inbox`: a tenant's waiting threads with their payloads, resolved through the resume service."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def waiting(cli: Any) -> dict[str, str]:
    """An approval and an escalation in tenant default, an approval in tenant other, and a finished ticket."""
    threads = {}
    _, out, _ = cli("ask", "Please cancel order 1008, I ordered the wrong keyboard.", "--json")
    threads["approval"] = out["thread_id"]
    _, out, _ = cli("ask", "I want to talk to a real person, not a bot.", "--json")
    threads["escalation"] = out["thread_id"]
    _, out, _ = cli("ask", "Please cancel order 1013", "--user", "alice", "--tenant", "other", "--json")
    assert out["status"] == "awaiting_approval"
    threads["other"] = out["thread_id"]
    _, out, _ = cli("ask", "How long does standard delivery take?", "--json")
    assert out["status"] == "completed"
    threads["done"] = out["thread_id"]
    return threads


def test_the_inbox_lists_the_tenants_waiting_threads_with_payloads(cli: Any, waiting: dict[str, str]) -> None:
    code, box, _ = cli("inbox", "--json")
    assert code == 0 and box["tenant"] == "default" and box["count"] == 2
    by_thread = {t["thread_id"]: t for t in box["threads"]}
    assert set(by_thread) == {waiting["approval"], waiting["escalation"]}
    approval = by_thread[waiting["approval"]]
    assert (approval["status"], approval["node"], approval["owner"]) == ("awaiting_approval", "request_approval",
                                                                         "demo")  # fmt: skip
    request = approval["payload"]["action_request"]
    assert request["action"] == "cancel_order" and request["args"]["order_id"] == 1008
    assert approval["trace_id"] and approval["payload"]["config"]["allow_accept"] is True
    assert by_thread[waiting["escalation"]]["payload"]["action_request"]["action"] == "handoff_to_human"

    code, other, _ = cli("inbox", "--tenant", "other", "--json")
    assert code == 0 and [t["thread_id"] for t in other["threads"]] == [waiting["other"]]
    assert other["threads"][0]["owner"] == "alice"

    code, text, _ = cli("inbox")
    assert code == 0 and waiting["approval"] in text and "2 thread(s) waiting in tenant default" in text


def test_resolving_runs_the_resume_service_and_empties_the_inbox(cli: Any, waiting: dict[str, str]) -> None:
    code, out, _ = cli("inbox", "resolve", waiting["approval"], "--approve", "--as", "rita", "--json")
    assert code == 0 and out["status"] == "completed" and "execute_action" in out["route"]
    code, out, _ = cli("inbox", "resolve", waiting["escalation"], "--respond", "Rita here, how can I help?", "--json")
    assert code == 0 and out["status"] == "completed" and "Rita here" in out["answer"]
    _, box, _ = cli("inbox", "--json")
    assert box["count"] == 0
    _, audit, _ = cli("audit", "--thread", waiting["approval"], "--kind", "approval", "--json")
    assert [(e["actor"], e["outcome"]) for e in audit["events"]] == [("rita", "accept")]


@pytest.mark.parametrize(
    ("which", "argv", "message"),
    [
        ("other", ("--approve",), "is not in tenant default's inbox"),
        ("done", ("--approve",), "is not waiting for anyone"),
        ("escalation", ("--approve",), "cannot be approved"),  # the same checks as `resume`
        ("approval", (), "needs a decision"),
        ("approval", ("--edit", '{"order_id": "abc"}'), "order_id"),
    ],
)
def test_bad_resolutions_are_one_line_exit_2_and_leave_the_thread_waiting(
    cli: Any, waiting: dict[str, str], which: str, argv: tuple[str, ...], message: str
) -> None:
    code, _, err = cli("inbox", "resolve", waiting[which], *argv, "--json")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    _, box, _ = cli("inbox", "--json")
    assert {t["thread_id"] for t in box["threads"]} == {waiting["approval"], waiting["escalation"]}
    assert cli("inbox", "resolve", "no-such-thread", "--approve")[0] == 2
