"""Throughput benchmark for the MiniLM embedder: ``python -m bench.embeddings [--n 2000] [--batch-size 64]``.

Sentences are short (5-15 words) support-style requests generated deterministically from a fixed vocabulary.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

import onnxruntime as ort

from memory.embeddings import MiniLMEmbedder

_SUBJECTS = [
    "my order",
    "the parcel",
    "my refund",
    "this invoice",
    "my account",
    "the subscription",
    "my password",
    "the delivery",
    "my card",
    "the voucher",
    "my address",
    "the return label",
]
_VERBS = [
    "has not arrived",
    "was charged twice",
    "is missing an item",
    "shows the wrong amount",
    "cannot be found",
    "was cancelled",
    "needs to be changed",
    "is still pending",
    "arrived damaged",
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
]
_OPENERS = ["hi", "hello", "please", "urgent", "hey team", "good morning"]


def make_sentences(n: int, seed: int = 7) -> list[str]:
    """Return ``n`` deterministic short sentences of 5 to 15 words."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        words = f"{rng.choice(_OPENERS)} {rng.choice(_SUBJECTS)} {rng.choice(_VERBS)}".split()
        while len(words) < rng.randint(5, 15):
            words += rng.choice(_TAILS).split()
        sentences.append(" ".join(words[:15]) + rng.choice([".", "?", "!"]))
    return sentences


def measure_throughput(
    n: int = 2000,
    batch_size: int = 64,
    runs: int = 3,
    threads: int | None = None,
    cache_dir: Path | None = None,
    parallel_batches: bool = True,
) -> dict[str, Any]:
    """Embed ``n`` short sentences ``runs`` times; report the median sentences (and tokens) per second.

    Tokens include [CLS] and [SEP]; the encoder's cost grows with tokens, so tokens/s compares across data.
    """
    sentences = make_sentences(n)
    start = time.perf_counter()
    embedder = MiniLMEmbedder(cache_dir=cache_dir, threads=threads, parallel_batches=parallel_batches)
    load_s = time.perf_counter() - start
    tokens = sum(len(e.ids) for e in embedder.tokenizer.encode_batch(sentences))
    embedder.embed(sentences[: batch_size * 2], batch_size=batch_size)  # warm-up
    timings, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        embedder.embed(sentences, batch_size=batch_size)
        timings.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    median = statistics.median(timings)
    return {
        "sentences_per_s": round(n / median, 1),
        "tokens_per_s": round(tokens / median, 1),
        # CPU seconds this process used: on a shared machine, wall-clock rates understate the code.
        "sentences_per_cpu_s": round(n / statistics.median(cpu), 1),
        "mean_tokens": round(tokens / n, 2),
        "n": n,
        "batch_size": batch_size,
        "runs_s": [round(t, 3) for t in timings],
        "threads": embedder.threads,
        "parallel_batches": embedder.parallel_batches,
        "load_s": round(load_s, 3),
        "onnx_rebuilt": embedder.rebuilt,
        "onnxruntime": ort.__version__,
    }


def main() -> None:
    """Parse arguments, run the benchmark and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--intra-op", action="store_true", help="split each operator across threads instead of batches")
    args = parser.parse_args()
    result = measure_throughput(
        args.n, args.batch_size, args.runs, args.threads, args.cache_dir, parallel_batches=not args.intra_op
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
