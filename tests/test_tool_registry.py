"""Every registered tool keeps the tool rules: one job, typed and documented arguments, a declared class,
loud failures, and identity from the runtime only. The test iterates the registry, so a new tool is checked too."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from tools.registry import IDENTITY_ARGS, ToolArgs, ToolSpec, spec_problems
from tools.shop import TOOLS, Caller, ShopDB, run_tool

NOW = datetime(2025, 3, 15, 12, 0, tzinfo=UTC)

# One valid call per tool, for demo; a new tool must add its own here (the first test says so).
SAMPLES: dict[str, dict[str, Any]] = {
    "get_order": {"order_id": 1004},
    "list_orders": {},
    "get_account": {},
    "get_invoice": {"order_id": 1004},
    "get_refund_status": {"order_id": 1002},
    "cancel_order": {"order_id": 1008},
    "issue_refund": {"order_id": 1004, "amount": 5},
    "update_shipping_address": {"order_id": 1009, "address": "Damrak 1, 1012 LG Amsterdam, NL"},
    "update_account": {"field": "phone", "value": "+31611111111"},
    "delete_account": {},  # refused for demo (open orders): still a loud, explained answer
    "set_newsletter_subscription": {"subscribed": False},
    "create_ticket": {"subject": "Broken lamp", "body": "The lamp flickers."},
}


@pytest.fixture
def db(tmp_path: Path) -> ShopDB:
    shop = ShopDB(tmp_path / "shop.sqlite", clock=lambda: NOW)
    shop.seed(today=date(2025, 3, 15))
    return shop


def caller_for(spec: ToolSpec, user: str = "demo") -> Caller:
    return Caller("retrieve_knowledge" if spec.kind == "read" else "execute_action", user)


def test_every_tool_has_a_sample_call() -> None:
    assert set(SAMPLES) == set(TOOLS)


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_each_tool_is_declared_by_the_rules(name: str) -> None:
    spec = TOOLS[name]
    assert spec_problems(spec) == []
    assert spec.kind in ("read", "write", "destructive")
    assert spec.is_write == (spec.kind != "read")
    if spec.kind == "destructive":
        assert spec.permission == "needs_approval"
    # Documented: what it does and when to use it, both told to a model; every argument described.
    assert spec.description and spec.when and spec.when in spec.model_description
    assert issubclass(spec.args_model, ToolArgs) and spec.args_model.model_config["extra"] == "forbid"
    assert (spec.args_model.__doc__ or "").strip()
    for field, info in spec.args_model.model_fields.items():
        assert info.description, f"{name}.{field} has no description"
    # Identity is never an argument: not in the schema a model sees.
    schema_fields = set(spec.args_model.model_json_schema().get("properties", {}))
    assert not schema_fields & IDENTITY_ARGS


def test_the_declared_classes() -> None:
    by_kind = {k: sorted(n for n, s in TOOLS.items() if s.kind == k) for k in ("read", "write", "destructive")}
    assert by_kind["destructive"] == ["cancel_order", "delete_account", "issue_refund"]
    assert by_kind["read"] == ["get_account", "get_invoice", "get_order", "get_refund_status", "list_orders"]


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_each_tool_answers_a_valid_call_and_fails_loudly_on_a_bad_one(db: ShopDB, name: str) -> None:
    spec = TOOLS[name]
    caller = caller_for(spec)
    good = run_tool(db, name, SAMPLES[name], caller=caller, dry_run=spec.is_write)
    assert good.ok or (good.error and good.refusal), good
    if good.ok:
        assert good.data, f"{name} returned an empty success"
    for bad in ({**SAMPLES[name], "unexpected": 1}, ["not", "an", "object"]):
        result = run_tool(db, name, bad, caller=caller)  # type: ignore[arg-type]
        assert not result.ok and result.data == {} and name in (result.error or ""), result
    for forged in sorted(IDENTITY_ARGS):
        result = run_tool(db, name, {**SAMPLES[name], forged: "alice"}, caller=caller)
        assert not result.ok and "identity comes from the session" in (result.error or ""), (forged, result)
    stranger = run_tool(db, name, SAMPLES[name], caller=caller_for(spec, "mallory"), dry_run=spec.is_write)
    assert not stranger.ok and stranger.error == "unknown customer 'mallory'"
    if "order_id" in SAMPLES[name]:
        theirs = run_tool(db, name, {**SAMPLES[name], "order_id": 1011}, caller=caller, dry_run=spec.is_write)
        assert not theirs.ok and "1011 was not found for this customer" in (theirs.error or "")


def test_identity_comes_from_the_caller_not_the_arguments(db: ShopDB) -> None:
    mine = run_tool(db, "get_account", {}, caller=Caller("retrieve_knowledge", "demo")).data
    theirs = run_tool(db, "get_account", {}, caller=Caller("retrieve_knowledge", "alice")).data
    assert mine["email"] == "demo@example.com" and theirs["email"] == "alice.martin@example.com"


class _Args(ToolArgs):
    """Some arguments."""

    order_id: int = Field(description="An order")


def _spec(**over: Any) -> ToolSpec:
    base: dict[str, Any] = dict(
        name="cancel_thing", description="Cancel a thing.", permission="needs_approval", args_model=_Args,
        fn=lambda ctx, args: {}, check=lambda ctx, args: {}, kind="destructive", when="the customer asks.",
    )  # fmt: skip
    return ToolSpec(**{**base, **over})


@pytest.mark.parametrize(
    ("over", "phrase"),
    [
        ({"permission": "write", "check": None}, "a destructive tool needs approval"),
        ({"kind": "read"}, "does not match permission"),
        ({"when": ""}, "when (when to use it) are required"),
        ({"name": "do_everything"}, "one verb and its object"),
        ({"check": None}, "declares its preconditions"),
    ],
)
def test_a_tool_breaking_the_rules_cannot_be_registered(over: dict[str, Any], phrase: str) -> None:
    assert _spec().name == "cancel_thing"
    with pytest.raises(ValueError, match=re.escape(phrase)):
        _spec(**over)


def test_identity_and_undocumented_arguments_are_rejected() -> None:
    class Forged(ToolArgs):
        """Arguments a model could use to act for someone else."""

        tenant_id: str = Field(description="whose")
        order_id: int

    with pytest.raises(ValueError) as info:
        _spec(args_model=Forged)
    assert "'tenant_id' would let a model choose the identity" in str(info.value)
    assert "argument 'order_id' needs a description" in str(info.value)
