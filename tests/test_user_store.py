"""Per-user memory in the LangGraph store (memory.user_store): preferences and cross-thread working memory,
namespaced by (tenant, user) from the run context, read back in another thread of the same customer only."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langgraph.store.memory import InMemoryStore

from graphs.context import Context
from memory.user_store import (
    forget_user,
    load_preferences,
    load_working,
    namespace_of,
    note_working,
    open_store,
    save_preferences,
)
from tests.test_cli import cli, data_dir  # noqa: F401 - fixtures

ALICE = Context(tenant_id="t1", user_id="alice")
BOB = Context(tenant_id="t1", user_id="bob")
ALICE_T2 = Context(tenant_id="t2", user_id="alice")


def stored_rows(target: str, query: str = "SELECT prefix, key FROM store ORDER BY prefix, key") -> list[tuple]:
    """Rows of the store's own table, read straight from the database."""
    if target.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(target) as conn:
            cur = conn.execute(query)  # type: ignore[arg-type]
            return [tuple(r) for r in cur.fetchall()] if cur.description else []
    with sqlite3.connect(target) as conn:
        return conn.execute(query).fetchall()


def test_preferences_are_per_user_and_tenant_in_the_store(sql_target: Callable[[str], str]) -> None:
    """On each backend Settings.store_target selects: a SQLite file, or Postgres (PostgresStore) with a URL."""
    path = sql_target("store.sqlite")
    with open_store(path) as store:
        save_preferences(store, ALICE, {"contact": "email", "language": {"code": "de"}})
        save_preferences(store, ALICE, {"contact": "sms"})  # a later value replaces
        save_preferences(store, BOB, {"contact": "post"})
    with open_store(path) as store:  # a new process reads what the last one wrote
        assert load_preferences(store, ALICE) == {"contact": "sms", "language": {"code": "de"}}
        assert load_preferences(store, BOB) == {"contact": "post"}
        assert load_preferences(store, ALICE_T2) == {}
        item = store.get(("t1", "alice", "prefs"), "contact")
        assert item is not None and item.value == {"value": "sms"}
    rows = stored_rows(path)
    assert rows == [("t1.alice.prefs", "contact"), ("t1.alice.prefs", "language"), ("t1.bob.prefs", "contact")]


def test_an_id_with_a_period_gets_its_own_namespace() -> None:
    store = InMemoryStore()
    dotted, plain = Context(tenant_id="t1", user_id="a.b"), Context(tenant_id="t1", user_id="a")
    assert namespace_of(dotted, "prefs") == ("t1", "a%2Eb", "prefs")  # a store label cannot hold "."
    save_preferences(store, dotted, {"contact": "email"})
    assert load_preferences(store, dotted) == {"contact": "email"}
    assert load_preferences(store, plain) == {}
    with pytest.raises(ValueError):
        namespace_of(plain, "cases")


class LeakyStore(InMemoryStore):
    """A store whose search ignores the namespace: every item of every user comes back."""

    def search(self, namespace_prefix: tuple[str, ...], /, **kwargs: Any) -> list[Any]:
        return super().search((), **kwargs)


def test_a_read_drops_items_outside_the_callers_namespace() -> None:
    store = LeakyStore()
    save_preferences(store, BOB, {"contact": "post"})
    save_preferences(store, ALICE_T2, {"contact": "fax"})
    note_working(store, BOB, "last_action", {"tool": "cancel_order"}, ttl_seconds=60)
    assert len(store.search(("t1", "alice", "prefs"))) == 3  # the store itself leaks
    assert load_preferences(store, ALICE) == {}
    assert load_working(store, ALICE) == {}
    save_preferences(store, ALICE, {"contact": "email"})
    assert load_preferences(store, ALICE) == {"contact": "email"}


def test_working_memory_expires_and_the_store_gets_its_ttl(sql_target: Callable[[str], str]) -> None:
    now = [1_000.0]
    target = sql_target("store.sqlite")
    with open_store(target) as store:
        note_working(store, ALICE, "last_action", {"tool": "cancel_order", "ok": True}, ttl_seconds=600,
                     clock=lambda: now[0])  # fmt: skip
        assert load_working(store, ALICE, clock=lambda: now[0] + 599) == {
            "last_action": {"tool": "cancel_order", "ok": True, "expires_at": 1_600.0}
        }
        assert load_working(store, ALICE, clock=lambda: now[0] + 600) == {}
        assert load_working(store, BOB, clock=lambda: now[0]) == {}
        [(ttl,)] = stored_rows(target, "SELECT ttl_minutes FROM store WHERE key = 'last_action'")
        assert float(ttl) == pytest.approx(10.0)
        with pytest.raises(ValueError):
            note_working(store, ALICE, "last_action", {}, ttl_seconds=0)


