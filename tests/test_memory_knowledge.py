"""Long-term memory on Chroma: chunking, idempotent upserts, namespacing, recency ranking, persistence."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from memory.knowledge import (
    Article,
    ChromaMemory,
    LongTermMemory,
    ResolvedCase,
    chunk_markdown,
    load_articles,
    parse_markdown,
)
from tests.clock import FakeClock
from tests.embedders import HashingEmbedder

REPO = Path(__file__).resolve().parent.parent
DAY = 86400.0




def paragraph(topic: str, n: int = 60) -> str:
    return " ".join(f"{topic} detail{i}" for i in range(n // 2)) + "."


ARTICLES = [
    Article(
        "kb-refunds",
        "Refund timing",
        f"# Refund timing\n\n{paragraph('refund')}\n\n## Card refunds\n\n{paragraph('card refund bank')}",
        intents=["get_refund", "track_refund"],
    ),
    Article(
        "kb-delivery",
        "Delivery options",
        f"# Delivery\n\n{paragraph('delivery courier')}",
        intents=["delivery_options"],
    ),
    Article(
        "kb-password",
        "Recover your password",
        f"# Password\n\n{paragraph('password reset email link')}",
        intents=["recover_password"],
    ),
]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000.0)


@pytest.fixture
def mem(clock: FakeClock) -> ChromaMemory:
    return ChromaMemory.ephemeral(HashingEmbedder(128), clock=clock, min_relevance=0.0)


@pytest.mark.filterwarnings("ignore:legacy embedding function config:DeprecationWarning")
def test_chroma_memory_satisfies_protocol_and_never_uses_a_chroma_embedding_function(
    mem: ChromaMemory,
) -> None:
    assert isinstance(mem, LongTermMemory)
    mem.upsert_articles(ARTICLES)
    mem.add_case(CASE, tenant_id="t1", user_id="alice", shared=False)
    mem.add_case(CASE, tenant_id="t1", user_id="bob", shared=True)
    handles = [
        mem.collection("kb", "default"),
        mem.collection("cases", "t1", "alice"),
        mem.collection("shared_cases", "t1"),
    ]
    assert sorted(h.name for h in handles) == mem.collection_names()  # nothing else was created
    for collection in handles:
        assert collection._embedding_function is None
        assert collection.configuration["embedding_function"] is None  # persisted config too
        assert collection.configuration["hnsw"]["space"] == "cosine"
    with pytest.raises(ValueError):  # Chroma cannot embed on its own: no default model download possible
        mem.collection("kb", "default").query(query_texts=["refund"], n_results=1)


def test_chunk_markdown_respects_size_and_headings() -> None:
    text = "\n\n".join(
        f"## Section {s}\n\n{paragraph(f'topic{s}', 80)}\n\n{paragraph('more', 70)}" for s in range(6)
    )
    chunks = chunk_markdown(text)
    sizes = [len(c.split()) for c in chunks]
    assert len(chunks) >= 5
    assert max(sizes) <= 240 and min(sizes) >= 60
    assert all(c.startswith("## Section") for c in chunks)  # a heading opens each chunk here
    long_sentence = "word " * 700
    assert max(len(c.split()) for c in chunk_markdown(long_sentence)) <= 200


def test_parse_markdown_front_matter_and_fallbacks() -> None:
    doc = (
        "---\nid: kb-x\ntitle: X title\nintents: [a, b]\nhttp_status: [402]\nupdated: 2024-05-01\n---\n"
        "# H\n\nBody."
    )
    article = parse_markdown(doc, "fallback")
    assert (article.id, article.title, article.intents, article.http_status) == (
        "kb-x",
        "X title",
        ["a", "b"],
        [402],
    )
    assert article.updated is not None and article.text.startswith("# H")
    bare = parse_markdown("# Just a heading\n\nText", "dir/file")
    assert (bare.id, bare.title) == ("dir/file", "Just a heading")
    with pytest.raises(ValueError):
        parse_markdown("---\n[unclosed\n---\nbody", "x")


def test_load_demo_kb_articles() -> None:
    articles = load_articles(REPO / "demo" / "kb")
    assert articles, "demo/kb has no articles: the demo knowledge base is part of the repository"
    ids = [a.id for a in articles]
    assert len(ids) == len(set(ids))
    assert all(a.title and a.text and a.intents for a in articles)


def test_upsert_is_idempotent_and_replaces_changed_content(mem: ChromaMemory) -> None:
    first = mem.upsert_articles(ARTICLES)
    assert first.chunks_added >= 3 and first.chunks_unchanged == 0
    total = mem.count()["kb"]
    assert total == first.chunks_added
    again = mem.upsert_articles(ARTICLES)
    assert (again.chunks_added, again.chunks_unchanged, again.chunks_removed) == (0, total, 0)
    kb = mem.collection("kb", "default")
    old_delivery = len(kb.get(where={"article_id": "kb-delivery"}, include=[])["ids"])
    changed = Article(
        "kb-delivery",
        "Delivery options",
        "# Delivery\n\nNew text about parcel lockers only.",
        intents=["delivery_options"],
    )
    report = mem.upsert_articles([changed])
    assert (report.chunks_added, report.chunks_removed) == (1, old_delivery)
    assert mem.count()["kb"] == total - old_delivery + 1
    hits = mem.search_knowledge("parcel lockers", k=5)
    delivery = [h for h in hits if h.article_id == "kb-delivery"]
    assert delivery and "parcel lockers" in delivery[0].text
    assert mem.delete_article("kb-delivery") == 1
    assert mem.count()["kb"] == total - old_delivery


def test_known_issues_carry_intents_and_an_edited_section_replaces_the_old_text(mem: ChromaMemory) -> None:
    def issue(body: str) -> Article:
        return Article("kb-ki-x", "X-500: checkout failed", body, intents=["place_order", "payment_issue"],
                       kind="known_issue", error_codes=["X-500"], http_status=[500])

    fix = "## Fix or workaround\n\nAsk the customer to retry."
    agents = f"# X-500\n\n## Symptom\n\n{paragraph('checkout fails')}\n\n{fix}"
    mem.upsert_articles([issue(agents)])
    [known] = mem.known_issues()
    assert (known["intents"], known["error_codes"], known["http_status"]) == (["place_order", "payment_issue"],
                                                                              ["X-500"], [500])
    customer = agents.replace(fix, f"## What you can do\n\nPlace your order again.\n\n{fix}")
    report = mem.upsert_articles([issue(customer)])  # what `app.py seed` does with an edited demo/kb article
    assert report.chunks_added >= 1 and report.chunks_removed >= 1
    [known] = mem.known_issues()
    assert "## What you can do\n\nPlace your order again." in known["body"] and known["body"].count("X-500") == 1


def test_search_knowledge_ranks_dedupes_and_filters_by_intent(mem: ChromaMemory) -> None:
    mem.upsert_articles(ARTICLES)
    hits = mem.search_knowledge("card refund bank detail3", k=5)
    assert hits[0].article_id == "kb-refunds"
    assert len({h.article_id for h in hits}) == len(hits)  # one chunk per article
    assert hits[0].relevance > 0.2 and hits[0].recency == pytest.approx(1.0)
    assert hits[0].score == pytest.approx(0.7 * hits[0].relevance + 0.3 * hits[0].recency)
    only = mem.search_knowledge("card refund bank", k=5, intents=["recover_password", "delivery_options"])
    assert {h.article_id for h in only} <= {"kb-password", "kb-delivery"} and only


def test_kb_is_tenant_scoped(mem: ChromaMemory) -> None:
    mem.upsert_articles(
        [Article("kb-acme", "Acme secret", "acme internal refund procedure", tenant_id="acme")]
    )
    mem.upsert_articles(ARTICLES)
    assert all(
        h.article_id != "kb-acme" for h in mem.search_knowledge("acme internal refund procedure", k=10)
    )
    acme = mem.search_knowledge("acme internal refund procedure", tenant_id="acme", k=10)
    assert [h.article_id for h in acme] == ["kb-acme"]


CASE = ResolvedCase(
    problem="card declined with error 402 at checkout",
    cause="3-D Secure timeout",
    fix="retry payment after bank app approval",
    outcome="paid",
    intent="payment_issue",
)


def test_cases_are_private_unless_shared_and_never_cross_tenants(mem: ChromaMemory) -> None:
    own = mem.add_case(CASE, tenant_id="t1", user_id="alice", shared=False)
    assert [h.id for h in mem.search_cases("card declined 402", tenant_id="t1", user_id="alice")] == [own]
    assert mem.search_cases("card declined 402", tenant_id="t1", user_id="bob") == []
    shared_case = ResolvedCase(problem="card declined 402 again", cause="bank limit", fix="raise the limit")
    shared = mem.add_case(shared_case, tenant_id="t1", user_id="carol", shared=True)
    bob = mem.search_cases("card declined 402", tenant_id="t1", user_id="bob")
    assert [h.id for h in bob] == [shared]
    assert bob[0].metadata["fix"] == "raise the limit"
    assert mem.search_cases("card declined 402", tenant_id="t2", user_id="alice") == []
    assert mem.search_cases("card declined 402", tenant_id="t2", user_id="carol") == []
    assert mem.add_case(CASE, tenant_id="t1", user_id="alice", shared=False) == own  # idempotent id


def test_a_preference_collection_from_before_the_store_is_counted_and_forgotten(mem: ChromaMemory) -> None:
    """Preferences live in the LangGraph store now (memory.user_store); an old `up` collection is not read, not
    migrated, but still counted and dropped with the rest of the user's memory."""
    assert not hasattr(mem, "set_preference") and not hasattr(mem, "get_preferences")
    old = mem.collection("prefs", "t1", "alice", create=True)
    meta = {"tenant_id": "t1", "user_id": "alice", "key": "contact", "value": '"sms"', "ts": 0.0}
    old.add(ids=["pref-1"], documents=["contact: sms"], metadatas=[meta], embeddings=mem.embedder.embed(["x"]))
    assert mem.count()["prefs"] == 1
    assert mem.forget_user("t1", "bob") == 0
    assert mem.forget_user("t1", "alice") == 1
    assert mem.collection("prefs", "t1", "alice") is None and mem.count()["prefs"] == 0


