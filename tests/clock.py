"""A clock for tests: epoch seconds that move only when the test moves them (never sleep in a test)."""

from __future__ import annotations


class FakeClock:
    """Callable like `time.time`; set or advance `now` by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
