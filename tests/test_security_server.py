"""On a real `langgraph dev` with auth on (langgraph-sdk, loopback only): the reviewers' inbox is
`threads.search(status="interrupted")` filtered by tenant and owner, and rate limits answer 429 with Retry-After.

One server for the module, with its own config directory (SWITCHBOARD_CONFIG_DIR) whose rate limits are small:
3 tickets per user and 5 per tenant at once, refilled at one a minute. `langgraph dev` keeps threads in the
project's .langgraph_api folder across servers, so this module uses customers no other test uses and deletes
every thread it made when it is done.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.settings import Settings
from tests.devserver import dev_server, langgraph_cli

pytestmark = pytest.mark.server

LIMITS = "rate_limits:\n  enabled: true\n  user: {capacity: 3, per_minute: 1}\n  tenant: {capacity: 5, per_minute: 1}\n"
USERS = {
    "dan": ("sec-dan", "default", "customer"),
    "amy": ("sec-amy", "default", "customer"),
    "bo": ("sec-bo", "other", "customer"),
    "rita": ("rita", "default", "agent"),
    "otto": ("otto", "other", "agent"),
    "ann": ("ann", "crowd", "customer"),
    "cid": ("cid", "crowd", "customer"),
}


@dataclass
class Served:
    url: str
    keys: dict[str, str]
    data: Path
    made: list[tuple[str, str]]

    def client(self, who: str) -> Any:
        from langgraph_sdk import get_sync_client

        return get_sync_client(url=self.url, api_key=self.keys[who])


@pytest.fixture(scope="module")
def served(seeded_settings: Settings, model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    langgraph_cli()
    from auth.keys import KeyStore

    root = tmp_path_factory.mktemp("security-server")
    data, config = root / "data", root / "config"
    shutil.copytree(seeded_settings.data_dir, data)
    shutil.copytree(Settings().config_dir, config, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    policy = (config / "policy.yaml").read_text()
    (config / "policy.yaml").write_text(policy[: policy.index("rate_limits:")] + LIMITS)
    store = KeyStore(data / "auth.sqlite")
    keys = {who: store.create(*spec)[0] for who, spec in USERS.items()}
    logs = tmp_path_factory.mktemp("security-server-logs") / "server.log"  # outside the watched project folder
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWITCHBOARD_CONFIG_DIR", str(config))
        with dev_server(data, model_cache, logs, drop_env=("SWITCHBOARD_AUTH_ALLOW_STUDIO", "SWITCHBOARD_AUTH_DB",
                                                           "SWITCHBOARD_REDIS_URL")) as url:  # fmt: skip
            served = Served(url=url, keys=keys, data=data, made=[])
            yield served
            for who, thread in served.made:  # leave the shared .langgraph_api as we found it
                served.client(who).threads.delete(thread)


def ticket(served: Served, who: str, text: str) -> str:
    client = served.client(who)
    thread = client.threads.create()["thread_id"]
    served.made.append((who, thread))
    client.runs.wait(thread, "supervisor", input={"messages": [{"role": "user", "content": text}]})
    return thread


@pytest.fixture(scope="module")
def waiting(served: Served) -> dict[str, str]:
    human = "I want to talk to a real person, not a bot."
    return {
        "dan": ticket(served, "dan", human),
        "amy": ticket(served, "amy", human),
        "bo": ticket(served, "bo", human),
        "dan_done": ticket(served, "dan", "How long does standard delivery take?"),
    }


def interrupted(served: Served, who: str, mine: dict[str, str]) -> set[str]:
    """The waiting threads `who` sees among this module's, after checking every one they see is theirs to see.

    (`langgraph dev` keeps its threads in the project's .langgraph_api folder, so other server tests' threads
    may be there too: each must pass the same ownership rule.)"""
    user, tenant, role = USERS[who]
    seen = served.client(who).threads.search(status="interrupted", limit=1000)
    for thread in seen:
        assert thread["status"] == "interrupted"
        assert thread["metadata"]["tenant"] == tenant, (who, thread["metadata"])
        if role == "customer":
            assert thread["metadata"]["owner"] == user, (who, thread["metadata"])
    return {t["thread_id"] for t in seen} & set(mine.values())


def test_a_reviewer_sees_the_waiting_threads_of_their_tenant_only(served: Served, waiting: dict[str, str]) -> None:
    assert served.client("dan").threads.get_state(waiting["dan"])["next"] == ["escalate"]
    assert served.client("dan").threads.get_state(waiting["dan_done"])["next"] == []
    assert interrupted(served, "rita", waiting) == {waiting["dan"], waiting["amy"]}
    assert interrupted(served, "otto", waiting) == {waiting["bo"]}
    # With their payloads: what the reviewer is asked to decide.
    [inbox] = [t for t in served.client("rita").threads.search(status="interrupted", limit=1000)
               if t["thread_id"] == waiting["dan"]]  # fmt: skip
    payloads = [i["value"] for items in (inbox.get("interrupts") or {}).values() for i in items]
    assert payloads and payloads[0]["action_request"]["action"] == "handoff_to_human"
    assert "talk to a real person" in payloads[0]["action_request"]["args"]["ticket"]
    # The reviewer resolves one from their inbox, and it leaves the inbox.
    reply = {"resume": {"type": "response", "args": "Rita here: how can I help?"}}
    served.client("rita").runs.wait(waiting["amy"], "supervisor", command=reply)
    assert interrupted(served, "rita", waiting) == {waiting["dan"]}
    assert waiting["amy"] not in interrupted(served, "otto", waiting)


def test_a_customer_sees_only_their_own_waiting_threads(served: Served, waiting: dict[str, str]) -> None:
    assert interrupted(served, "dan", waiting) == {waiting["dan"]}
    assert interrupted(served, "bo", waiting) == {waiting["bo"]}
    assert waiting["dan"] not in interrupted(served, "amy", waiting)


def test_over_the_limit_a_run_is_refused_with_429_and_retry_after(served: Served) -> None:
    for _ in range(3):
        ticket(served, "ann", "How long does standard delivery take?")
    with pytest.raises(httpx.HTTPStatusError) as info:
        ticket(served, "ann", "How long does standard delivery take?")
    response = info.value.response
    assert response.status_code == 429, response.text
    assert 0 < int(response.headers["retry-after"]) <= 60
    assert "rate limited: too many tickets for user ann" in response.text

    # The tenant's bucket (5) is shared: cid's own bucket is full, but crowd has two tokens left.
    ticket(served, "cid", "How long does standard delivery take?")
    ticket(served, "cid", "How long does standard delivery take?")
    with pytest.raises(httpx.HTTPStatusError) as info:
        ticket(served, "cid", "How long does standard delivery take?")
    assert info.value.response.status_code == 429 and "tenant crowd" in info.value.response.text
    assert ticket(served, "bo", "How long does standard delivery take?")  # another tenant is not affected

    from auth.audit import SqlAuditLog

    refusals = SqlAuditLog(served.data / "audit.sqlite").query(kind="rate_limited")
    assert [(e.actor, e.tenant, e.outcome) for e in refusals] == [("ann", "crowd", "429"), ("cid", "crowd", "429")]