def test_results_are_rechecked_even_if_a_record_lands_in_the_wrong_collection(mem: ChromaMemory) -> None:
    """Isolation is structural, but a misrouted write (a bug, a manual import) must still not leak."""
    mem.add_case(CASE, tenant_id="t1", user_id="bob", shared=False)
    mem.upsert_articles(ARTICLES[:1])
    vector = mem.embedder.embed(["card declined 402 internal"])
    foreign = {"tenant_id": "t2", "user_id": "mallory", "shared": True, "ts": 0.0, "title": "x"}
    for collection in (
        mem.collection("cases", "t1", "bob"),
        mem.collection("shared_cases", "t1", create=True),
        mem.collection("kb", "default"),
    ):
        collection.add(
            ids=["planted"], embeddings=vector, documents=["card declined 402 internal"], metadatas=[foreign]
        )
    bob = mem.search_cases("card declined 402 internal", tenant_id="t1", user_id="bob", k=10)
    assert bob and "planted" not in {h.id for h in bob}
    assert "planted" not in {h.id for h in mem.search_knowledge("card declined 402 internal", k=10)}


def test_each_namespace_has_its_own_collection(mem: ChromaMemory) -> None:
    names = {
        mem.collection_name("cases", "t1", "alice"),
        mem.collection_name("cases", "t1", "bob"),
        mem.collection_name("cases", "t2", "alice"),
        mem.collection_name("prefs", "t1", "alice"),
        mem.collection_name("shared_cases", "t1"),
        mem.collection_name("kb", "t1"),
        mem.collection_name("cases", "t1\x1fx", "y"),
        mem.collection_name("cases", "t1", "x\x1fy"),
    }
    assert len(names) == 8
    long_name = mem.collection_name("cases", "tenant " * 40, "ünïcode user/" * 30)
    for name in names | {long_name}:
        assert re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,61}[a-zA-Z0-9]", name), name
    mem.add_case(CASE, tenant_id="t1", user_id="alice", shared=False)
    own = mem.collection("cases", "t1", "alice")
    assert own is mem.collection("cases", "t1", "alice")  # cached handle
    assert own.name == mem.collection_name("cases", "t1", "alice") and own.count() == 1
    assert mem.collection("cases", "t1", "bob") is None
    with pytest.raises(ValueError):
        ChromaMemory(mem.client, mem.embedder, prefix="bad prefix!")


