"""Auth units: keys (hashing, lookup, revoke), roles, the request authenticator, every resource handler called
directly, identity resolution in `graphs.context.context_of`, the `apikey` CLI and the CLI's owner check."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import Auth
from pydantic import ValidationError

from auth import handlers
from auth.identity import Identity, identity_of, parse_role
from auth.keys import KeyStore, key_id_of
from config.settings import Settings
from graphs.context import Context, context_of
from storage.sql import connect


@pytest.fixture(autouse=True)
def private_audit(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The handlers' audit log, in memory for each test (the module's default is the env's data dir)."""
    from auth.audit import MemoryAuditLog

    audit = MemoryAuditLog()
    monkeypatch.setattr(handlers, "AUDIT", audit)
    return audit


# ---------------------------------------------------------------- keys


@pytest.fixture
def keys(sql_target: Callable[[str], str]) -> Iterator[KeyStore]:
    """API keys on each backend (SQLite file, Postgres database)."""
    store = KeyStore(sql_target("auth.sqlite"))
    yield store
    store.close()


def test_a_key_is_stored_only_as_its_sha256(keys: KeyStore) -> None:
    key, record = keys.create("demo", "default", "customer")
    assert key.startswith(f"sb_{record.key_id}_") and key_id_of(key) == record.key_id
    assert len(key.split("_", 2)[2]) == 43  # 32 random bytes, urlsafe base64
    conn = connect(keys.target, lock="test")
    try:
        rows = [tuple(r) for r in conn.execute("SELECT key_id, key_hash FROM api_keys").fetchall()]
        assert key.split("_", 2)[2] not in str([tuple(r) for r in conn.execute("SELECT * FROM api_keys")])
    finally:
        conn.close()
    assert rows == [(record.key_id, hashlib.sha256(key.encode()).hexdigest())]
    if keys.path is not None:
        assert key.split("_", 2)[2].encode() not in keys.path.read_bytes()
        assert keys.path.stat().st_mode & 0o077 == 0, "the key file is private to its owner"
    other, _ = keys.create("demo")
    assert other != key


def test_lookup_maps_a_key_to_its_identity_and_nothing_else(keys: KeyStore) -> None:
    assert keys.lookup("sb_000000000000_" + "x" * 43) is None  # no file yet
    key, record = keys.create("rita", "shop2", "agent")
    assert keys.lookup(key) == Identity(user_id="rita", tenant_id="shop2", role="agent", key_id=record.key_id)
    wrong_secret = key[:-1] + ("A" if key[-1] != "A" else "B")
    for bad in (wrong_secret, key + "x", key.replace("sb_", "sk_"), "", "Bearer " + key, key.upper()):
        assert keys.lookup(bad) is None, bad


def test_revoke_stops_a_key_and_reports_unknown_or_repeated_revokes(keys: KeyStore) -> None:
    key, record = keys.create("alice")
    kept, _ = keys.create("alice")
    revoked = keys.revoke(record.key_id)
    assert revoked.revoked_at is not None
    assert keys.lookup(key) is None and keys.lookup(kept) is not None
    with pytest.raises(KeyError):
        keys.revoke("000000000000")
    with pytest.raises(ValueError, match="already revoked"):
        keys.revoke(record.key_id)
    assert sorted((r.key_id == record.key_id, r.revoked_at is not None) for r in keys.list()) == [
        (False, False),
        (True, True),
    ]


def test_roles_parse_strictly() -> None:
    assert [parse_role(r) for r in ("customer", "Agent", " admin ")] == ["customer", "agent", "admin"]
    for bad in ("", "root", "agents", "customer,admin"):
        with pytest.raises(ValueError, match="unknown role"):
            parse_role(bad)


def test_create_rejects_bad_ids_and_roles(keys: KeyStore) -> None:
    for user, tenant, role in (("bad user", "default", "customer"), ("demo", "x/y", "customer"), ("demo", "d", "god")):
        with pytest.raises(ValueError):
            keys.create(user, tenant, role)
    assert keys.list() == []


