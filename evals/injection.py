"""Evaluate the deterministic prompt-injection screen (guards.injection).

Reads ``prompt-injections-deepset/{train,test}.jsonl`` from the data directory by path (never copied into
the project). Patterns and ``THRESHOLD`` were tuned on the train split only; the test split is scored
as-is. Also reports the false-positive rate on the demo shop's own support utterances
(``demo/intent_examples.yaml``), which should be close to zero. Writes ``<out>/injection.json``; the
report holds figures and rule counts only, no dataset text.

Usage: ``python -m evals.injection [--data-dir ../shared/data] [--out evals/reports]``
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from guards.injection import THRESHOLD, screen

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
DEFAULT_OUT = REPO_ROOT / "evals" / "reports"
DATASET = "prompt-injections-deepset"
SUPPORT_FILE = REPO_ROOT / "demo" / "intent_examples.yaml"
SWEEP = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def _read_jsonl(path: Path) -> list[tuple[str, int]]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rec = json.loads(line)
                rows.append((str(rec["text"]), int(rec["label"])))
    return rows


def _metrics(labels: Sequence[int], preds: Sequence[bool]) -> dict[str, float | int]:
    tp = sum(1 for y, p in zip(labels, preds, strict=True) if y and p)
    fp = sum(1 for y, p in zip(labels, preds, strict=True) if not y and p)
    fn = sum(1 for y, p in zip(labels, preds, strict=True) if y and not p)
    tn = len(labels) - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "n": len(labels), "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
        "false_positive_rate": round(fp / (fp + tn), 4) if fp + tn else 0.0,
    }


def _score_split(rows: Sequence[tuple[str, int]]) -> tuple[dict[str, Any], list[float]]:
    verdicts = [screen(text) for text, _ in rows]
    labels = [label for _, label in rows]
    report: dict[str, Any] = _metrics(labels, [v.is_injection for v in verdicts])
    report["rules_fired_on_positives"] = dict(
        Counter(r for v, y in zip(verdicts, labels, strict=True) if y and v.is_injection for r in v.reasons)
        .most_common()
    )
    return report, [v.score for v in verdicts]


def _support_utterances(path: Path) -> list[str]:
    """All example and smoke utterances in the project's intent file, in file order."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    found: list[str] = []

    def walk(node: Any, key: str | None = None) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, str(k))
        elif isinstance(node, list) and key in {"examples", "smoke"}:
            found.extend(str(x) if not isinstance(x, dict) else str(x.get("text", "")) for x in node)
        elif isinstance(node, list):
            for item in node:
                walk(item, key)

    walk(data)
    return [u for u in found if u.strip()]


def _support_report(utterances: Iterable[str]) -> dict[str, Any]:
    utts = list(utterances)
    flagged = [(u, screen(u)) for u in utts]
    fps = [{"text": u, "score": v.score, "reasons": v.reasons} for u, v in flagged if v.is_injection]
    return {"n": len(utts), "false_positives": len(fps), "false_positive_rate": round(len(fps) / len(utts), 4)
            if utts else 0.0, "flagged": fps}


def run(data_dir: Path, out_dir: Path, *, support_file: Path = SUPPORT_FILE) -> dict[str, Any]:
    """Score the screen on the deepset train and test splits and on the project's support utterances.

    Returns the report dict and writes it to ``out_dir/injection.json``. A missing dataset or support file
    is reported under ``skipped`` instead of failing.
    """
    report: dict[str, Any] = {"threshold": THRESHOLD, "dataset": DATASET, "skipped": []}
    ds_dir = Path(data_dir) / DATASET
    train_path, test_path = ds_dir / "train.jsonl", ds_dir / "test.jsonl"
    if train_path.is_file() and test_path.is_file():
        train_rows, test_rows = _read_jsonl(train_path), _read_jsonl(test_path)
        report["train"], train_scores = _score_split(train_rows)
        labels = [y for _, y in train_rows]
        report["train_threshold_sweep"] = {
            str(t): {k: v for k, v in _metrics(labels, [s >= t for s in train_scores]).items()
                     if k in ("precision", "recall", "f1")}
            for t in SWEEP
        }
        report["test"], _ = _score_split(test_rows)
    else:
        msg = f"{ds_dir} not found: deepset prompt-injection splits skipped"
        print(msg, file=sys.stderr)
        report["skipped"].append(msg)
    if support_file.is_file():
        report["support_utterances"] = _support_report(_support_utterances(support_file))
    else:
        msg = f"{support_file} not found: support false-positive check skipped"
        print(msg, file=sys.stderr)
        report["skipped"].append(msg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "injection.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: run the evaluation and print the headline figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    report = run(args.data_dir, args.out)
    for split in ("train", "test"):
        if split in report:
            m = report[split]
            print(f"{split}: precision={m['precision']} recall={m['recall']} f1={m['f1']} (n={m['n']})")
    if "support_utterances" in report:
        s = report["support_utterances"]
        print(f"support utterances: {s['false_positives']}/{s['n']} flagged (fpr={s['false_positive_rate']})")
    print(f"wrote {Path(args.out) / 'injection.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