def test_handle_cache_is_thread_safe(mem: ChromaMemory) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        handles = list(pool.map(lambda _: mem.collection("cases", "t1", "alice", create=True), range(32)))
    assert len({id(h) for h in handles}) == 1
    assert len(mem.collection_names()) == 1


def test_queries_for_a_never_seen_user_or_tenant_create_no_collection(mem: ChromaMemory) -> None:
    mem.upsert_articles(ARTICLES)
    mem.add_case(CASE, tenant_id="t1", user_id="alice", shared=True)
    before = mem.collection_names()
    assert mem.search_cases("card declined 402", tenant_id="t1", user_id="ghost") != []  # shared one
    assert mem.search_cases("card declined 402", tenant_id="t9", user_id="ghost") == []
    assert mem.search_knowledge("refund", tenant_id="t9") == []
    assert mem.forget_user("t9", "ghost") == 0
    assert mem.delete_article("kb-refunds", tenant_id="t9") == 0
    assert mem.collection_names() == before


def test_sharing_moves_a_case_and_forget_user_removes_what_they_authored(mem: ChromaMemory) -> None:
    cid = mem.add_case(CASE, tenant_id="t1", user_id="alice", shared=False)
    assert mem.add_case(CASE, tenant_id="t1", user_id="alice", shared=True) == cid  # promoted, not copied
    assert mem.count()["cases"] == 1
    assert [h.id for h in mem.search_cases("card declined 402", tenant_id="t1", user_id="bob")] == [cid]
    mem.add_case(CASE, tenant_id="t1", user_id="bob", shared=False)
    assert mem.forget_user("t1", "alice") == 1  # the shared case she authored
    assert mem.collection("cases", "t1", "alice") is None and mem.collection("prefs", "t1", "alice") is None
    assert [h.metadata["user_id"] for h in mem.search_cases("card", tenant_id="t1", user_id="bob")] == ["bob"]


