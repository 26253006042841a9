"""`python app.py bench KIND ...`: memory (tokens, embeddings, Chroma, retrieval) or embeddings."""

from __future__ import annotations


def bench_main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("memory", "embeddings"):
        print("usage: app.py bench {memory|embeddings} [options]")
        return 2
    if argv[0] == "memory":
        from bench.memory import main

        return main(argv[1:])
    import json

    from bench.embeddings import measure_throughput

    print(json.dumps(measure_throughput()))
    return 0
