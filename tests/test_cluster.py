"""Two Aegra instances on one Postgres, one Redis and one Chroma server, serving the project's graph with its auth.

- both instances answer tickets; a thread made on one is the same thread on the other; keys and ownership hold on
  either (no key: 401; another customer's thread: 404; a customer cannot resume: 403);
- a customer's ticket interrupted for approval on instance A is read, found in search and approved (or rejected) by
  a reviewer (role agent, same tenant) on instance B, the reviewer recorded as the approver; another customer of the
  tenant, the same user id in another tenant and a reviewer of another tenant get 404 on it (reads, runs, search),
  and those refusals are in the audit log, as under `langgraph dev`;
- kill -9 of the instance running an approved write, right after the write committed and before the step's
  checkpoint: the survivor re-queues the run (Aegra's lease reaper) and re-runs the node from its start; the
  ledger replays the write, so the shop changes once and the ticket ends with one answer;
- every run passes the intake: a run stores and checkpoints only the admitted input (Aegra's tables are read for the
  raw PII); the v2 command route (with FF_V2_EVENT_STREAMING on) and cron creation are refused and store nothing;
- bulk run cancel as under `langgraph dev`: one's own runs, never another customer's or another tenant's; a state
  write stays staff-only whatever its body names.

These start real servers (two to three minutes), so they run only when asked: `make test-cluster`, or
SWITCHBOARD_CLUSTER_TESTS=1 with the Aegra virtualenv at SWITCHBOARD_AEGRA_VENV (default .venv-aegra, made by
`make aegra-venv`). Under SWITCHBOARD_REQUIRE_SERVICES=1 a missing Postgres or Redis fails them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from cluster.launch import REPO, Server, aegra_env, aegra_migrate, start_aegra, start_chroma, wait_ready
from config.settings import Settings
from tests.conftest import require_service
from tests.pg import REDIS_URL, fresh_database, postgres_problem, redis_problem

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("SWITCHBOARD_CLUSTER_TESTS") != "1",
        reason="cluster tests start Aegra instances (~2 min): `make test-cluster` runs them",
    ),
    pytest.mark.cluster,
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.filterwarnings("ignore:legacy embedding function config:DeprecationWarning"),
]

AEGRA_VENV = Path(os.environ.get("SWITCHBOARD_AEGRA_VENV", REPO / ".venv-aegra"))


def _require_cluster() -> None:
    if not (AEGRA_VENV / "bin" / "python").exists():
        pytest.fail(f"no Aegra virtualenv at {AEGRA_VENV}: `make aegra-venv` creates it (SWITCHBOARD_AEGRA_VENV)")
    for problem in (postgres_problem(), redis_problem()):
        if problem:
            require_service(problem)


@dataclass
class Cluster:
    instances: list[Server]
    shop_url: str
    keys: dict[str, str]
    fault_dir: Path
    start: Any  # (index) -> Server: a new instance in place of instances[index]
    aegra_db: str = ""  # Aegra's own database: threads, runs, crons, checkpoints
    spare: list[Server] = field(default_factory=list)

    def client(self, i: int, who: str | None = "demo") -> Any:
        from langgraph_sdk import get_sync_client

        headers = {"Authorization": f"Bearer {self.keys[who]}"} if who else {}
        return get_sync_client(url=self.instances[i].url, api_key=None, headers=headers)

    def shop(self) -> Any:
        from tools.shop import ShopDB

        return ShopDB(self.shop_url)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, seeded_settings: Settings, embedder: Any, model_cache: Path
            ) -> Iterator[Cluster]:  # fmt: skip
    _require_cluster()
    from auth.keys import KeyStore
    from graphs.services import seed

    root = tmp_path_factory.mktemp("cluster")
    data, logs, fault_dir = root / "data", root / "logs", root / "fault"
    fault_dir.mkdir()
    # The shipped per-user limit (a burst of 10, 30 a minute) would refuse the short load below within a second on
    # an idle machine; the limiter still runs, with a budget a load test does not exhaust (tests/test_ratelimit.py
    # tests the limits themselves).
    config_dir = root / "config"
    shutil.copytree(REPO / "config", config_dir, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    policy = yaml.safe_load((config_dir / "policy.yaml").read_text())
    policy["rate_limits"]["user"] = {"capacity": 10_000, "per_minute": 100_000}
    policy["rate_limits"]["tenant"] = {"capacity": 10_000, "per_minute": 100_000}
    (config_dir / "policy.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    shutil.copytree(seeded_settings.intent_model_dir, data / "models" / "intents")  # trained once per session
    with fresh_database("sbaegra") as aegra_db, fresh_database("sbshop") as shop_db:
        chroma = start_chroma(AEGRA_VENV, root / "chroma", logs / "chroma.log")
        servers: list[Server] = [chroma]
        try:
            settings = Settings(data_dir=data, database_url=shop_db, chroma_url=chroma.url, model_cache_dir=model_cache)
            seed(settings, embedder=embedder)  # the shop into Postgres, the knowledge base into the Chroma server
            store = KeyStore(settings.auth_target)
            keys = {
                "demo": store.create("demo")[0],
                "alice": store.create("alice")[0],  # another customer of demo's tenant
                "rita": store.create("rita", role="agent")[0],  # a reviewer of demo's tenant
                "otto": store.create("otto", "other", role="agent")[0],  # a reviewer of another tenant
                "mallory": store.create("demo", "other")[0],  # demo's user id, in another tenant
                "root": store.create("root", role="admin")[0],
            }
            prefix = f"aegra:test{uuid.uuid4().hex[:8]}:"  # this cluster's own queue and channels in Redis
            config = root / "aegra.json"
            config.write_text(
                json.dumps(
                    {
                        "dependencies": [str(REPO)],
                        "graphs": {"supervisor": f"{REPO}/tests/aegra_fault_graph.py:graph"},
                        "auth": {"path": f"{REPO}/cluster/aegra_auth.py:auth"},
                        "http": {"app": f"{REPO}/cluster/aegra_http.py:app"},
                        "checkpointer": {"durability": "sync"},
                    }
                )
            )
            env = aegra_env(
                database_url=aegra_db,
                redis_url=REDIS_URL,
                config=config,
                switchboard_env={
                    "SWITCHBOARD_DATA_DIR": str(data),
                    "SWITCHBOARD_MODEL_CACHE": str(model_cache),
                    "SWITCHBOARD_DATABASE_URL": shop_db,
                    "SWITCHBOARD_CHROMA_URL": chroma.url,
                    "SWITCHBOARD_TEST_FAULT_DIR": str(fault_dir),
                    "SWITCHBOARD_CONFIG_DIR": str(config_dir),
                },
                extra={
                    "REDIS_CHANNEL_PREFIX": prefix,
                    "WORKER_QUEUE_KEY": f"{prefix}jobs",
                    # A crashed instance's run is taken over after ~6 s instead of ~30-45 s.
                    "LEASE_DURATION_SECONDS": "6",
                    "HEARTBEAT_INTERVAL_SECONDS": "2",
                    "REAPER_INTERVAL_SECONDS": "2",
                    # Aegra's v2 command route on, whatever cluster.launch sets: the app layer must refuse it anyway.
                    "FF_V2_EVENT_STREAMING": "true",
                },
            )
            aegra_migrate(AEGRA_VENV, env, logs / "migrate.log")
            count = iter(range(100))

            def start(i: int | None = None) -> Server:
                n = next(count)
                server = start_aegra(AEGRA_VENV, env, logs / f"aegra-{n}.log", name=f"aegra-{n}")
                servers.append(server)
                wait_ready(server, "/health")
                return server

            instances = [start(), start()]
            c = Cluster(instances, shop_db, keys, fault_dir, start, aegra_db=aegra_db)
            for i in range(2):  # warm each instance: its first ticket builds the services
                assert _ticket(c, i, "How long does delivery take?")["status"] == "completed", instances[i].tail()
            yield c
        finally:
            for server in reversed(servers):
                server.stop()
            for server in servers[1:]:
                text = server.tail(200_000)
                assert "BlockingError" not in text, text[-3000:]


def _ticket(c: Cluster, i: int, text: str, who: str = "demo") -> dict[str, Any]:
    client = c.client(i, who)
    thread = client.threads.create()["thread_id"]
    client.runs.wait(thread, "supervisor", input={"messages": [{"role": "user", "content": text}]})
    state = client.threads.get_state(thread)
    return {"thread": thread, **state["values"], "next": state["next"], "tasks": state["tasks"]}


def _waiting_on(state: dict[str, Any]) -> str | None:
    for task in state.get("tasks") or []:
        if task.get("interrupts"):
            return task["name"]
    return None


def test_both_instances_serve_tickets_with_the_project_auth(cluster: Cluster) -> None:
    import httpx

    on_a = _ticket(cluster, 0, "Where is my order 1005?")
    assert on_a["status"] == "completed" and "1Z999AA10123456784" in on_a["answer"]
    same = cluster.client(1).threads.get_state(on_a["thread"])  # the other instance, the same thread
    assert same["values"]["answer"] == on_a["answer"]
    assert cluster.client(1).threads.get(on_a["thread"])["metadata"]["owner"] == "demo"
    with pytest.raises(httpx.HTTPStatusError) as other:
        cluster.client(1, "alice").threads.get_state(on_a["thread"])
    assert other.value.response.status_code == 404
    for i in range(2):
        response = httpx.post(f"{cluster.instances[i].url}/threads", json={}, timeout=10)
        assert response.status_code == 401 and "missing API key" in response.text
    from auth.audit import SqlAuditLog

    failures = [(e.actor, e.action, e.outcome) for e in SqlAuditLog(cluster.shop_url).query(kind="auth_failure")]
    assert failures.count(("anonymous", "POST /threads", "401")) >= 2, failures  # audited, as under langgraph dev
    alice = _ticket(cluster, 1, "Where is my order 1012?", who="alice")
    assert alice["status"] == "completed" and "1012" in alice["answer"]
    mine = _ticket(cluster, 1, "Where is my order 1012?")  # demo asking about alice's order learns nothing
    assert "Colissimo" not in (mine["answer"] or "")
    # Runs go through Redis to whichever instance's worker is free: an instance has loaded the services if it ran one.
    health = [httpx.get(f"{s.url}/switchboard/health", timeout=10) for s in cluster.instances]
    assert [h.status_code for h in health] == [200, 200]
    knowledge = [h.json()["checks"]["knowledge"]["status"] for h in health]
    assert "ok" in knowledge and set(knowledge) <= {"ok", "not_loaded"}, knowledge


def _status_of(call: Any) -> int:
    import httpx

    try:
        call()
    except httpx.HTTPStatusError as exc:
        return exc.response.status_code
    return 200


def _refusals(cluster: Cluster, thread: str) -> list[tuple[str, str, str, str, str]]:
    from auth.audit import SqlAuditLog

    events = SqlAuditLog(cluster.shop_url).query(thread_id=thread, kind="policy_refusal")
    return [(e.actor, e.tenant, e.role, e.action, e.outcome) for e in events]


def test_a_reviewer_approves_a_customers_ticket_on_the_other_instance(cluster: Cluster) -> None:
    waiting = _ticket(cluster, 0, "Please cancel order 1008, I ordered the wrong keyboard.")  # customer demo, on A
    thread = waiting["thread"]
    assert _waiting_on(waiting) == "request_approval" and waiting["status"] == "awaiting_approval"
    with cluster.shop() as shop:
        assert shop.query("SELECT status FROM orders WHERE id = 1008")[0]["status"] == "processing"

    # A metadata patch cannot move the thread to another owner or tenant (Aegra merges the client's own keys back
    # in under the handler's, so they are reset to the thread's): otto below still may not see it.
    patched = cluster.client(0).threads.update(thread, metadata={"owner": "alice", "tenant": "other", "topic": "kb"})
    assert {k: patched["metadata"].get(k) for k in ("owner", "tenant", "topic")} == {
        "owner": "demo", "tenant": "default", "topic": "kb"}  # fmt: skip

    rita = cluster.client(1, "rita")  # a reviewer of demo's tenant, on B
    assert _waiting_on(rita.threads.get_state(thread)) == "request_approval"
    assert rita.threads.get(thread)["metadata"]["owner"] == "demo"
    assert thread in {t["thread_id"] for t in rita.threads.search(status="interrupted", limit=100)}
    assert rita.threads.get_history(thread, limit=3) and rita.runs.list(thread)

    # Another customer of the tenant, demo's user id in another tenant, a reviewer of another tenant: not found.
    for i, who in ((1, "alice"), (0, "mallory"), (1, "otto")):
        other = cluster.client(i, who)
        reads = {
            "get": lambda c=other: c.threads.get(thread),
            "state": lambda c=other: c.threads.get_state(thread),
            "history": lambda c=other: c.threads.get_history(thread, limit=3),
            "runs": lambda c=other: c.runs.list(thread),
        }
        assert {name: _status_of(read) for name, read in reads.items()} == dict.fromkeys(reads, 404), who
        assert thread not in {t["thread_id"] for t in other.threads.search(limit=100)}, who
        # A resume from them is refused too: 404 where Aegra's run route finds another principal's thread before any
        # handler runs (alice, otto), the handler's 403 for a customer's command where it does not (mallory).
        resume = _status_of(lambda c=other: c.runs.wait(thread, "supervisor", command={"resume": {"type": "accept"}}))
        assert resume == (403 if who == "mallory" else 404), who
    demo_b = cluster.client(1, "demo")
    approve = {"resume": {"type": "accept"}}
    assert _status_of(lambda: demo_b.runs.wait(thread, "supervisor", command=approve)) == 403  # not their own refund
    assert _waiting_on(rita.threads.get_state(thread)) == "request_approval"  # none of that moved the ticket

    rita.runs.wait(thread, "supervisor", command={"resume": {"type": "accept"}})
    done = cluster.client(0).threads.get_state(thread)  # the customer sees the outcome, on A
    assert done["values"]["status"] == "completed" and not done["next"]
    assert done["values"]["approval"]["approver"] == "rita"  # from the reviewer's key, never from the client
    with cluster.shop() as shop:
        assert shop.query("SELECT status FROM orders WHERE id = 1008")[0]["status"] == "cancelled"
        assert shop.query("SELECT COUNT(*) AS n FROM refunds WHERE order_id = 1008")[0]["n"] == 1

    refusals = _refusals(cluster, thread)
    hidden = {(actor, tenant, role) for actor, tenant, role, _, outcome in refusals if outcome == "404"}
    assert hidden == {("alice", "default", "customer"), ("demo", "other", "customer"), ("otto", "other", "agent")}
    assert {action for actor, _, _, action, outcome in refusals if actor == "alice" and outcome == "404"} >= {
        f"GET /threads/{thread}", f"GET /threads/{thread}/state", f"POST /threads/{thread}/history"}  # fmt: skip
    assert ("demo", "default", "customer", "threads.create_run", "403") in refusals
    assert not [r for r in refusals if r[0] == "rita"], "the reviewer's own requests are no refusals"


def test_a_reviewer_rejects_a_customers_ticket_on_the_other_instance(cluster: Cluster) -> None:
    waiting = _ticket(cluster, 1, "Please cancel order 1010, I don't need the charger any more.")  # on B
    assert _waiting_on(waiting) == "request_approval", waiting
    rita = cluster.client(0, "rita")  # on A
    rita.runs.wait(waiting["thread"], "supervisor", command={"resume": {"type": "ignore"}})
    state = cluster.client(1).threads.get_state(waiting["thread"])
    assert state["values"]["status"] == "rejected" and not state["next"]
    with cluster.shop() as shop:
        assert shop.query("SELECT status FROM orders WHERE id = 1010")[0]["status"] == "pending"


def test_a_short_load_on_both_instances_has_no_errors(cluster: Cluster) -> None:
    import asyncio

    from bench.load import run_load

    report = asyncio.run(
        run_load([s.url for s in cluster.instances], cluster.keys["demo"], clients=4, seconds=4, warmup_s=1)
    )
    assert report["errors"] == 0 and not report["warmup_errors"], report["error_samples"]
    assert report["tickets"] > 0 and report["p95_ms"] >= report["p50_ms"] > 0
    assert set(report["tickets_by_url"]) == {s.url for s in cluster.instances}


def test_kill_9_mid_ticket_the_other_instance_finishes_it_with_one_effect(cluster: Cluster) -> None:
    rita = cluster.client(0, "rita")
    waiting = _ticket(cluster, 0, "Please cancel order 1009, I ordered too many bottles.")
    assert _waiting_on(waiting) == "request_approval"
    key = waiting["action"]["idempotency_key"]
    (cluster.fault_dir / "armed").touch()
    run = rita.runs.create(waiting["thread"], "supervisor", command={"resume": {"type": "accept"}})
    committed = cluster.fault_dir / "committed"
    deadline = time.monotonic() + 120
    while not committed.exists() or not committed.read_text():
        assert time.monotonic() < deadline, "no instance reached the fault point"
        time.sleep(0.2)  # waiting on another process's file
    pid = int(committed.read_text())
    victim = next(i for i, s in enumerate(cluster.instances) if s.pid == pid)
    with cluster.shop() as shop:  # the write is in: the crash comes after the commit, before the checkpoint
        assert shop.query("SELECT status FROM orders WHERE id = 1009")[0]["status"] == "cancelled"
    os.kill(pid, signal.SIGKILL)
    cluster.instances[victim].proc.wait(timeout=30)
    survivor = cluster.client(1 - victim, "rita")

    started = time.monotonic()
    deadline = started + 180
    while True:
        status = survivor.runs.get(waiting["thread"], run["run_id"])["status"]
        if status in ("success", "error", "timeout", "interrupted"):
            break
        assert time.monotonic() < deadline, f"run still {status}:\n{cluster.instances[1 - victim].tail()}"
        time.sleep(0.5)  # waiting on the survivor
    taken_over_s = time.monotonic() - started
    assert status == "success", cluster.instances[1 - victim].tail()
    state = survivor.threads.get_state(waiting["thread"])
    assert state["values"]["status"] == "completed" and not state["next"]
    assert state["values"]["action_result"]["ok"] and state["values"]["answer"]
    answers = [m for m in state["values"]["messages"] if m.get("type") == "ai"]
    assert len(answers) == 1, answers  # one answer to the ticket
    with cluster.shop() as shop:
        assert shop.query("SELECT COUNT(*) AS n FROM refunds WHERE order_id = 1009")[0]["n"] == 1
        assert shop.query("SELECT COUNT(*) AS n FROM action_ledger WHERE key = ?", (key,))[0]["n"] == 1
        outcomes = [r["outcome"] for r in shop.query("SELECT outcome FROM audit_log WHERE tool = 'cancel_order' "
                                                     "AND args_json LIKE '%1009%' ORDER BY id")]  # fmt: skip
    assert outcomes[0] == f"ok: {key}" and outcomes[1:] and all(o == f"replayed: {key}" for o in outcomes[1:]), outcomes
    print(f"\nkill -9 of instance {victim}: run finished by the survivor {taken_over_s:.1f} s later; "
          f"shop effects 1, ledger replays {len(outcomes) - 1}")  # fmt: skip
    (cluster.fault_dir / "armed").unlink()
    cluster.instances[victim] = cluster.start()


# ---------------------------------------------------------------- every path that starts a run passes the intake

REFUND = "I want a refund for order 1004, the monitor is faulty."
ONLY_V1 = "POST /threads/{thread_id}/runs"  # what a refused run-starting route tells the client to use instead


def _post(cluster: Cluster, i: int, who: str | None, path: str, body: Any) -> Any:
    import httpx

    headers = {"Authorization": f"Bearer {cluster.keys[who]}"} if who else {}
    return httpx.post(f"{cluster.instances[i].url}{path}", json=body, headers=headers, timeout=60)


def _stored(cluster: Cluster, thread: str) -> dict[str, list[Any]]:
    """Every row Aegra's database holds for `thread`: the thread, its runs, checkpoints, blobs and writes."""
    import psycopg

    tables = ("thread", "runs", "checkpoints", "checkpoint_blobs", "checkpoint_writes")
    with psycopg.connect(cluster.aegra_db) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} WHERE thread_id::text = %s", (thread,)).fetchall() for t in tables}