def test_a_collection_deleted_by_another_instance_is_re_resolved(mem: ChromaMemory) -> None:
    mem.add_case(CASE, tenant_id="t1", user_id="alice", shared=False)
    assert mem.search_cases("card declined 402", tenant_id="t1", user_id="alice")  # handle now cached
    other = ChromaMemory(mem.client, mem.embedder, prefix=mem.prefix, min_relevance=0.0)
    assert other.forget_user("t1", "alice") == 1
    assert mem.search_cases("card declined 402", tenant_id="t1", user_id="alice") == []
    again = mem.add_case(CASE, tenant_id="t1", user_id="alice", shared=False)
    assert [h.id for h in other.search_cases("card declined 402", tenant_id="t1", user_id="alice")] == [again]


def test_recency_blending_changes_order(clock: FakeClock) -> None:
    embedder = HashingEmbedder(128)
    blended = ChromaMemory.ephemeral(embedder, clock=clock, min_relevance=0.0, half_life_days=30)
    old = blended.add_case(
        ResolvedCase("parcel lost in transit courier", "depot scan missing", "reship"),
        tenant_id="t",
        user_id="u",
        shared=False,
    )
    clock.now += 120 * DAY
    new = blended.add_case(
        ResolvedCase("parcel lost courier", "label damaged", "refund issued"),
        tenant_id="t",
        user_id="u",
        shared=False,
    )
    relevance_only = ChromaMemory(
        blended.client,
        embedder,
        clock=clock,
        min_relevance=0.0,
        relevance_weight=1.0,
        recency_weight=0.0,
        prefix=blended.prefix,
    )
    query = "parcel lost in transit courier"
    by_relevance = relevance_only.search_cases(query, tenant_id="t", user_id="u")
    by_blend = blended.search_cases(query, tenant_id="t", user_id="u")
    assert [h.id for h in by_relevance] == [old, new]
    assert [h.id for h in by_blend] == [new, old]
    assert by_blend[1].recency == pytest.approx(0.5**4, rel=1e-3)  # 120 days = 4 half-lives


def test_min_relevance_drops_unrelated_hits(clock: FakeClock) -> None:
    strict = ChromaMemory.ephemeral(HashingEmbedder(128), clock=clock, min_relevance=0.25)
    strict.upsert_articles(ARTICLES)
    assert strict.search_knowledge("zebra quantum violin") == []
    assert strict.search_knowledge("password reset email link")[0].article_id == "kb-password"


def test_persistent_store_survives_a_new_process(tmp_path: Path) -> None:
    store = tmp_path / "chroma"
    first = ChromaMemory.persistent(store, HashingEmbedder(128), min_relevance=0.0)
    first.upsert_articles(ARTICLES)
    first.add_case(CASE, tenant_id="t1", user_id="alice", shared=False)
    expected = first.count()
    del first
    script = textwrap.dedent(
        f"""
        import json
        from memory.knowledge import ChromaMemory
        from tests.embedders import HashingEmbedder
        mem = ChromaMemory.persistent({str(store)!r}, HashingEmbedder(128), min_relevance=0.0)
        print(json.dumps({{
            "count": mem.count(),
            "top": mem.search_knowledge("password reset email link")[0].article_id,
            "again": mem.upsert_articles({ARTICLES!r}).chunks_added,
        }}))
        """
    )
    script = "from memory.knowledge import Article\n" + script
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"count": expected, "top": "kb-password", "again": 0}
