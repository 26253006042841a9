"""Progress bars for long CLI work (ingest, evals, benchmarks): rich, on stderr, only when stderr is a terminal.

    with bar(total, "ingest", enabled=enabled(json_out=args.json)) as advance:
        for item in items:
            ...
            advance()                    # or advance(n, description="file.md")

Never on stdout, so `--json` output stays one clean JSON document; off when stderr is not a TTY (CI, pipes).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def enabled(*, json_out: bool = False) -> bool:
    """Show a bar? Only for an interactive stderr, and never while --json output is being written."""
    return not json_out and sys.stderr.isatty()


@contextmanager
def bar(total: int | None, description: str, *, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """Yields `advance(n=1, description=None)`; a no-op when disabled."""
    if not enabled:
        yield lambda n=1, description=None: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(f"[bold]{description}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task("", total=total)

        def advance(n: int = 1, description: str | None = None) -> None:
            progress.update(task, advance=n, description=description or None)  # None: the description stays

        yield advance
