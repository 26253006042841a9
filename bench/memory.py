"""Memory benchmark: session compression, embedding throughput, Chroma at scale, KB retrieval quality.

    python app.py bench memory [--data-dir ../shared/data] [--quick] --json
    python -m bench.memory --quick --json

Parts:

1. Tokens: a deterministic 100-turn scripted support conversation goes through `compress()` and
   `build_context()` with the policy defaults; context tokens per turn are compared with the naive full
   history (PNG plot beside the JSON report).
2. Embedding throughput of the MiniLM embedder on short support sentences.
3. Chroma: 100,000 memories (10,000 with --quick) for 1 memory per 100 users across 10 tenants in a
   PersistentClient. Vectors: a base of real MiniLM embeddings of synthetic support sentences
   (4,000; 1,000 with --quick), each memory being a base vector plus Gaussian noise (sigma 0.03 per
   dimension, then re-normalised; cosine to its base ~0.87), because embedding 100k texts on 2 shared
   cores takes too long. Queries are real embeddings of unseen sentences; latency excludes embedding.
   Recall@5 is measured against exact numpy search, with the per-user filter and without it.
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
from pathlib import Path
from typing import Any

import numpy as np

from memory.knowledge import ChromaMemory, Embedder, load_articles
from memory.session import TOKEN_COUNTER, build_context, compress, count_tokens

REPO = Path(__file__).resolve().parent.parent
REPORTS = REPO / "bench" / "reports"
BITEXT_CSV = "bitext-customer-support/Bitext_Sample_Customer_Support_Training_Dataset.csv"

_SUBJECTS = [
    "my order",
    "the parcel",
    "my refund",
    "this invoice",
    "my account",
    "the subscription",
    "my password",
    "the delivery",
    "my card payment",
    "the voucher",
    "my address",
    "the return label",
    "the kettle",
    "my headphones",
    "the gift card",
    "my newsletter settings",
]
_VERBS = [
    "has not arrived",
    "was charged twice",
    "is missing an item",
    "shows the wrong amount",
    "cannot be found",
    "was cancelled without notice",
    "needs to be changed",
    "is still pending",
    "arrived damaged",
    "keeps failing",
    "was sent to the wrong place",
    "expired too early",
]
_TAILS = [
    "since last week",
    "after the update",
    "and I need help",
    "please check",
    "what should I do",
    "can you fix it",
    "for the second time",
    "before Friday",
    "on the mobile app",
    "today",
    "even though support said it was fixed",
    "and the tracking page is blank",
]


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
    summary, pinned = "", {}
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


def bench_chroma(
    embedder: Embedder, *, n_memories: int, n_base: int, n_queries: int, seed: int = 7
) -> dict[str, Any]:
    """Add `n_memories` vectors to a persistent Chroma, time filtered queries, measure recall@5."""
    import chromadb
    from chromadb.config import Settings

    rng = np.random.default_rng(seed)
    base_texts = synthetic_sentences(n_base, seed)
    started = time.perf_counter()
    base = np.asarray(embedder.embed(base_texts), dtype=np.float32)
    embed_rate = n_base / (time.perf_counter() - started)

    vectors = np.empty((n_memories, base.shape[1]), dtype=np.float32)
    vectors[:n_base] = base[: min(n_base, n_memories)]
    if n_memories > n_base:
        extra = base[np.arange(n_base, n_memories) % n_base]
        extra = extra + rng.normal(0.0, 0.03, size=extra.shape).astype(np.float32)
        vectors[n_base:] = extra / np.linalg.norm(extra, axis=1, keepdims=True)
    n_users = max(n_memories // 100, 1)
    user_of = np.arange(n_memories) % n_users
    tenant_of = user_of % 10

    query_vectors = np.asarray(embedder.embed(synthetic_sentences(n_queries, seed + 1)), dtype=np.float32)
    query_users = rng.integers(0, n_users, size=n_queries)

    with tempfile.TemporaryDirectory(prefix="sb-bench-chroma-") as tmp:
        client = chromadb.PersistentClient(path=tmp, settings=Settings(anonymized_telemetry=False))
        collection = client.get_or_create_collection(
            "bench_memories", embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
        )
        batch = client.get_max_batch_size()
        started = time.perf_counter()
        for start in range(0, n_memories, batch):
            end = min(start + batch, n_memories)
            collection.add(
                ids=[f"m{i}" for i in range(start, end)],
                embeddings=vectors[start:end],
                metadatas=[
                    {"tenant_id": f"t{tenant_of[i]}", "user_id": f"u{user_of[i]}", "ts": float(i)}
                    for i in range(start, end)
                ],
                documents=[base_texts[i % n_base] for i in range(start, end)],
            )
        add_seconds = time.perf_counter() - started

        filtered_ms: list[float] = []
        unfiltered_ms: list[float] = []
        recall_filtered: list[float] = []
        recall_unfiltered: list[float] = []
        for q, user in zip(query_vectors, query_users, strict=True):
            where = {"$and": [{"tenant_id": f"t{user % 10}"}, {"user_id": f"u{user}"}]}
            t0 = time.perf_counter()
            got = collection.query(
                query_embeddings=q[None, :], n_results=5, where=where, include=["distances"]
            )
            filtered_ms.append(1000 * (time.perf_counter() - t0))
            own = np.flatnonzero(user_of == user)
            exact = own[np.argsort(-(vectors[own] @ q))[:5]]
            recall_filtered.append(len({f"m{i}" for i in exact} & set(got["ids"][0])) / 5)

            t0 = time.perf_counter()
            got = collection.query(query_embeddings=q[None, :], n_results=5, include=["distances"])
            unfiltered_ms.append(1000 * (time.perf_counter() - t0))
            exact = np.argsort(-(vectors @ q))[:5]
            recall_unfiltered.append(len({f"m{i}" for i in exact} & set(got["ids"][0])) / 5)
        disk_mb = _dir_mb(Path(tmp))
        del collection, client

    return {
        "n_memories": n_memories,
        "n_users": n_users,
        "n_tenants": 10,
        "n_real_embeddings": n_base,
        "vectors": f"{n_base} real MiniLM embeddings + noise(sigma=0.03) copies up to {n_memories}",
        "embed_sentences_per_s": round(embed_rate, 1),
        "chroma_add_per_s": round(n_memories / add_seconds, 1),
        "chroma_query_p50_ms": round(_percentile(filtered_ms, 50), 3),
        "chroma_query_p99_ms": round(_percentile(filtered_ms, 99), 3),
        "chroma_query_unfiltered_p50_ms": round(_percentile(unfiltered_ms, 50), 3),
        "chroma_query_unfiltered_p99_ms": round(_percentile(unfiltered_ms, 99), 3),
        "chroma_recall_at_5": round(statistics.fmean(recall_filtered), 4),
        "chroma_recall_at_5_unfiltered": round(statistics.fmean(recall_unfiltered), 4),
        "chroma_disk_mb": round(disk_mb, 1),
        "n_queries": n_queries,
    }


# ---------------------------------------------------------------------------------------- retrieval


class _CachedEmbedder:
    """Serves precomputed vectors for known texts (one batched embed), delegating the rest."""

    def __init__(self, inner: Embedder, texts: list[str]) -> None:
        self.inner = inner
        self.dim = inner.dim
        unique = list(dict.fromkeys(texts))
        self.cache = dict(zip(unique, np.asarray(inner.embed(unique), dtype=np.float32), strict=True))

    def embed(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in texts if t not in self.cache]
        if missing:
            self.cache.update(
                zip(missing, np.asarray(self.inner.embed(missing), dtype=np.float32), strict=True)
            )
        return np.stack([self.cache[t] for t in texts])


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
    cached = _CachedEmbedder(embedder, [q for q, _ in scored])
    memory = ChromaMemory.ephemeral(cached)
    memory.upsert_articles(articles)
    results: dict[str, dict[str, float]] = {}
    for label, kwargs in (("", {}), ("_relevance_only", {"relevance_weight": 1.0, "recency_weight": 0.0})):
        ranker = ChromaMemory(memory.client, cached, prefix=memory.prefix, **kwargs)
        r1 = r5 = rr = 0.0
        for question, intent in scored:
            ranked = [h.article_id for h in ranker.search_knowledge(question, k=5)]
            ranks = [
                n for n, aid in enumerate(ranked, start=1) if aid and intent in intents_of.get(aid, set())
            ]
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

        embedder = get_embedder()
    REPORTS.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"quick": quick, "embedder": type(embedder).__name__}
    report.update(bench_tokens(plot=REPORTS / "memory_tokens.png"))
    report["tokens_plot"] = str((REPORTS / "memory_tokens.png").relative_to(REPO))
    report.update(
        bench_chroma(
            embedder,
            n_memories=10_000 if quick else 100_000,
            n_base=1_000 if quick else 4_000,
            n_queries=100 if quick else 300,
        )
    )
    report.update(bench_retrieval(embedder, data_dir, limit=300 if quick else None))
    (REPORTS / "memory.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    """CLI entry: ``bench memory [--data-dir DIR] [--quick] [--json]``."""
    parser = argparse.ArgumentParser(prog="bench memory", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--quick", action="store_true", help="10k memories, fewer queries")
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