# ---------------------------------------------------------------- authentication


def settings_for(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(data_dir=tmp_path, **kw)


def authenticate(headers: dict[bytes, bytes], keys: KeyStore, settings: Settings, client: Any = ("127.0.0.1", 1)):
    return handlers.authenticate_request(headers, client, keys=keys, settings=settings)


def status(call: Any) -> int:
    with pytest.raises(Auth.exceptions.HTTPException) as info:
        call()
    return info.value.status_code


def test_a_key_is_accepted_as_bearer_or_x_api_key_and_anything_else_is_401(keys: KeyStore, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    key, _ = keys.create("demo")
    assert authenticate({b"authorization": f"Bearer {key}".encode()}, keys, settings).user_id == "demo"
    assert authenticate({b"authorization": f"bearer {key}".encode()}, keys, settings).user_id == "demo"
    assert authenticate({b"x-api-key": key.encode()}, keys, settings).user_id == "demo"
    # a LangSmith key the SDK adds from the environment does not hide ours
    both = {b"authorization": f"Bearer {key}".encode(), b"x-api-key": b"lsv2_pt_whatever"}
    assert authenticate(both, keys, settings).user_id == "demo"
    for headers in (
        {},
        {b"authorization": b"Bearer"},
        {b"authorization": key.encode()},  # no scheme
        {b"authorization": b"Basic ZGVtbzpkZW1v"},
        {b"x-api-key": b"lsv2_pt_whatever"},
        {b"authorization": f"Bearer {key}x".encode()},
    ):
        assert status(lambda h=headers: authenticate(h, keys, settings)) == 401, headers


def test_the_authenticated_user_carries_tenant_and_role(keys: KeyStore) -> None:
    key, record = keys.create("otto", "other", "agent")
    user = keys.lookup(key).as_user()  # type: ignore[union-attr]
    assert user["identity"] == "otto" and user["tenant"] == "other" and user["role"] == "agent"
    assert identity_of(user) == Identity(user_id="otto", tenant_id="other", role="agent", key_id=record.key_id)

    class ProxyLike:  # the server wraps the dict in a ProxyUser with .get and attributes
        def __init__(self, d: dict) -> None:
            self._d = d

        def get(self, key: str, default: Any = None) -> Any:
            return self._d.get(key, default)

    assert identity_of(ProxyLike(user)) == identity_of(user)
    for foreign in (None, {"identity": "langgraph-studio-user", "kind": "StudioUser"}, {**user, "role": "root"}):
        assert identity_of(foreign) is None


def test_keyless_studio_needs_the_flag_loopback_and_no_forwarding(keys: KeyStore, tmp_path: Path) -> None:
    studio = {b"x-auth-scheme": b"langsmith", b"authorization": b"Bearer eyJ-a-langsmith-token"}
    assert status(lambda: authenticate(studio, keys, settings_for(tmp_path))) == 401
    allowed = settings_for(tmp_path, auth_allow_studio=True, studio_user="dev")
    identity = authenticate(studio, keys, allowed, client=("::1", 5))
    assert (identity.user_id, identity.role, identity.via) == ("dev", "agent", "studio")
    assert status(lambda: authenticate(studio, keys, allowed, client=("10.0.0.7", 5))) == 401
    assert status(lambda: authenticate(studio, keys, allowed, client=None)) == 401
    tunnelled = {**studio, b"x-forwarded-for": b"203.0.113.9"}
    assert status(lambda: authenticate(tunnelled, keys, allowed)) == 401
    key, _ = keys.create("demo")  # a real key wins over the Studio path
    with_key = {**studio, b"x-api-key": key.encode()}
    assert authenticate(with_key, keys, settings_for(tmp_path)).via == "key"


# ---------------------------------------------------------------- resource handlers, called directly


DEMO = Identity(user_id="demo", tenant_id="default", role="customer")
ALICE = Identity(user_id="alice", tenant_id="default", role="customer")
RITA = Identity(user_id="rita", tenant_id="default", role="agent")
OTTO = Identity(user_id="otto", tenant_id="other", role="agent")
ROOT = Identity(user_id="root", tenant_id="default", role="admin")


def call(handler: Any, who: Identity | dict, resource: str, action: str, value: Any) -> Any:
    user = who.as_user() if isinstance(who, Identity) else who
    ctx = Auth.types.AuthContext(user=user, permissions=[], resource=resource, action=action)  # type: ignore[arg-type]
    return asyncio.run(handler(ctx=ctx, value=value))


def denied(handler: Any, who: Identity | dict, resource: str, action: str, value: Any) -> int:
    with pytest.raises(Auth.exceptions.HTTPException) as info:
        call(handler, who, resource, action, value)
    return info.value.status_code


def test_thread_create_stamps_the_caller_over_any_client_claim() -> None:
    value: dict[str, Any] = {"thread_id": "t", "metadata": {"owner": "demo", "tenant": "other", "topic": "x"}}
    assert call(handlers.on_thread_create, ALICE, "threads", "create", value) == {"owner": "alice", "tenant": "default"}
    assert value["metadata"] == {"owner": "alice", "tenant": "default", "topic": "x"}
    copy: dict[str, Any] = {"thread_id": "t2"}  # threads.copy sends no metadata
    call(handlers.on_thread_create, RITA, "threads", "create", copy)
    assert copy["metadata"] == {"owner": "rita", "tenant": "default"}


def test_read_and_search_filters_by_role() -> None:
    for handler, action in ((handlers.on_thread_read, "read"), (handlers.on_thread_search, "search")):
        assert call(handler, DEMO, "threads", action, {}) == {"owner": "demo", "tenant": "default"}
        assert call(handler, OTTO, "threads", action, {}) == {"tenant": "other"}
        assert call(handler, ROOT, "threads", action, {}) is None
        assert denied(handler, {"identity": "langgraph-studio-user"}, "threads", action, {}) == 403


def test_updates_never_move_ownership_and_state_writes_are_staff_only() -> None:
    patch = {"thread_id": "t", "metadata": {"owner": "alice", "tenant": "other", "note": "n"}}
    assert call(handlers.on_thread_update, DEMO, "threads", "update", patch) == {"owner": "demo", "tenant": "default"}
    assert patch["metadata"] == {"note": "n"}
    state_write = {"thread_id": "t"}
    assert denied(handlers.on_thread_update, DEMO, "threads", "update", state_write) == 403
    assert call(handlers.on_thread_update, RITA, "threads", "update", state_write) == {"tenant": "default"}
    cancel = {"thread_id": "t", "action": "interrupt", "metadata": {"run_ids": ["r"], "status": None}}
    assert call(handlers.on_thread_update, DEMO, "threads", "update", cancel) == {"owner": "demo", "tenant": "default"}
    assert cancel["metadata"] == {"run_ids": ["r"], "status": None}


def test_deletes_are_for_owners_and_admins() -> None:
    assert call(handlers.on_thread_delete, DEMO, "threads", "delete", {}) == {"owner": "demo", "tenant": "default"}
    assert denied(handlers.on_thread_delete, RITA, "threads", "delete", {}) == 403
    assert call(handlers.on_thread_delete, ROOT, "threads", "delete", {}) is None


def run_value(context: dict | None = None, command: dict | None = None, **extra: Any) -> dict[str, Any]:
    configurable = dict(context or {}, __context_provided__=True)
    return {
        "thread_id": "t",
        "metadata": {"owner": "demo", "x": 1},
        "kwargs": {
            "input": None if command else {"messages": []},
            "command": command,
            "context": dict(context or {}),
            "config": {"configurable": configurable, "metadata": {"tenant": "other"}},
        },
        **extra,
    }


def test_a_customer_run_acts_as_the_key_whatever_context_it_sends() -> None:
    value = run_value({"user_id": "demo", "tenant_id": "other", "role": "admin", "approver_id": "x", "channel": "api"})
    assert call(handlers.on_create_run, ALICE, "threads", "create_run", value) == handlers.owned_by(ALICE)
    kwargs = value["kwargs"]
    assert kwargs["context"] == {
        "user_id": "alice",
        "tenant_id": "default",
        "role": "customer",
        "approver_id": None,
        "channel": "api",
    }
    assert not {"user_id", "tenant_id", "role", "approver_id"} & set(kwargs["config"]["configurable"])
    assert value["metadata"] == {"owner": "alice", "tenant": "default", "x": 1}
    assert kwargs["config"]["metadata"] == {}


def test_only_staff_resume_and_agents_may_only_resume() -> None:
    for command in ({"resume": {"type": "accept"}}, {"goto": "execute_action"}, {"update": {"status": "x"}}):
        assert denied(handlers.on_create_run, DEMO, "threads", "create_run", run_value(command=command)) == 403
    for command in ({"goto": "execute_action"}, {"resume": {"type": "accept"}, "update": {"a": 1}}):
        assert denied(handlers.on_create_run, RITA, "threads", "create_run", run_value(command=command)) == 403
    assert call(handlers.on_create_run, ROOT, "threads", "create_run", run_value(command={"goto": "x"})) is None


def test_a_reviewer_resume_drops_the_client_identity_and_records_the_approver() -> None:
    value = run_value({"user_id": "rita", "tenant_id": "other"}, command={"resume": {"type": "accept"}, "goto": None})
    assert call(handlers.on_create_run, RITA, "threads", "create_run", value) == {"tenant": "default"}
    assert value["kwargs"]["context"] == {"role": "agent", "approver_id": "rita"}
    assert value["metadata"] == {"x": 1}, "a resume must not claim the thread for the reviewer"
    assert value["kwargs"]["config"]["metadata"] == {}
    # a reviewer's own new message goes only to their own thread
    fresh = run_value()
    assert call(handlers.on_create_run, RITA, "threads", "create_run", fresh) == {"owner": "rita", "tenant": "default"}
    assert fresh["kwargs"]["context"]["user_id"] == "rita"


def test_assistants_read_for_all_change_for_admins() -> None:
    for action in ("read", "search"):
        assert call(handlers.on_assistant_lookup, DEMO, "assistants", action, {}) is None
    for action in ("create", "update", "delete"):
        assert denied(handlers.on_assistant_change, RITA, "assistants", action, {}) == 403
        assert call(handlers.on_assistant_change, ROOT, "assistants", action, {}) is None


def test_everything_else_is_for_admins() -> None:
    assert denied(handlers.admins_only, DEMO, "crons", "create", {}) == 403
    assert denied(handlers.admins_only, RITA, "crons", "search", {}) == 403
    assert call(handlers.admins_only, ROOT, "crons", "create", {}) is None


def test_store_namespaces_start_with_the_callers_tenant_and_user() -> None:
    def store(who: Identity, action: str, namespace: tuple[str, ...] | None) -> Any:
        value = {"namespace": namespace, "key": "k"}
        call(handlers.on_store, who, "store", action, value)
        return value["namespace"]

    assert store(DEMO, "put", ("default", "demo", "prefs")) == ("default", "demo", "prefs")
    for action in ("put", "get", "delete"):
        for ns in (("default", "alice", "prefs"), ("default",), (), ("other", "demo")):
            assert denied(handlers.on_store, DEMO, "store", action, {"namespace": ns, "key": "k"}) == 403
    assert store(DEMO, "search", ()) == ("default", "demo")
    assert store(DEMO, "search", ("default",)) == ("default", "demo")
    assert store(DEMO, "list_namespaces", None) == ("default", "demo")
    assert denied(handlers.on_store, DEMO, "store", "search", {"namespace": ("default", "alice")}) == 403
    assert store(RITA, "get", ("default", "demo", "prefs")) == ("default", "demo", "prefs")
    assert denied(handlers.on_store, OTTO, "store", "get", {"namespace": ("default", "demo"), "key": "k"}) == 403
    assert store(OTTO, "search", ()) == ("other",)
    assert store(ROOT, "get", ("other", "x")) == ("other", "x")
    # Ids with "." are stored under "%2E" labels (LangGraph's rule); their owner reaches them, nobody else does.
    jo = Identity(user_id="jo.smith", tenant_id="default", role="customer")
    assert store(jo, "get", ("default", "jo%2Esmith", "prefs")) == ("default", "jo%2Esmith", "prefs")
    assert store(jo, "search", ("default",)) == ("default", "jo%2Esmith")
    assert denied(handlers.on_store, jo, "store", "get", {"namespace": ("default", "jo%2Esmith2"), "key": "k"}) == 403


# ---------------------------------------------------------------- identity in the graph


class FakeRuntime:
    def __init__(self, context: Any = None, user: Any = None) -> None:
        self.context = context
        self.server_info = type("Info", (), {"user": user})() if user is not None else None


def test_context_of_without_a_server_user_trusts_the_local_caller() -> None:
    assert context_of(FakeRuntime()) == Context()
    assert context_of(FakeRuntime({"user_id": "alice", "channel": "cli"})) == Context(user_id="alice", channel="cli")


def test_context_of_takes_a_customers_identity_from_the_authenticated_user() -> None:
    claimed = Context(user_id="demo", tenant_id="other", role="admin", approver_id="x", channel="api")
    ctx = context_of(FakeRuntime(claimed, ALICE.as_user()))
    assert ctx == Context(user_id="alice", tenant_id="default", role="customer", approver_id=None, channel="api")
    with pytest.raises(PermissionError):
        context_of(FakeRuntime(claimed, {"identity": "langgraph-studio-user", "kind": "StudioUser"}))


def run_in_graph(config: dict[str, Any], context: dict[str, Any]) -> Context:
    """context_of inside a real node, where the server's user and thread metadata arrive in the run config."""
    from langgraph.graph import END, START, StateGraph
    from langgraph.runtime import Runtime
    from typing_extensions import TypedDict

    class S(TypedDict, total=False):
        seen: Any

    def node(state: S, runtime: Runtime[Context]) -> dict:
        return {"seen": context_of(runtime)}

    g = StateGraph(S, context_schema=Context)
    g.add_node("node", node)
    g.add_edge(START, "node")
    g.add_edge("node", END)
    return g.compile().invoke({}, config, context=Context(**context))["seen"]


def test_a_reviewers_run_acts_as_the_threads_owner_and_records_the_approver() -> None:
    config = {"configurable": {"langgraph_auth_user": RITA.as_user()}, "metadata": {"owner": "alice", "tenant": "t1"}}
    ctx = run_in_graph(config, {"user_id": "rita", "channel": "api"})
    assert (ctx.user_id, ctx.tenant_id, ctx.role, ctx.approver_id) == ("alice", "t1", "agent", "rita")
    # a thread without a recorded owner (e.g. the reviewer's own) runs as the reviewer
    ctx = run_in_graph({"configurable": {"langgraph_auth_user": RITA.as_user()}}, {"user_id": "demo"})
    assert (ctx.user_id, ctx.tenant_id, ctx.approver_id) == ("rita", "default", "rita")
    ctx = run_in_graph({"configurable": {"langgraph_auth_user": ALICE.as_user()}, "metadata": {"owner": "demo"}}, {})
    assert (ctx.user_id, ctx.role, ctx.approver_id) == ("alice", "customer", None)


def test_context_stays_frozen_and_strict() -> None:
    ctx = Context(role="agent", approver_id="rita")
    with pytest.raises(ValidationError, match="frozen"):
        ctx.user_id = "x"  # type: ignore[misc]
    for bad in ({"role": "root"}, {"approver_id": "bad id"}, {"owner": "x"}):
        with pytest.raises(ValueError):
            Context(**bad)
    assert Context(user_id="alice", tenant_id="t").namespace("prefs") == ("t", "alice", "prefs")


# ---------------------------------------------------------------- the apikey CLI


@pytest.fixture
def apikey(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    from auth.cli import apikey_main

    settings = Settings(data_dir=tmp_path)

    def _run(*argv: str) -> tuple[int, str, str]:
        code = apikey_main(list(argv), settings)
        out, err = capsys.readouterr()
        return code, out, err

    _run.settings = settings  # type: ignore[attr-defined]
    return _run


def test_apikey_create_prints_one_json_object_with_a_working_key(apikey: Any) -> None:
    code, out, err = apikey("create", "--user", "rita", "--tenant", "shop2", "--role", "agent", "--json")
    assert code == 0 and err == ""
    created = json.loads(out)
    assert set(created) >= {"key", "key_id", "user", "tenant", "role"}
    assert (created["user"], created["tenant"], created["role"]) == ("rita", "shop2", "agent")
    identity = KeyStore(apikey.settings.auth_target).lookup(created["key"])
    assert identity is not None and identity.role == "agent"

    code, out, _ = apikey("list", "--json")
    listed = json.loads(out)["keys"]
    assert code == 0 and [k["key_id"] for k in listed] == [created["key_id"]]
    assert created["key"] not in out, "list never shows a key"

    code, out, _ = apikey("revoke", created["key_id"], "--json")
    assert code == 0 and json.loads(out)["revoked_at"]
    assert KeyStore(apikey.settings.auth_target).lookup(created["key"]) is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("create", "--json"), "--user is required"),
        (("create", "--user", "demo", "--role", "root"), "unknown role"),
        (("create", "--user", "bad user!"), "invalid user"),
        (("create", "--user", "demo", "--tenant", "a/b"), "invalid tenant"),
        (("revoke", "000000000000"), "unknown key id"),
        (("create", "--user", "demo", "--bogus"), "unrecognized arguments"),
        (("rotate",), "invalid choice"),
    ],
)
def test_apikey_bad_input_is_one_line_exit_2_and_writes_nothing(apikey: Any, argv: tuple, message: str) -> None:
    code, out, err = apikey(*argv)
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1, err
    assert KeyStore(apikey.settings.auth_target).list() == []


