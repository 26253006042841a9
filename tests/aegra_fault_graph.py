"""The served graph with one fault point, for the cluster tests (an Aegra instance loads it by path).

With `$SWITCHBOARD_TEST_FAULT_DIR/armed` present, the first instance whose `execute_action` gets a write tool's
result back - the write committed, the node's checkpoint not yet written - records its pid in `committed` and
blocks there until the test kills it (kill -9). Every other call, and every other instance, runs normally.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import nodes.execute_action as execute_action
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
