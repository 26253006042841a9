"""Model directories: written so that readers see the old one or the new one, never half of either
(`write_dir_atomically`), and their manifest read back with its format checked (`read_manifest`)."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path


def write_dir_atomically(directory: Path, fill: Callable[[Path], None]) -> Path:
    """Let `fill(tmp)` write the files into a temporary sibling, then swap it in for `directory` by rename."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        fill(tmp)
        old = None
        if directory.exists():
            old = directory.parent / f".{directory.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(directory, old)
        os.replace(tmp, directory)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return directory


def read_manifest(directory: Path, format_version: int, what: str) -> dict:
    """`directory/manifest.json` of a model directory, refused unless it has `format_version` (`what` names the
    model in the error: "intent classifier", "guard model")."""
    path = Path(directory) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {directory} (manifest.json missing)")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    got = manifest.get("format_version") if isinstance(manifest, dict) else None
    if got != format_version:
        raise ValueError(f"{directory}: unsupported {what} format {got!r}")
    return manifest
