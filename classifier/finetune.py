"""Optional fine-tuning of the MiniLM sentence encoder for intent classification (served without torch).

Torch lives only in a separate venv (`make train-venv` -> `.venv-train`, Python 3.11 + torch CPU). This module
runs in the main venv: it writes the training split as JSONL, starts ``classifier.finetune_worker`` in that
venv as a subprocess (CosFace head on the pooled embedding, one epoch), and gets back a folder with the
bundled layout (``model.safetensors``, ``config.json``, ``tokenizer.json``...). Serving then loads it with
``MiniLMEmbedder(model_dir=folder)``, which builds the ONNX graph from the tuned weights; no torch is needed.

Only the train split is ever passed here. A folder whose ``finetune.json`` records the same training data hash
and options is reused instead of retrained.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "FinetuneOptions",
    "FinetuneUnavailable",
    "TRAIN_VENV",
    "build_command",
    "finetune_encoder",
    "is_current",
    "train_python",
    "write_training_data",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
TRAIN_VENV = REPO_ROOT / ".venv-train"
WORKER_MODULE = "classifier.finetune_worker"
META_FILE = "finetune.json"
MISSING_VENV = "fine-tuning needs the optional torch venv: make train-venv"


class FinetuneUnavailable(RuntimeError):
    """The optional torch venv is missing (create it with `make train-venv`)."""


@dataclass(frozen=True)
class FinetuneOptions:
    """Training settings passed to the worker (defaults: 1 epoch, batch 32, lr 4e-5, CosFace s=30 m=0.2)."""

    epochs: int = 1
    batch_size: int = 32
    lr: float = 4e-5
    head_lr: float = 1e-3
    max_length: int = 64
    scale: float = 30.0
    margin: float = 0.2
    seed: int = 0
    threads: int = 2

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the options (as recorded in finetune.json)."""
        return asdict(self)


def train_python(venv: Path | None = None) -> Path:
    """The torch venv's interpreter; raises `FinetuneUnavailable` if that venv does not exist."""
    venv = Path(venv) if venv is not None else TRAIN_VENV
    python = venv / "bin" / "python"
    if not python.exists():
        raise FinetuneUnavailable(f"{MISSING_VENV} ({python} not found)")
    return python


def build_command(data_path: Path, out_dir: Path, options: FinetuneOptions, *, python: Path,
                  base: Path | None = None, data_sha256: str = "") -> list[str]:
    """The worker's command line: `<python> -m classifier.finetune_worker train --data ... --out ...`."""
    cmd = [str(python), "-m", WORKER_MODULE, "train", "--data", str(data_path), "--out", str(out_dir)]
    for key, value in options.to_dict().items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    if base is not None:
        cmd += ["--base", str(base)]
    if data_sha256:
        cmd += ["--data-sha256", data_sha256]
    return cmd


def write_training_data(texts: Sequence[str], labels: Sequence[str], path: Path,
                        exclude_labels: Collection[str] = ()) -> str:
    """Write `{"text", "label"}` JSONL rows (minus `exclude_labels`) to `path`; return their sha256."""
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    excluded = set(exclude_labels)
    body = "".join(json.dumps({"text": t, "label": lab}, ensure_ascii=False) + "\n"
                   for t, lab in zip(texts, labels, strict=True) if lab not in excluded)
    if not body:
        raise ValueError("no training examples left to fine-tune on")
    path.write_text(body, encoding="utf-8")
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def is_current(out_dir: Path, data_sha256: str, options: FinetuneOptions) -> bool:
    """True if `out_dir` holds weights trained on the same data with the same options."""
    meta_path = Path(out_dir) / META_FILE
    if not meta_path.is_file() or not (Path(out_dir) / "model.safetensors").is_file():
        return False
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return meta.get("data_sha256") == data_sha256 and meta.get("params") == options.to_dict()


def finetune_encoder(texts: Sequence[str], labels: Sequence[str], out_dir: Path, *,
                     options: FinetuneOptions | None = None, exclude_labels: Collection[str] = (),
                     venv: Path | None = None, base: Path | None = None,
                     force: bool = False) -> dict[str, Any]:
    """Fine-tune MiniLM on (`texts`, `labels`) in the torch venv, save it to `out_dir`, return finetune.json.

    Pass the TRAIN split only. Rows labelled with one of `exclude_labels` (e.g. out_of_scope) are left out.
    Reuses `out_dir` when it was trained on the same data with the same options (unless `force`).
    Raises `FinetuneUnavailable` without the torch venv, `RuntimeError` if the worker fails.
    """
    options = options or FinetuneOptions()
    python = train_python(venv)
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="finetune-") as tmp:
        data_path = Path(tmp) / "train.jsonl"
        sha = write_training_data(texts, labels, data_path, exclude_labels)
        if not force and is_current(out_dir, sha, options):
            meta: dict[str, Any] = json.loads((out_dir / META_FILE).read_text(encoding="utf-8"))
            meta["reused"] = True
            return meta
        cmd = build_command(data_path, out_dir.resolve(), options, python=python, base=base, data_sha256=sha)
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        env.pop("PYTHONHOME", None)
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"fine-tuning failed (exit {proc.returncode}): {' '.join(cmd[:5])} ...")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    meta = json.loads(lines[-1]) if lines else json.loads((out_dir / META_FILE).read_text(encoding="utf-8"))
    meta["reused"] = False
    return meta
