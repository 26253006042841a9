"""Long-term memory on a Chroma server (`chroma run`) by URL: two clients (two instances) share one store, vectors
are ours (no Chroma embedding function ever runs), and settings switch the services over with one URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from config.settings import Settings
from memory.knowledge import ChromaMemory, LongTermMemory, ResolvedCase
from tests.chroma_server import chroma_server
from tests.embedders import HashingEmbedder
from tests.test_memory_knowledge import ARTICLES, CASE

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:legacy embedding function config:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("chroma-server")
    with chroma_server(root / "store", root / "chroma.log") as url:
        yield url


def test_two_instances_share_one_server(chroma_url: str) -> None:
    embedder = HashingEmbedder(128)
    a = ChromaMemory.http(chroma_url, embedder, min_relevance=0.0, prefix="share")
    b = ChromaMemory.http(chroma_url, embedder, min_relevance=0.0, prefix="share")
    assert isinstance(a, LongTermMemory)
    assert type(a.client).__name__ == "Client" and a.client.get_settings().chroma_api_impl.endswith("FastAPI")
    report = a.upsert_articles(ARTICLES)
    assert report.chunks_added >= 3
    assert b.count()["kb"] == report.chunks_added  # written by one instance, counted by the other
    hits = b.search_knowledge("how long does a card refund take", k=3)
    assert hits and hits[0].article_id == "kb-refunds"
    case_id = b.add_case(CASE, tenant_id="t1", user_id="alice", shared=False)
    assert [h.id for h in a.search_cases("card declined 402", tenant_id="t1", user_id="alice")] == [case_id]
    assert a.search_cases("card declined 402", tenant_id="t1", user_id="bob") == []
    again = b.upsert_articles(ARTICLES)
    assert again.chunks_added == 0 and again.chunks_unchanged == report.chunks_added


def test_vectors_are_ours_and_the_server_never_embeds(chroma_url: str) -> None:
    embedder = HashingEmbedder(128)
    mem = ChromaMemory.http(chroma_url, embedder, prefix="vectors")
    mem.upsert_articles(ARTICLES[:1])
    kb = mem.collection("kb", "default")
    stored = kb.get(include=["embeddings", "documents", "metadatas"])
    texts = [f"{meta['title']}\n{doc}" for doc, meta in zip(stored["documents"], stored["metadatas"], strict=True)]
    assert np.allclose(np.asarray(stored["embeddings"]), embedder.embed(texts), atol=1e-6)
    assert kb.configuration["embedding_function"] is None and kb.configuration["hnsw"]["space"] == "cosine"
    with pytest.raises(ValueError):  # no embedding function: the server cannot be asked to embed text
        kb.query(query_texts=["refund"], n_results=1)


def test_a_bad_url_is_refused_before_any_request() -> None:
    with pytest.raises(ValueError, match="http://HOST:PORT"):
        ChromaMemory.http("chroma.internal:8000", HashingEmbedder(16))


def test_settings_put_the_services_on_the_server(
    chroma_url: str, seeded_settings: Settings, embedder: Any, tmp_path: Path
) -> None:
    from graphs.services import build_services, seed

    settings = seeded_settings.model_copy(update={"chroma_url": chroma_url})
    counts = seed(settings, embedder=embedder)  # the demo knowledge base, into the server
    assert counts["kb"]["chunks_added"] > 0 or counts["kb"]["chunks_unchanged"] > 0
    services = build_services(settings, embedder=embedder, auto_seed=False)
    assert services.knowledge.client.get_settings().chroma_api_impl.endswith("FastAPI")
    hits = services.knowledge.search_knowledge("How long does a refund take to reach my card?", k=3)
    assert hits and any("refund" in h.article_id for h in hits)
    services.knowledge.add_case(
        ResolvedCase(problem="locker code missing", cause="sms delay", fix="resend the code"),
        tenant_id="default",
        user_id="demo",
        shared=False,
    )
    local = ChromaMemory.persistent(seeded_settings.data_dir / "chroma", embedder)
    assert local.search_cases("locker code", tenant_id="default", user_id="demo") == []  # not the embedded store
    services.shop.close()
