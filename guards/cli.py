"""`python app.py train-guard --data FILE`: retrain the prompt-injection screen on a labelled set.

The file is JSON Lines (``{"text": ..., "label": 0|1}``) or CSV with ``text`` and ``label`` columns (1 or
``injection`` = an attack, 0 or ``benign``). It is trained together with the project's own examples, the
support utterances and the knowledge-base sentences (``--only-data`` leaves those out), the threshold is chosen
on held-out folds of the file (guards.injection_model.fit), and the model is written to
``<data_dir>/models/guard`` (``SWITCHBOARD_DATA_DIR``, default ``.switchboard``), which guard_input loads from
then on instead of the built-in model. ``python app.py seed`` does the same with the deepset train split when
``../shared/data/prompt-injections-deepset/train.jsonl`` exists. ``--remove`` goes back to the built-in model.

A bad file exits with status 2 and one line naming the bad lines; nothing is written.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from config.settings import Settings
from guards.injection import project_rows, trained_dir
from guards.injection_model import Row, fit, load_config, read_labelled

REPO = Path(__file__).resolve().parents[1]
DEEPSET_TRAIN = REPO.parent / "shared" / "data" / "prompt-injections-deepset" / "train.jsonl"
"""The labelled set ``seed`` trains the shipped screen on when it is there (read by path, never copied)."""


def train_and_save(
    settings: Settings, data: Path | None, *, embedder: Any = None, include_project: bool = True
) -> dict[str, Any]:
    """Fit on ``data`` (+ the project's rows) with the threshold chosen on held-out folds; write the model under
    ``settings.data_dir``. Returns what was written (path, threshold, validation figures, counts)."""
    from memory.embeddings import get_embedder

    rows = project_rows() if include_project else []
    if data is not None:
        rows += [Row(t, y, "data") for t, y in read_labelled(data)]
    embedder = embedder or get_embedder(settings.embedder_cache)
    started = time.perf_counter()
    model = fit(rows, embedder, load_config(), meta={
        "origin": "trained", "data": str(data) if data is not None else None, "trained_at": time.time(),
        "include_project": include_project})
    target = model.save(trained_dir(settings.data_dir))
    return {"path": str(target), "threshold": round(model.threshold, 4),
            "document_threshold": round(model.document_threshold, 4), "training": model.meta["training"],
            "validation": model.meta.get("validation", {}), "seconds": round(time.perf_counter() - started, 1)}


def train_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="app.py train-guard", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="labelled JSONL or CSV (text,label)")
    parser.add_argument("--only-data", action="store_true",
                        help="train on the file alone, without the project's own examples")
    parser.add_argument("--remove", action="store_true", help="delete the trained model (use the built-in one)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.remove:
        target = trained_dir(settings.data_dir)
        existed = target.exists()
        shutil.rmtree(target, ignore_errors=True)
        result: dict[str, Any] = {"removed": str(target) if existed else None}
        print(json.dumps(result) if args.json else (f"removed {target}" if existed else "no trained model"))
        return 0
    if args.data is None:
        print("error: --data FILE is required (JSONL or CSV with text,label)", file=sys.stderr)
        return 2
    try:
        read_labelled(args.data)  # validate before anything heavy is loaded
        result = train_and_save(settings, args.data, include_project=not args.only_data)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
        return 0
    v = result["validation"]
    print(f"wrote {result['path']} (threshold {result['threshold']}, {result['seconds']} s)")
    print(f"held-out folds of {v.get('pool')}: recall={v.get('recall')} fpr={v.get('fpr')} "
          f"support_fpr={v.get('support_fpr')} (n={v.get('n')})")
    return 0
