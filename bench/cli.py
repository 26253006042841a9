"""`python app.py bench KIND ...`: ticket (what is served: latency, overhead, RSS, cold start), memory (tokens,
embeddings, Chroma, retrieval), embeddings, latency, chaos, or load."""

from __future__ import annotations


def bench_main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("ticket", "memory", "embeddings", "latency", "chaos", "load"):
        print("usage: app.py bench {ticket|memory|embeddings|latency|chaos|load} [options]")
        return 2
    if argv[0] == "ticket":
        from bench.ticket import main as ticket_main

        return ticket_main(argv[1:])
    if argv[0] == "load":
        from bench.load import main as load_main

        return load_main(argv[1:])
    if argv[0] == "chaos":
        from bench.chaos import main as chaos_main

        return chaos_main(argv[1:])
    if argv[0] == "memory":
        from bench.memory import main

        return main(argv[1:])
    if argv[0] == "latency":
        from bench.latency import main as latency_main

        return latency_main(argv[1:])
    import json

    from bench.embeddings import measure_throughput

    print(json.dumps(measure_throughput()))
    return 0
