"""The served graph with two fault points, for the cluster tests (an Aegra instance loads it by path).

With `$SWITCHBOARD_TEST_FAULT_DIR/armed` present, the first instance whose `execute_action` gets a write tool's
result back - the write committed, the node's checkpoint not yet written - records its pid in `committed` and
blocks there until the test kills it (kill -9). Every other call, and every other instance, runs normally.

With `$SWITCHBOARD_TEST_FAULT_DIR/hold` present, a ticket whose (redacted) text contains the file's text stops in
`guard_input` until the file is gone (at most 120 s), so a test has a run that is still running to cancel.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import nodes.execute_action as execute_action
import nodes.guard_input as guard_input
from graphs.serve import graph

__all__ = ["graph"]

FAULT_DIR = os.environ.get("SWITCHBOARD_TEST_FAULT_DIR")
_real_run_tool = execute_action.run_tool


def _run_tool_then_hang(*args: Any, **kwargs: Any) -> Any:
    result = _real_run_tool(*args, **kwargs)
    if FAULT_DIR and (Path(FAULT_DIR) / "armed").exists():
        try:
            fd = os.open(Path(FAULT_DIR) / "committed", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return result
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        while True:  # the test's SIGKILL ends this process here
            time.sleep(1)
    return result


execute_action.run_tool = _run_tool_then_hang


def _held_by(text: str) -> bool:
    try:
        token = (Path(FAULT_DIR) / "hold").read_text() if FAULT_DIR else ""
    except OSError:  # no hold, or the test has just removed it
        return False
    return bool(token) and token in text


class _HoldingGuard:
    """The injection screen guard_input calls, stopping first while the test holds this ticket."""

    def __init__(self, guard: Any) -> None:
        self._guard = guard

    def screen(self, text: str) -> Any:
        deadline = time.monotonic() + 120
        while _held_by(text) and time.monotonic() < deadline:
            time.sleep(0.2)  # until the test removes the hold file
        return self._guard.screen(text)


_real_guard_for = guard_input.guard_for
guard_input.guard_for = lambda services: _HoldingGuard(_real_guard_for(services))
