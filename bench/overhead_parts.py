"""Where the graph's overhead goes: `python -m bench.overhead_parts` (a one-off decomposition, not a goal check).

The routing-suite mix (31 tickets) runs 3 times, alternating, in six ways on one warm process and data-dir copy:
`a_mem` ainvoke + InMemorySaver + durability async (what `bench ticket` times), `a_exit` the same with durability
exit, `s_mem` invoke + sync durability, `s_exit` invoke + exit, `s_none` invoke without a checkpointer, and `plain`
(the recorded node functions called in order, as `bench ticket` replays them). Prints each one's median ms per mix
and its ratio to plain. Measured 2026-12-02 (293 node calls per mix) at load ~3: 1.78 / 1.68 / 1.57 / 1.34 / 1.20
/ 1.00; again with the test suite running beside it: 1.96 / 1.83 / 1.96 / 1.56 / 1.72 / 1.00. Even LangGraph's
loop without a checkpointer costs 0.20 or more of the plain time at this node granularity (~1.8 ms of work per
node), so overhead_ratio <= 1.10 needs far fewer supersteps, not a faster checkpointer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

MODES = ("a_mem", "a_exit", "s_mem", "s_exit", "s_none", "plain")


async def measure(rounds: int = 3) -> dict[str, float]:
    """Median ms per mix for each mode (see the module docstring)."""
    from langchain_core.messages import HumanMessage
    from langgraph.checkpoint.memory import InMemorySaver

    from bench.ticket import _RUNTIME_FILES, replay
    from config.settings import Settings
    from evals.routing import load_suite
    from graphs.context import Context
    from graphs.services import build_services
    from graphs.supervisor import build_supervisor
    from observability.decisions import SqlDecisionStore
    from observability.metrics import recording

    base = Settings.from_env()
    _, cases = load_suite()
    mix = [(c["text"], c.get("user", "demo")) for c in cases]
    with tempfile.TemporaryDirectory(prefix="switchboard-overhead-") as tmp:
        data = Path(tmp) / "data"
        shutil.copytree(base.data_dir, data, ignore=shutil.ignore_patterns(*_RUNTIME_FILES))
        services = build_services(base.model_copy(update={"data_dir": data}))
        services = dataclasses.replace(services, decisions=SqlDecisionStore(Path(tmp) / "decisions.sqlite"))
        saved: Any = build_supervisor(services).compile(checkpointer=InMemorySaver())
        bare = build_supervisor(services).compile()

        def args(text: str, user: str) -> tuple[dict[str, Any], dict[str, Any], Context]:
            config = {"configurable": {"thread_id": str(uuid.uuid4())}}
            return {"messages": [HumanMessage(text)]}, config, Context(user_id=user)

        def sync(graph: Any, durability: str | None) -> Callable[[str, str], None]:
            def run(text: str, user: str) -> None:
                ticket, config, context = args(text, user)
                extra = {"durability": durability} if durability else {}
                graph.invoke(ticket, config, context=context, **extra)

            return run

        def asynchronous(durability: str) -> Callable[[str, str], Awaitable[None]]:
            async def run(text: str, user: str) -> None:
                ticket, config, context = args(text, user)
                await saved.ainvoke(ticket, config, context=context, durability=durability)

            return run

        recorded = {}
        for i, (text, user) in enumerate(mix):
            with recording() as calls:
                sync(saved, "sync")(text, user)
            recorded[i] = calls
        runners: dict[str, Any] = {"a_mem": asynchronous("async"), "a_exit": asynchronous("exit"),
                                   "s_mem": sync(saved, "sync"), "s_exit": sync(saved, "exit"),
                                   "s_none": sync(bare, None)}  # fmt: skip
        times: dict[str, list[float]] = {m: [] for m in MODES}
        for _ in range(rounds):
            for mode in MODES:
                t0 = time.perf_counter()
                for i, (text, user) in enumerate(mix):
                    if mode == "plain":
                        replay(recorded[i])
                    elif mode.startswith("a_"):
                        await runners[mode](text, user)
                    else:
                        runners[mode](text, user)
                times[mode].append((time.perf_counter() - t0) * 1000)
        print("node calls per mix:", sum(len(c) for c in recorded.values()))
    return {m: statistics.median(v) for m, v in times.items()}


def main() -> None:
    medians = asyncio.run(measure())
    for mode, ms in medians.items():
        print(f"{mode:7} {ms:8.1f} ms per mix  ratio {ms / medians['plain']:.2f}")


if __name__ == "__main__":
    main()