def test_opening_the_store_sweeps_expired_items(sql_target: Callable[[str], str]) -> None:
    target = sql_target("store.sqlite")
    with open_store(target) as store:
        note_working(store, ALICE, "last_action", {"tool": "cancel_order"}, ttl_seconds=600)
        note_working(store, BOB, "last_action", {"tool": "issue_refund"}, ttl_seconds=600)
    stored_rows(target, "UPDATE store SET expires_at = '2000-01-01 00:00:00' WHERE prefix LIKE '%alice%'")
    with open_store(target) as store:  # setup again (idempotent), then the sweep
        assert [prefix for prefix, _ in stored_rows(target)] == [".".join(namespace_of(BOB, "working"))]
        assert list(load_working(store, BOB)) == ["last_action"]


def test_forget_user_removes_preferences_and_working_memory_of_that_user_only() -> None:
    store = InMemoryStore()
    save_preferences(store, ALICE, {"contact": "email", "avoid": "call"})
    note_working(store, ALICE, "last_action", {"tool": "issue_refund"}, ttl_seconds=60)
    save_preferences(store, BOB, {"contact": "post"})
    assert forget_user(store, "t1", "alice") == 3
    assert load_preferences(store, ALICE) == {} and load_working(store, ALICE) == {}
    assert load_preferences(store, BOB) == {"contact": "post"}


def pinned_of(directory: Path, thread: str) -> dict[str, Any]:
    from config.settings import Settings
    from memory.checkpointer import open_checkpointer

    settings = Settings(data_dir=directory)
    with open_checkpointer(settings.checkpoint_target) as saver:
        saved = saver.get_tuple({"configurable": {"thread_id": thread}})
    assert saved is not None
    return dict(saved.checkpoint["channel_values"].get("pinned") or {})


def test_preferences_said_in_one_thread_are_pinned_in_the_next_thread_of_that_customer_only(
    cli: Any, data_dir: Path  # noqa: F811
) -> None:
    said = "Please contact me by email and do not call me. How long does delivery take?"
    code, out, err = cli("ask", said, "--user", "demo", "--thread", "first", "--json")
    assert code == 0, err
    assert pinned_of(data_dir, "first")["preferences"] == {"contact": "email", "avoid": "call"}
    with open_store(data_dir / "store.sqlite") as store:  # the store holds them, namespaced by tenant and user
        assert load_preferences(store, Context(user_id="demo")) == {"contact": "email", "avoid": "call"}
        assert [i.namespace for i in store.search(("default",), limit=100)] == [("default", "demo", "prefs")] * 2

    for user, tenant, thread in (("demo", "default", "second"), ("rita", "default", "other-user"),
                                 ("demo", "acme", "other-tenant")):  # fmt: skip
        code, out, err = cli("ask", "How long does delivery take?", "--user", user, "--tenant", tenant,
                             "--thread", thread, "--json")  # fmt: skip
        assert code == 0, err
    assert pinned_of(data_dir, "second")["preferences"] == {"contact": "email", "avoid": "call"}
    assert "preferences" not in pinned_of(data_dir, "other-user")
    assert "preferences" not in pinned_of(data_dir, "other-tenant")

    code, out, _ = cli("memory", "--user", "demo", "--json")
    assert code == 0 and out["preferences"] == {"contact": "email", "avoid": "call"}
    code, out, _ = cli("memory", "--user", "rita", "--json")
    assert code == 0 and out["preferences"] == {}


def test_an_approved_action_is_in_the_customers_working_memory_for_every_thread(cli: Any, data_dir: Path) -> None:  # noqa: F811
    code, out, err = cli("ask", "Please cancel order 1008, I ordered the wrong keyboard.", "--json")
    assert code == 0 and out["status"] == "awaiting_approval", err
    code, out, err = cli("resume", out["thread_id"], "--approve", "--json")
    assert code == 0 and out["status"] == "completed", err
    with open_store(data_dir / "store.sqlite") as store:
        working = load_working(store, Context(user_id="demo"))
        assert load_working(store, Context(user_id="rita")) == {}
    last = working["last_action"]
    assert (last["tool"], last["ok"], last["thread_id"]) == ("cancel_order", True, out["thread_id"])
    code, shown, _ = cli("memory", "--user", "demo", "--json")
    assert code == 0 and shown["working"]["last_action"]["thread_id"] == out["thread_id"]
