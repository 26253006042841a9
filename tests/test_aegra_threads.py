"""The rules cluster/aegra_threads.py applies on Aegra, without Aegra: which caller a thread admits, and when staff
are served under the owner's principal. (tests/test_cluster.py runs them on real Aegra instances.)"""

from __future__ import annotations

from auth.handlers import owned_by, visible_to
from auth.identity import Identity
from cluster.aegra_threads import ThreadRow, acting_principal, admits

DEMO = Identity(user_id="demo")
ALICE = Identity(user_id="alice")
DEMO_OTHER = Identity(user_id="demo", tenant_id="other")  # demo's user id in another tenant
RITA = Identity(user_id="rita", role="agent")
OTTO = Identity(user_id="otto", tenant_id="other", role="agent")
ROOT = Identity(user_id="root", tenant_id="other", role="admin")

DEMOS = ThreadRow("t1", "demo", {"owner": "demo", "tenant": "default", "graph_id": "supervisor"})
RUN_MADE = ThreadRow("t2", "demo", {"owner": "demo", "graph_id": "supervisor"})  # a run created it: no tenant


def test_a_thread_admits_whom_the_handlers_filter_admits() -> None:
    assert admits(visible_to(DEMO), DEMOS, DEMO) and admits(owned_by(DEMO), DEMOS, DEMO)
    assert admits(visible_to(RITA), DEMOS, RITA) and admits(visible_to(ROOT), DEMOS, ROOT)
    assert not admits(visible_to(ALICE), DEMOS, ALICE)
    assert not admits(visible_to(DEMO_OTHER), DEMOS, DEMO_OTHER)  # same principal on Aegra, another tenant
    assert not admits(visible_to(OTTO), DEMOS, OTTO)
    assert not admits(owned_by(RITA), DEMOS, RITA)  # a reviewer's new message on the customer's thread


def test_a_thread_without_a_tenant_is_its_creators_only() -> None:
    assert admits(visible_to(DEMO), RUN_MADE, DEMO)
    assert not admits(visible_to(DEMO_OTHER), ThreadRow("t3", "demo", {"owner": "demo", "tenant": "default"}),
                      DEMO_OTHER)  # fmt: skip
    assert not admits(visible_to(RITA), RUN_MADE, RITA)  # nothing says it is the reviewer's tenant's


def test_a_filter_that_is_not_a_plain_equality_admits_nothing() -> None:
    assert not admits({"tenant": {"$eq": "default"}}, DEMOS, RITA)
    assert not admits({"team": "x"}, DEMOS, RITA)


def test_only_admitted_staff_are_served_under_the_owners_principal() -> None:
    assert acting_principal(visible_to(RITA), DEMOS, RITA) == "demo"
    assert acting_principal(visible_to(ROOT), DEMOS, ROOT) == "demo"
    assert acting_principal(visible_to(OTTO), DEMOS, OTTO) is None
    assert acting_principal(visible_to(RITA), RUN_MADE, RITA) is None
    assert acting_principal(visible_to(DEMO), DEMOS, DEMO) is None  # one's own thread: one's own principal
    assert acting_principal(visible_to(ALICE), DEMOS, ALICE) is None  # customers never
    assert acting_principal(None, DEMOS, ALICE) is None
    moved = ThreadRow("t4", "demo", {"owner": "alice", "tenant": "default"})  # owner metadata not the principal's
    assert acting_principal(visible_to(RITA), moved, RITA) is None