def test_apikey_revoking_twice_is_refused(apikey: Any) -> None:
    _, out, _ = apikey("create", "--user", "demo", "--json")
    key_id = json.loads(out)["key_id"]
    assert apikey("revoke", key_id)[0] == 0
    code, _, err = apikey("revoke", key_id)
    assert code == 2 and "already revoked" in err


def test_app_dispatches_apikey(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    import app

    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))
    assert app.main(["apikey", "create", "--user", "demo", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["user"] == "demo"
    assert (tmp_path / "auth.sqlite").exists()


# ---------------------------------------------------------------- the CLI's owner check


def test_the_cli_refuses_another_customer_on_a_thread(cli: Any) -> None:
    code, out, _ = cli("ask", "Please cancel order 1008, I ordered the wrong keyboard.", "--json")
    assert code == 0 and out["status"] == "awaiting_approval"
    thread = out["thread_id"]
    for argv in (
        ("resume", thread, "--approve", "--user", "alice", "--json"),
        ("resume", thread, "--approve", "--tenant", "other", "--json"),
        ("ask", "Where is my order 1006?", "--thread", thread, "--user", "alice", "--json"),
    ):
        code, out, err = cli(*argv)
        assert code == 2 and out is None and len(err.strip().splitlines()) == 1, err
        assert f"thread {thread} belongs to customer demo" in err
    code, out, _ = cli("resume", thread, "--approve", "--as", "rita", "--json")
    assert code == 0 and out["status"] == "completed"
