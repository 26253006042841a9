"""`@langchain/langgraph-sdk` (npm) for the Node client test, installed by the test setup if missing.

Looked for in SWITCHBOARD_NODE_SDK_DIR, else in a cache under the user's home
(`~/.cache/switchboard/node-sdk`), where `npm install` puts it on first use. No Node 18+, no npm, or an install
that fails (no registry in reach) skips the test with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGE = "@langchain/langgraph-sdk@^1"
MIN_NODE = 18


def node_sdk_dir() -> Path:
    """A folder whose node_modules holds the SDK (installing it there if needed), or skip."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the @langchain/langgraph-sdk test needs node >= 18")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    try:
        major = int(version.lstrip("v").split(".")[0])
    except ValueError:
        pytest.skip(f"cannot read the Node.js version ({version!r})")
    if major < MIN_NODE:
        pytest.skip(f"Node.js {version} is too old for @langchain/langgraph-sdk (needs >= {MIN_NODE})")
    target = Path(os.environ.get("SWITCHBOARD_NODE_SDK_DIR") or Path.home() / ".cache" / "switchboard" / "node-sdk")
    if (target / "node_modules" / "@langchain" / "langgraph-sdk" / "package.json").exists():
        return target
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip(f"@langchain/langgraph-sdk is not in {target} and npm is not installed to fetch it")
    target.mkdir(parents=True, exist_ok=True)
    if not (target / "package.json").exists():
        (target / "package.json").write_text('{"name": "switchboard-node-sdk", "private": true}\n')
    try:
        proc = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", PACKAGE],
            cwd=target,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"npm install {PACKAGE} timed out (no registry in reach?)")
    if proc.returncode != 0:
        pytest.skip(f"npm install {PACKAGE} into {target} failed: {proc.stderr.strip()[-500:]}")
    return target