def _as_text(rows: Any) -> str:
    def plain(value: Any) -> Any:
        return bytes(value).decode("utf-8", "replace") if isinstance(value, bytes | memoryview) else value

    return json.dumps({t: [[plain(v) for v in row] for row in r] for t, r in rows.items()}, default=str)


def _run_input(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def test_the_v2_command_route_starts_no_run_and_stores_nothing(cluster: Cluster) -> None:
    """Aegra's `POST /threads/{id}/commands` (v2 event streaming) builds its runs past the create_run handler: it
    is refused on every instance, before anything is stored, whatever FF_V2_EVENT_STREAMING says."""
    from tests.test_pii_checkpoints import TICKET, leaks

    demo = cluster.client(0)
    thread = demo.threads.create()["thread_id"]
    before = demo.threads.get_state(thread)
    minted = str(uuid.uuid4())  # the SDK mints a thread id client-side and expects run.start to create it
    oversized = "Where is my order 1005? " * 300  # 7,200 characters; the limit is 4,000
    for target in (thread, minted):
        for text in (TICKET, oversized):
            start = {"id": 1, "method": "run.start",
                     "params": {"assistant_id": "supervisor", "input": _run_input(text)}}  # fmt: skip
            for i in range(2):
                response = _post(cluster, i, "demo", f"/threads/{target}/commands", start)
                assert response.status_code == 403, response.text
                assert ONLY_V1 in response.json()["message"], response.text
    assert _post(cluster, 0, None, f"/threads/{thread}/commands", {}).status_code == 401  # authentication first
    assert demo.runs.list(thread) == [] and demo.threads.get_history(thread) == []
    after = demo.threads.get_state(thread)
    assert (after["values"], after["checkpoint"]) == (before["values"], before["checkpoint"])
    assert _status_of(lambda: demo.threads.get(minted)) == 404  # no thread was made on the minted id
    for target in (thread, minted):
        stored = _stored(cluster, target)
        assert {t: len(stored[t]) for t in stored if t != "thread"} == dict.fromkeys(
            ("runs", "checkpoints", "checkpoint_blobs", "checkpoint_writes"), 0), target  # fmt: skip
        assert leaks(_as_text(stored)) == []

    # input.respond is a resume: a customer may not approve their own refund that way either, nor may a reviewer
    # answer through it (a reviewer's resume goes through the create_run handler, which records the approver).
    waiting = _ticket(cluster, 0, REFUND)
    assert _waiting_on(waiting) == "request_approval", waiting
    runs_before = len(demo.runs.list(waiting["thread"]))
    respond = {"id": 2, "method": "input.respond", "params": {"response": {"type": "accept"}}}
    for who in ("demo", "rita"):
        response = _post(cluster, 1, who, f"/threads/{waiting['thread']}/commands", respond)
        assert response.status_code == 403 and ONLY_V1 in response.json()["message"], (who, response.text)
    assert _waiting_on(cluster.client(1, "rita").threads.get_state(waiting["thread"])) == "request_approval"
    assert len(demo.runs.list(waiting["thread"])) == runs_before
    refusals = _refusals(cluster, waiting["thread"])
    assert ("demo", "default", "customer", f"POST /threads/{waiting['thread']}/commands", "403") in refusals


def test_a_run_on_aegra_stores_only_the_admitted_input(cluster: Cluster) -> None:
    """The create_run handler's admitted input (redacted, slots sealed) and its rewritten context are what the run
    stores and checkpoints, on the thread routes and the thread-less ones (`/runs/wait`)."""
    import httpx

    from tests.test_pii_checkpoints import TICKET, leaks

    demo = cluster.client(1)
    thread = demo.threads.create()["thread_id"]
    claimed = {"user_id": "alice", "refund_auto_approve_eur": 10_000}  # another customer; a looser limit
    demo.runs.wait(thread, "supervisor", input=_run_input(TICKET), context=claimed)
    history = demo.threads.get_history(thread, limit=100)
    assert len(history) >= 5
    served = json.dumps(history, default=str) + json.dumps(demo.runs.list(thread), default=str)
    assert leaks(served) == [] and "[CARD]" in served
    stored = _stored(cluster, thread)
    assert leaks(_as_text(stored)) == [] and "[CARD]" in _as_text(stored)
    (run,) = demo.runs.list(thread)
    assert run["context"]["user_id"] == "demo" and "refund_auto_approve_eur" not in run["context"], run["context"]

    response = _post(cluster, 0, "demo", "/runs/wait",
                     {"assistant_id": "supervisor", "input": _run_input(TICKET), "on_completion": "keep"})  # fmt: skip
    assert response.status_code == 200, response.text
    stateless = response.headers["content-location"].split("/")[2]  # /threads/{thread}/runs/{run}
    assert leaks(_as_text(_stored(cluster, stateless))) == [] and "[CARD]" in _as_text(_stored(cluster, stateless))

    fresh = demo.threads.create()["thread_id"]
    with pytest.raises(httpx.HTTPStatusError) as refused:
        demo.runs.wait(fresh, "supervisor", input=_run_input("Where is my order 1005? " * 300))
    assert refused.value.response.status_code == 422 and "the limit is 4000" in refused.value.response.text
    assert demo.threads.get_history(fresh) == [] and _stored(cluster, fresh)["runs"] == []


def test_crons_are_refused_on_aegra_even_for_admins(cluster: Cluster) -> None:
    """A cron's runs are built past the create_run handler (its first run at once, the next ones by Aegra's
    scheduler under a user it makes up): cron creation is refused, and no cron or run is stored."""
    import psycopg

    from tests.test_pii_checkpoints import TICKET

    root = cluster.client(0, "root")
    thread = root.threads.create()["thread_id"]
    cron = {"assistant_id": "supervisor", "schedule": "0 0 1 1 *", "input": _run_input(TICKET)}
    for path in ("/runs/crons", f"/threads/{thread}/runs/crons"):
        response = _post(cluster, 1, "root", path, cron)
        assert response.status_code == 403 and "cron" in response.json()["message"], response.text
    assert root.runs.list(thread) == []
    with psycopg.connect(cluster.aegra_db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM crons").fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM runs WHERE user_id = 'root'").fetchone() == (0,)


def _run_status_becomes(client: Any, thread: str, run_id: str, wanted: set[str]) -> str:
    deadline = time.monotonic() + 60
    while (status := client.runs.get(thread, run_id)["status"]) not in wanted:
        assert time.monotonic() < deadline, f"run {run_id} still {status}"
        time.sleep(0.2)  # waiting on a worker
    return str(status)


def test_a_customer_cancels_their_own_runs_in_bulk_never_anothers(cluster: Cluster) -> None:
    """`POST /runs/cancel` as under `langgraph dev` (tests/test_auth_server.py): the caller's own runs (204), by ids
    or by status; another customer's thread, or nothing of one's own still running, is 404; a state write whose
    body names a run (or an action, or metadata) is still a state write (staff only)."""
    token = f"hold-{uuid.uuid4().hex[:8]}"
    hold = cluster.fault_dir / "hold"
    hold.write_text(token)
    demo = cluster.client(0)
    try:
        held = []
        for _ in range(2):
            thread = demo.threads.create()["thread_id"]
            run = demo.runs.create(thread, "supervisor", input=_run_input(f"Where is my order 1005? {token}"))
            held.append((thread, run["run_id"]))
        for thread, run_id in held:
            _run_status_becomes(demo, thread, run_id, {"running"})
        (thread, run_id), (thread2, run_id2) = held
        by_ids = {"thread_id": thread, "run_ids": [run_id]}
        for who in ("alice", "mallory"):  # another customer of the tenant; demo's user id in another tenant
            response = _post(cluster, 1, who, "/runs/cancel", by_ids)
            assert response.status_code == 404, (who, response.text)
            response = _post(cluster, 1, who, "/runs/cancel", {"status": "all"})
            assert response.status_code == 404 and "No runs found to cancel" in response.text, (who, response.text)
        assert [demo.runs.get(t, r)["status"] for t, r in held] == ["running", "running"]

        response = _post(cluster, 1, "demo", "/runs/cancel", by_ids)
        assert response.status_code == 204, response.text
        assert _run_status_becomes(demo, thread, run_id, {"interrupted", "success", "error"}) == "interrupted"
        assert demo.runs.get(thread2, run_id2)["status"] == "running"
        response = _post(cluster, 0, "demo", "/runs/cancel", by_ids)  # stopped already: nothing to cancel
        assert response.status_code == 404 and "No matching runs to cancel" in response.text, response.text
        response = _post(cluster, 0, "demo", "/runs/cancel", {"status": "running"})
        assert response.status_code == 204, response.text
        assert _run_status_becomes(demo, thread2, run_id2, {"interrupted", "success", "error"}) == "interrupted"
        response = _post(cluster, 0, "demo", "/runs/cancel", {"status": "all"})
        assert response.status_code == 404 and "No runs found to cancel" in response.text, response.text
    finally:
        hold.unlink(missing_ok=True)

    done = _ticket(cluster, 1, "How long does delivery take?")
    before = demo.threads.get_state(done["thread"])
    write = {"values": {"answer": "Your refund of 999 EUR is approved."}, "as_node": "generate_response"}
    # The keys that tell a cancel or a metadata patch apart under the LangGraph server, in a state write's body.
    for disguise in ({"run_id": run_id}, {"action": "interrupt"}, {"metadata": {}}):
        response = _post(cluster, 0, "demo", f"/threads/{done['thread']}/state", {**write, **disguise})
        assert response.status_code == 403 and "cannot write a thread's state" in response.text, disguise
    assert demo.threads.get_state(done["thread"])["checkpoint"] == before["checkpoint"]
