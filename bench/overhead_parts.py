"""Where the graph's overhead goes: `python -m bench.overhead_parts` (a one-off decomposition, not a goal check).

The routing-suite mix (31 tickets) runs 3 times, alternating, in six ways on one warm process and data-dir copy:
`a_mem` ainvoke + InMemorySaver + durability async (what `bench ticket` times), `a_exit` the same with durability
exit, `s_mem` invoke + sync durability, `s_exit` invoke + exit, `s_none` invoke without a checkpointer, and `plain`
(the recorded node functions called in order, as `bench ticket` replays them). Prints each one's median ms per mix
and its ratio to plain. Measured 2026-12-02 (293 node calls per mix) at load ~3: 1.78 / 1.68 / 1.57 / 1.34 / 1.20
/ 1.00; again with the test suite running beside it: 1.96 / 1.83 / 1.96 / 1.56 / 1.72 / 1.00. Even LangGraph's
loop without a checkpointer costs 0.20 or more of the plain time at this node granularity (~1.8 ms of work per
node), so overhead_ratio <= 1.10 needs far fewer supersteps, not a faster checkpointer. It first prints LangGraph's
floor (`floor`): a chain of 10 no-op nodes.
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


async def floor(steps: int = 10, runs: int = 300) -> dict[str, float]:
    """LangGraph's own cost per superstep: median ms per run of a chain of `steps` no-op nodes with an InMemorySaver
    (ainvoke with sync and with async nodes, durability async; invoke, durability sync). Measured 2026-12-03 at load
    below 1, 10 steps: 6.04 (sync nodes, each hops to the executor) / 3.43 (async nodes) / 8.26 ms (invoke)."""
    import operator
    from typing import Annotated, NotRequired

    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import START, StateGraph
    from typing_extensions import TypedDict

    # Functional form: this module's annotations are strings, and these names are local.
    Chain = TypedDict("Chain", {"x": NotRequired[int], "route": NotRequired[Annotated[list[int], operator.add]]})

    def build(asynchronous: bool) -> Any:
        g: Any = StateGraph(Chain)
        prev = START
        for i in range(steps):
            if asynchronous:
                async def step(_: Any, i: int = i) -> dict[str, Any]:
                    return {"x": i, "route": [i]}
            else:
                def step(_: Any, i: int = i) -> dict[str, Any]:  # type: ignore[misc]
                    return {"x": i, "route": [i]}
            g.add_node(f"n{i}", step)
            g.add_edge(prev, f"n{i}")
            prev = f"n{i}"
        return g.compile(checkpointer=InMemorySaver())

    def config() -> dict[str, Any]:
        return {"configurable": {"thread_id": str(uuid.uuid4())}}

    out: dict[str, float] = {}
    for name, graph in (("ainvoke, sync nodes", build(False)), ("ainvoke, async nodes", build(True))):
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            await graph.ainvoke({"x": 0}, config(), durability="async")
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times[runs // 6 :]) * 1000
    graph, times = build(False), []
    for _ in range(runs):
        t0 = time.perf_counter()
        graph.invoke({"x": 0}, config(), durability="sync")
        times.append(time.perf_counter() - t0)
    out["invoke, sync nodes"] = statistics.median(times[runs // 6 :]) * 1000
    return out


def main() -> None:
    for name, ms in asyncio.run(floor()).items():
        print(f"floor  {name:22} {ms:6.2f} ms per 10 no-op steps")
    medians = asyncio.run(measure())
    for mode, ms in medians.items():
        print(f"{mode:7} {ms:8.1f} ms per mix  ratio {ms / medians['plain']:.2f}")


if __name__ == "__main__":
    main()
