"""Memory benchmark: session compression, embedding throughput, Chroma at scale, KB retrieval quality.

    python app.py bench memory [--data-dir ../shared/data] [--quick] --json
    python -m bench.memory --quick --json

Parts:

1. Tokens: a deterministic 100-turn scripted support conversation goes through `compress()` and
   `build_context()` with the policy defaults; context tokens per turn are compared with the naive full
   history (PNG plot beside the JSON report).
2. Embedding throughput of the MiniLM embedder on short support sentences (batch 64, median of 3 runs).
3. Chroma: 100,000 resolved cases (10,000 with --quick) stored through `ChromaMemory` in its layout of one
   collection per (tenant, user): 1,000 users x 99 private cases across 10 tenants, plus 100 shared cases
   per tenant in each tenant's shared collection (100 users and 10 per tenant with --quick), in a
   PersistentClient. Vectors: a base of real MiniLM embeddings of synthetic support sentences (10,000;
   2,000 with --quick), each memory being a random base vector plus Gaussian noise (sigma 0.03 per
   dimension, then re-normalised; cosine to its base ~0.87), because embedding 100k texts on 2 shared
   cores takes minutes. Queries are real embeddings of unseen sentences served from a lookup, and
   latency excludes embedding: `search_cases(k=5)` for one user (own + tenant-shared collection), cold
   (fresh client) and warm, plus a raw single-collection query. Recall@5 is measured against exact numpy
   search over the records that user may see.
4. Retrieval quality: held-out Bitext questions (sha1(instruction) % 5 == 0) against demo/kb; a hit is
   an article whose `intents` contains the question's intent. Skipped with a note without the data.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memory.embedder import CachedEmbedder, Embedder
from memory.knowledge import ChromaMemory, ResolvedCase, load_articles
from memory.session import TOKEN_COUNTER, build_context, compress, count_tokens

REPO = Path(__file__).resolve().parent.parent
REPORTS = REPO / "bench" / "reports"
BITEXT_CSV = "bitext-customer-support/Bitext_Sample_Customer_Support_Training_Dataset.csv"

from bench.embeddings import _SUBJECTS, _TAILS, _VERBS  # noqa: E402 - one vocabulary for both benchmarks


def synthetic_sentences(n: int, seed: int) -> list[str]:
    """`n` short, deterministic support-style sentences."""
    rng = random.Random(seed)
    return [
        f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_TAILS)} (ref {rng.randrange(10_000)})"
        for _ in range(n)
    ]


# ------------------------------------------------------------------------------------------- tokens

_USER_LINES = [
    "The blue kettle I ordered still has not arrived and the tracking page has not changed since Monday.",
    "Could you check which courier has it and whether it is stuck in a depot somewhere near my town?",
    "I was also charged twice for the same basket, once by card and once through the wallet app.",
    "Can the duplicate payment be refunded to the card rather than as store credit, please?",
    "My invoice lists the old billing name; I need it corrected for my company's expense report.",
    "I would also like to change the delivery address for my next order to my office.",
    "The discount code from the newsletter was rejected at checkout even though it is still valid.",
    "How long does a refund usually take to show up on a credit card statement?",
    "Is there a cancellation fee if I cancel the second order before it ships?",
    "Please tell me what happens to the warranty if the replacement arrives after the return window.",
]
_ASSISTANT_LINES = [  # about 100 words each, close to the median Bitext reference answer (669 characters)
    "I have looked at the shipment history for you. The parcel left our warehouse on time, but the "
    "carrier has not scanned it since it reached their regional hub. I have opened an investigation "
    "with them, which usually takes two working days. If they cannot locate it by then, we will send "
    "a replacement at no cost, or refund the order if you prefer. You do not need to do anything "
    "meanwhile; we will email you as soon as the carrier answers, and the tracking link in your "
    "account will update automatically.",
    "Thanks for flagging the double charge. I can see one card payment and one wallet payment for the "
    "same basket. The wallet payment will be reversed automatically within three to five working days, "
    "and I have added a note so our payments team confirms the reversal and emails you once it is "
    "complete. If your bank shows the wallet charge as pending, it may simply drop off without a "
    "separate refund line. Either way, you will only pay once for this order, and nothing else is "
    "needed from you.",
    "I have updated the billing name on the invoice and generated a corrected copy. You can download "
    "it from the Orders page at any time, and the previous version has been withdrawn so it will not "
    "be used for your expense report. Future invoices will use the new name automatically. If your "
    "company also needs a VAT number or a purchase order reference on the invoice, add it under "
    "Account settings and request a new copy; corrected invoices are usually ready within a few "
    "minutes.",
    "Refunds to a credit card normally appear within five to ten working days, depending on your bank. "
    "The refund has already been issued on our side, so if nothing shows up after ten working days, "
    "reply here and we will send you the bank reference so your card issuer can trace it. Some banks "
    "show the refund as a reversal of the original payment rather than a new credit, so it is worth "
    "checking the original transaction too. Store credit, if you ever choose it instead, is available "
    "immediately.",
]


def scripted_conversation(turns: int = 100) -> list[tuple[str, str]]:
    """A deterministic support conversation; turn 1 pins an order id, an email and a contact preference."""
    out = [
        (
            "Hi, my order #1004 has not arrived. My email is jane.doe@example.com and I prefer email.",
            _ASSISTANT_LINES[0],
        )
    ]
    for i in range(2, turns + 1):
        user = f"{_USER_LINES[i % len(_USER_LINES)]} (message {i})"
        if i % 17 == 0:
            user += f" This is about order {1000 + i}."
        out.append((user, _ASSISTANT_LINES[i % len(_ASSISTANT_LINES)]))
    return out


def bench_tokens(
    turns: int = 100,
    *,
    window_turns: int = 6,
    summary_max_tokens: int = 200,
    budget_tokens: int = 1200,
    plot: Path | None = None,
) -> dict[str, Any]:
    """Context tokens per turn with compress()/build_context() vs the naive full history."""
    from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

    state: list[BaseMessage] = []
    naive: list[BaseMessage] = []
    summary = ""
    pinned: dict[str, Any] = {}
    compressed_tokens: list[int] = []
    naive_tokens: list[int] = []
    started = time.perf_counter()
    for i, (user, answer) in enumerate(scripted_conversation(turns), start=1):
        human = HumanMessage(user, id=f"h{i}")
        state.append(human)
        naive.append(human)
        result = compress(
            state,
            prev_summary=summary,
            pinned=pinned,
            window_turns=window_turns,
            summary_max_tokens=summary_max_tokens,
            budget_tokens=budget_tokens,
        )
        dropped = set(result.dropped_ids)
        summary, pinned = result.summary, result.pinned
        context = build_context(summary, pinned, result.window, budget_tokens)
        compressed_tokens.append(count_tokens(context))
        naive_tokens.append(count_tokens(naive))
        ai = AIMessage(answer, id=f"a{i}")
        state = [m for m in state if m.id not in dropped] + [ai]
        naive.append(ai)
    elapsed = time.perf_counter() - started
    if plot is not None:
        _plot_tokens(compressed_tokens, naive_tokens, budget_tokens, plot)
    return {
        "token_counter": TOKEN_COUNTER,
        "tokens_turn5": compressed_tokens[4],
        "tokens_turn50": compressed_tokens[49],
        "tokens_turn100": compressed_tokens[-1],
        "tokens_turn50_naive": naive_tokens[49],
        "tokens_turn100_naive": naive_tokens[-1],
        "tokens_turn50_over_turn5": round(compressed_tokens[49] / compressed_tokens[4], 3),
        "tokens_max": max(compressed_tokens),
        "context_budget": budget_tokens,
        "pinned_order_kept_turn100": "1004" in pinned.get("order_ids", []) and "1004" in context,
        "compress_ms_per_turn": round(1000 * elapsed / turns, 2),
    }


def _plot_tokens(compressed: list[int], naive: list[int], budget: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    turns = range(1, len(compressed) + 1)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(turns, naive, label="naive full history", color="#c44e52")
    ax.plot(turns, compressed, label="window + summary + pinned", color="#4c72b0")
    ax.axhline(budget, linestyle="--", color="grey", label=f"budget ({budget})")
    ax.set_xlabel("turn")
    ax.set_ylabel(f"context tokens ({TOKEN_COUNTER})")
    ax.set_title("Session memory: prompt tokens per turn")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------- chroma


def _dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


class _LookupEmbedder:
    """Serves precomputed vectors by text and counts the time spent, so latencies can exclude embedding."""

    def __init__(self, texts: list[str], vectors: np.ndarray) -> None:
        self.dim = int(vectors.shape[1])
        self.vectors = vectors
        self.row = {text: i for i, text in enumerate(texts)}
        self.seconds = 0.0

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        started = time.perf_counter()
        out = self.vectors[[self.row[t] for t in texts]]
        self.seconds += time.perf_counter() - started
        return out


def _embed_batched(embedder: Embedder, texts: list[str], batch_size: int = 64) -> np.ndarray:
    return np.asarray(embedder.embed(texts, batch_size=batch_size), dtype=np.float32)


def bench_embed(embedder: Embedder, *, n: int = 512, runs: int = 3, seed: int = 11) -> dict[str, Any]:
    """Sentences per second on short support sentences, batch 64, median of `runs`."""
    texts = synthetic_sentences(n, seed)
    _embed_batched(embedder, texts[:64])  # warm-up: session, thread pool
    rates = []
    for _ in range(runs):
        started = time.perf_counter()
        _embed_batched(embedder, texts)
        rates.append(n / (time.perf_counter() - started))
    return {"embed_sentences_per_s": round(statistics.median(rates), 1), "embed_batch_size": 64}


def _case(i: int, base_texts: list[str], base_of: np.ndarray) -> ResolvedCase:
    problem = base_texts[int(base_of[i])]
    return ResolvedCase(problem=problem, cause=f"cause {i}", fix="fixed by support", id=f"m{i}")


def _case_text(case: ResolvedCase) -> str:
    return f"{case.problem}\n{case.cause}\n{case.fix}"  # what ChromaMemory embeds for a case


def _timed_queries(
    memory: ChromaMemory, lookup: _LookupEmbedder, queries: list[tuple[str, str, str]], k: int = 5
) -> tuple[list[float], list[list[str]]]:
    """search_cases latency (ms, embedding excluded) and result ids for (query, tenant, user) triples."""
    latencies: list[float] = []
    results: list[list[str]] = []
    for text, tenant, user in queries:
        embed_before = lookup.seconds
        started = time.perf_counter()
        hits = memory.search_cases(text, tenant_id=tenant, user_id=user, k=k)
        elapsed = time.perf_counter() - started - (lookup.seconds - embed_before)
        latencies.append(1000 * elapsed)
        results.append([h.id for h in hits])
    return latencies, results


def bench_chroma(
    embedder: Embedder,
    *,
    n_users: int,
    per_user: int,
    shared_per_tenant: int,
    n_base: int,
    n_queries: int,
    n_tenants: int = 10,
    n_single_adds: int = 500,
    seed: int = 7,
) -> dict[str, Any]:
    """Store resolved cases for many users through `ChromaMemory` (one collection per user), time queries.

    Each user gets `per_user` private cases and each tenant `shared_per_tenant` shared ones; queries are
    `search_cases` for one user (their collection + their tenant's shared one), embedding time excluded,
    first cold (fresh client: collections load from disk) then warm (the same queries again).
    """
    import chromadb
    from chromadb.api.client import SharedSystemClient

    rng = np.random.default_rng(seed)
    base_texts = synthetic_sentences(n_base, seed)
    base = _embed_batched(embedder, base_texts)
    n_private = n_users * per_user
    n_memories = n_private + n_tenants * shared_per_tenant
    base_of = rng.integers(0, n_base, size=n_memories)
    noisy = base[base_of] + rng.normal(0.0, 0.03, size=(n_memories, base.shape[1])).astype(np.float32)
    vectors = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    cases = [_case(i, base_texts, base_of) for i in range(n_memories)]
    user_of = np.arange(n_private) % n_users  # private case i belongs to user i % n_users
    tenant_of_user = np.arange(n_users) % n_tenants
    # tenant of shared case i (meaningful for i >= n_private only)
    shared_tenant = (np.arange(n_memories) - n_private) // max(shared_per_tenant, 1)

    query_texts = synthetic_sentences(n_queries, seed + 1)
    query_vectors = _embed_batched(embedder, query_texts)
    query_users = rng.choice(n_users, size=n_queries, replace=n_queries > n_users)
    lookup = _LookupEmbedder(
        [_case_text(c) for c in cases] + query_texts,
        np.concatenate([vectors, query_vectors]).astype(np.float32),
    )
    ranking = {"relevance_weight": 1.0, "recency_weight": 0.0, "min_relevance": -1.0}  # pure cosine order

    def ids_of(user: int) -> tuple[str, str]:
        return f"t{tenant_of_user[user]}", f"u{user}"

    queries = [(text, *ids_of(int(u))) for text, u in zip(query_texts, query_users, strict=True)]
    with tempfile.TemporaryDirectory(prefix="sb-bench-chroma-") as tmp:
        memory = ChromaMemory.persistent(tmp, lookup, **ranking)
        started = time.perf_counter()
        for user in range(n_users):
            tenant, uid = ids_of(user)
            mine = [cases[i] for i in range(user, n_private, n_users)]
            memory.add_cases(mine, tenant_id=tenant, user_id=uid, shared=False)
        for t in range(n_tenants):
            rows = range(n_private + t * shared_per_tenant, n_private + (t + 1) * shared_per_tenant)
            author = f"u{t}"  # user t belongs to tenant t
            memory.add_cases([cases[i] for i in rows], tenant_id=f"t{t}", user_id=author, shared=True)
        add_seconds = time.perf_counter() - started
        n_collections = len(memory.collection_names())
        del memory
        SharedSystemClient.clear_system_cache()  # next client starts cold: nothing loaded, no handles

        memory = ChromaMemory.persistent(tmp, lookup, **ranking)
        cold_ms, _ = _timed_queries(memory, lookup, queries)
        warm_ms, got = _timed_queries(memory, lookup, queries)

        raw_ms: list[float] = []
        recall: list[float] = []
        recall_raw: list[float] = []
        for (_, tenant, uid), user, q, ids in zip(queries, query_users, query_vectors, got, strict=True):
            own = np.flatnonzero(user_of == user)
            shared = n_private + np.flatnonzero(shared_tenant[n_private:] == tenant_of_user[user])
            visible = np.concatenate([own, shared])
            exact = visible[np.argsort(-(vectors[visible] @ q))[:5]]
            recall.append(len({f"m{i}" for i in exact} & set(ids)) / 5)
            collection = memory.collection("cases", tenant, uid)
            t0 = time.perf_counter()
            raw = collection.query(query_embeddings=q[None, :], n_results=5, include=["distances"])
            raw_ms.append(1000 * (time.perf_counter() - t0))
            exact_own = own[np.argsort(-(vectors[own] @ q))[:5]]
            recall_raw.append(len({f"m{i}" for i in exact_own} & set(raw["ids"][0])) / 5)
        disk_mb = _dir_mb(Path(tmp))

        single = [  # one case per call, as the graph's `remember` node stores them
            ResolvedCase(f"{query_texts[i % n_queries]} #{i}", cause="single add", fix="bench", id=f"s{i}")
            for i in range(n_single_adds)
        ]
        lookup.row.update({_case_text(c): int(n_memories + i % n_queries) for i, c in enumerate(single)})
        started = time.perf_counter()
        for i, case in enumerate(single):
            tenant, uid = ids_of(int(query_users[i % n_queries]))
            memory.add_case(case, tenant_id=tenant, user_id=uid, shared=False)
        single_seconds = time.perf_counter() - started
        del memory
        SharedSystemClient.clear_system_cache()

    return {
        "n_memories": n_memories,
        "n_users": n_users,
        "n_tenants": n_tenants,
        "chroma_layout": (
            f"ChromaMemory: one collection per (tenant, user) for private cases "
            f"({n_users} users x {per_user}) + one shared-cases collection per tenant "
            f"({n_tenants} x {shared_per_tenant}); "
            "HNSW cosine, sync_threshold=2"
        ),
        "chroma_collections": n_collections,
        "n_real_embeddings": n_base,
        "vectors": f"{n_base} real MiniLM embeddings; each memory one + noise(sigma=0.03), re-normalised",
        "chroma_add_per_s": round(n_memories / add_seconds, 1),
        "chroma_add_batch": f"add_cases per user ({per_user}) and per tenant ({shared_per_tenant})",
        "chroma_add_case_per_s": round(n_single_adds / single_seconds, 1),
        "chroma_query": "search_cases(k=5) of one user: own + tenant-shared collection; embedding excluded",
        "chroma_query_p50_ms": round(_percentile(warm_ms, 50), 3),
        "chroma_query_p99_ms": round(_percentile(warm_ms, 99), 3),
        "chroma_query_cold_p50_ms": round(_percentile(cold_ms, 50), 3),
        "chroma_query_cold_p99_ms": round(_percentile(cold_ms, 99), 3),
        "chroma_query_unfiltered_p50_ms": round(_percentile(raw_ms, 50), 3),
        "chroma_query_unfiltered_p99_ms": round(_percentile(raw_ms, 99), 3),
        "chroma_query_unfiltered": "raw collection.query(n_results=5) on the user's own collection",
        "chroma_recall_at_5": round(statistics.fmean(recall), 4),
        "chroma_recall_at_5_unfiltered": round(statistics.fmean(recall_raw), 4),
        "chroma_disk_mb": round(disk_mb, 1),
        "n_queries": n_queries,
        "chromadb": chromadb.__version__,
    }


# ---------------------------------------------------------------------------------------- retrieval


def held_out_questions(data_dir: Path) -> list[tuple[str, str]]:
    """(instruction, intent) of the Bitext rows held out by sha1(instruction) % 5 == 0."""
    with (data_dir / BITEXT_CSV).open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        (r["instruction"], r["intent"])
        for r in rows
        if int(hashlib.sha1(r["instruction"].encode("utf-8")).hexdigest(), 16) % 5 == 0
    ]


def bench_retrieval(
    embedder: Embedder, data_dir: Path | None, kb_dir: Path = REPO / "demo" / "kb", limit: int | None = None
) -> dict[str, Any]:
    """Recall@1, recall@5 and MRR of `search_knowledge` on held-out Bitext questions against demo/kb."""
    if data_dir is None or not (data_dir / BITEXT_CSV).exists():
        return {"retrieval_skipped": f"Bitext data not found under {data_dir} (pass --data-dir)"}
    articles = load_articles(kb_dir)
    if not articles:
        return {"retrieval_skipped": f"no articles in {kb_dir}"}
    intents_of = {a.id: set(a.intents) for a in articles}
    covered = set().union(*intents_of.values())
    questions = held_out_questions(data_dir)
    scored = [(q, i) for q, i in questions if i in covered]
    if limit is not None:
        scored = scored[:limit]
    cached = CachedEmbedder(embedder)  # the questions in one batch up front; the articles pass through it too
    cached.embed(list(dict.fromkeys(q for q, _ in scored)))
    memory = ChromaMemory.ephemeral(cached)
    memory.upsert_articles(articles)
    results: dict[str, dict[str, float]] = {}
    variants: tuple[tuple[str, dict[str, Any]], ...] = (
        ("", {}),
        ("_relevance_only", {"relevance_weight": 1.0, "recency_weight": 0.0}),
    )
    for label, kwargs in variants:
        ranker = ChromaMemory(memory.client, cached, prefix=memory.prefix, **kwargs)
        r1 = r5 = rr = 0.0
        for question, intent in scored:
            ranked = [h.article_id for h in ranker.search_knowledge(question, k=5)]
            ranks = [n for n, aid in enumerate(ranked, start=1) if aid and intent in intents_of.get(aid, set())]
            if ranks:
                r1 += ranks[0] == 1
                r5 += 1
                rr += 1 / ranks[0]
        n = max(len(scored), 1)
        results[label] = {
            f"retrieval_recall_at_1{label}": round(r1 / n, 4),
            f"retrieval_recall_at_5{label}": round(r5 / n, 4),
            f"retrieval_mrr{label}": round(rr / n, 4),
        }
    out: dict[str, Any] = {
        "retrieval_questions": len(scored),
        "retrieval_questions_uncovered": len(questions) - len([1 for _, i in questions if i in covered]),
        "kb_articles": len(articles),
        "kb_chunks": memory.count()["kb"],
    }
    for part in results.values():
        out.update(part)
    return out


# ------------------------------------------------------------------------------------------------ run


def run(data_dir: Path | None, quick: bool, embedder: Embedder | None = None) -> dict[str, Any]:
    """Run every part and write bench/reports/memory.json (+ memory_tokens.png); returns the report."""
    if embedder is None:
        from memory.embeddings import get_embedder

        embedder = get_embedder(REPO / ".switchboard" / "test-cache")
    REPORTS.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"quick": quick, "embedder": type(embedder).__name__}
    from config.settings import Settings

    session = Settings().policy().session  # the same window and budgets the graph uses
    report.update(
        bench_tokens(
            window_turns=session.window_turns,
            summary_max_tokens=session.summary_max_tokens,
            budget_tokens=session.context_token_budget,
            plot=REPORTS / "memory_tokens.png",
        )
    )
    report["tokens_plot"] = str((REPORTS / "memory_tokens.png").relative_to(REPO))
    report.update(bench_embed(embedder))
    report.update(
        bench_chroma(
            embedder,
            n_users=100 if quick else 1_000,
            per_user=99,
            shared_per_tenant=10 if quick else 100,
            n_base=2_000 if quick else 10_000,
            n_queries=100 if quick else 300,
            n_single_adds=200 if quick else 500,
        )
    )
    report.update(bench_retrieval(embedder, data_dir, limit=300 if quick else None))
    (REPORTS / "memory.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    """CLI entry: ``bench memory [--data-dir DIR] [--quick] [--json]``."""
    parser = argparse.ArgumentParser(prog="bench memory", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--quick", action="store_true", help="10k memories (100 users), fewer queries")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    data_dir = args.data_dir if args.data_dir.exists() else None
    if data_dir is None:
        print(f"note: data dir {args.data_dir} not found; retrieval quality is skipped", file=sys.stderr)
    report = run(data_dir, args.quick, None)
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:36} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
