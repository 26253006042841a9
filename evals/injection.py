"""Evaluate the two-stage prompt-injection screen (guards.injection): rules only, model only, combined.

Reads ``prompt-injections-deepset/{train,test}.jsonl`` from the data directory by path (never copied into
the project). The rule patterns, ``THRESHOLD`` and ``MODEL_THRESHOLD`` were chosen on the train split only
(the model never trains on it: it learns from ``guards/injection_examples.yaml`` and the support
utterances); the test split is scored as-is. The model threshold is selected as the one with the best
model-only F1 on train among those whose cross-validated false-positive rate on the support utterances is
at most ``MAX_SUPPORT_CV_FPR``.

Support-utterance false positives (``demo/intent_examples.yaml``) are reported three ways: on every
utterance with the deployed screen (the ``examples`` are in the model's training data, so this is
in-sample), on the held-out ``smoke`` utterances, and 5-fold cross-validated over the ``examples`` (each
fold scored by a model trained without it), the honest estimate for unseen support text. Writes
``<out>/injection.json``; the report holds figures, rule counts and flagged *project* texts only, no
dataset text.

Usage: ``python -m evals.injection [--data-dir ../shared/data] [--out evals/reports]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guards.injection import (
    EXAMPLES_FILE,
    MODEL_THRESHOLD,
    SUPPORT_FILE,
    THRESHOLD,
    InjectionVerdict,
    combine,
    fit_model,
    load_examples,
    model_probabilities,
    screen_rules,
    support_utterances,
    weighted_examples,
)

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
DEFAULT_OUT = REPO_ROOT / "evals" / "reports"
DATASET = "prompt-injections-deepset"
SWEEP = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
MODEL_SWEEP = tuple(round(0.3 + 0.05 * i, 2) for i in range(13))  # 0.30 .. 0.90
MAX_SUPPORT_CV_FPR = 0.01
CV_FOLDS = 5


def _read_jsonl(path: Path) -> list[tuple[str, int]]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rec = json.loads(line)
                rows.append((str(rec["text"]), int(rec["label"])))
    return rows


def _metrics(labels: Sequence[int], preds: Sequence[bool]) -> dict[str, Any]:
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


def _prf(m: dict[str, Any]) -> dict[str, Any]:
    return {k: m[k] for k in ("precision", "recall", "f1")}


def _fired(labels: Sequence[int], verdicts: Sequence[InjectionVerdict]) -> dict[str, int]:
    counts = Counter(
        "model" if r.startswith("model:") else r
        for v, y in zip(verdicts, labels, strict=True) if y and v.is_injection for r in v.reasons
    )
    return dict(counts.most_common())


def _score_split(rows: Sequence[tuple[str, int]], model: Pipeline) -> tuple[dict[str, Any], list[float], list[float]]:
    """Combined metrics (top level, the deployed screen) with ``rules_only`` and ``model_only`` beside them."""
    texts, labels = [t for t, _ in rows], [y for _, y in rows]
    rules = [screen_rules(t) for t in texts]
    probs = model_probabilities(texts, model)
    combined = [combine(r, p) for r, p in zip(rules, probs, strict=True)]
    report: dict[str, Any] = _metrics(labels, [v.is_injection for v in combined])
    report["rules_only"] = _metrics(labels, [v.is_injection for v in rules])
    report["model_only"] = _metrics(labels, [p >= MODEL_THRESHOLD for p in probs])
    report["rules_fired_on_positives"] = _fired(labels, combined)
    report["caught_by_model_only"] = sum(
        1 for r, v, y in zip(rules, combined, labels, strict=True) if y and v.is_injection and not r.is_injection
    )
    return report, [v.score for v in rules], probs


def _cv_support_probabilities(
    injections: Sequence[str], benign: Sequence[str], support: Sequence[str]
) -> list[float]:
    """Probability for each support utterance from a model trained without its fold (interleaved folds)."""
    probs = [0.0] * len(support)
    if len(support) < CV_FOLDS:
        return probs
    bounds = [round(i * len(support) / CV_FOLDS) for i in range(CV_FOLDS + 1)]
    order = list(range(len(support)))
    # Interleave so every fold holds every intent (the file is grouped by intent).
    order = [i for k in range(CV_FOLDS) for i in order[k::CV_FOLDS]]
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        held = set(order[lo:hi])
        train = [u for i, u in enumerate(support) if i not in held]
        model = fit_model(*weighted_examples(injections, benign, train))
        idx = sorted(held)
        for i, p in zip(idx, model_probabilities([support[i] for i in idx], model), strict=True):
            probs[i] = p
    return probs


def _fp_block(texts: Sequence[str], flagged: Sequence[bool], probs: Sequence[float] | None = None) -> dict[str, Any]:
    hits = [i for i, f in enumerate(flagged) if f]
    return {
        "n": len(texts), "false_positives": len(hits),
        "false_positive_rate": round(len(hits) / len(texts), 4) if texts else 0.0,
        "flagged": [{"text": texts[i], **({"p": round(probs[i], 3)} if probs else {})} for i in hits],
    }


def _support_report(
    support_file: Path, model: Pipeline, cv_probs: Sequence[float]
) -> dict[str, Any]:
    examples = support_utterances(support_file)
    smoke = support_utterances(support_file, keys=("smoke",))
    every = examples + smoke
    rules = [screen_rules(u) for u in every]
    probs = model_probabilities(every, model)
    combined = [combine(r, p) for r, p in zip(rules, probs, strict=True)]
    report = _fp_block(every, [v.is_injection for v in combined], probs)
    report["rules_only"] = _fp_block(every, [v.is_injection for v in rules])
    report["held_out_smoke"] = _fp_block(smoke, [v.is_injection for v in combined[len(examples):]],
                                         probs[len(examples):])
    cv_rules = rules[: len(examples)]
    report["cross_validated_examples"] = {
        "folds": CV_FOLDS,
        **_fp_block(examples, [r.is_injection or p >= MODEL_THRESHOLD
                               for r, p in zip(cv_rules, cv_probs, strict=True)], list(cv_probs)),
        "model_only_fp_by_threshold": {str(t): sum(p >= t for p in cv_probs) for t in MODEL_SWEEP},
    }
    return report


def select_model_threshold(
    labels: Sequence[int], probs: Sequence[float], support_cv_probs: Sequence[float]
) -> tuple[float, dict[str, dict[str, Any]]]:
    """Pick the model threshold with the best model-only F1 on ``labels`` among those whose cross-validated
    support false-positive rate is at most ``MAX_SUPPORT_CV_FPR`` (ties: the higher threshold).

    Returns the threshold and the sweep table it was chosen from.
    """
    sweep: dict[str, dict[str, Any]] = {}
    best: tuple[float, float] | None = None
    n_support = max(1, len(support_cv_probs))
    for t in MODEL_SWEEP:
        m = _prf(_metrics(labels, [p >= t for p in probs]))
        fp = sum(p >= t for p in support_cv_probs)
        sweep[str(t)] = {**m, "support_cv_fp": fp}
        if fp / n_support <= MAX_SUPPORT_CV_FPR and (best is None or m["f1"] >= best[1]):
            best = (t, m["f1"])
    return (best[0] if best else MODEL_SWEEP[-1]), sweep


def run(
    data_dir: Path, out_dir: Path, *, support_file: Path = SUPPORT_FILE, examples_file: Path = EXAMPLES_FILE
) -> dict[str, Any]:
    """Score rules only, model only and the combined screen on the deepset splits and the support utterances.

    The model is fitted from ``examples_file`` and ``support_file`` (the deployed screen uses the defaults).
    Returns the report dict and writes it to ``out_dir/injection.json``. A missing dataset or support file
    is reported under ``skipped`` instead of failing.
    """
    report: dict[str, Any] = {
        "threshold": THRESHOLD, "model_threshold": MODEL_THRESHOLD, "dataset": DATASET, "skipped": [],
    }
    injections, benign = load_examples(examples_file)
    support = support_utterances(support_file)
    started = time.perf_counter()
    model = fit_model(*weighted_examples(injections, benign, support))
    report["model"] = {
        "features": "tfidf char_wb 2-5 + word 1-2 on normalised text", "classifier": "logistic regression",
        "training_examples": {"injection": len(injections), "benign": len(benign), "support": len(support)},
        "fit_seconds": round(time.perf_counter() - started, 2),
    }
    cv_probs = _cv_support_probabilities(injections, benign, support) if support else []
    ds_dir = Path(data_dir) / DATASET
    train_path, test_path = ds_dir / "train.jsonl", ds_dir / "test.jsonl"
    if train_path.is_file() and test_path.is_file():
        train_rows, test_rows = _read_jsonl(train_path), _read_jsonl(test_path)
        report["train"], rule_scores, train_probs = _score_split(train_rows, model)
        labels = [y for _, y in train_rows]
        report["train_rule_threshold_sweep"] = {
            str(t): _prf(_metrics(labels, [s >= t for s in rule_scores])) for t in SWEEP
        }
        selected, sweep = select_model_threshold(labels, train_probs, cv_probs)
        report["train_model_threshold_sweep"] = sweep
        report["model_threshold_selected_on_train"] = selected
        report["test"], _, _ = _score_split(test_rows, model)
    else:
        msg = f"{ds_dir} not found: deepset prompt-injection splits skipped"
        print(msg, file=sys.stderr)
        report["skipped"].append(msg)
    if support_file.is_file():
        report["support_utterances"] = _support_report(support_file, model, cv_probs)
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
            for name, m in (("rules only", report[split]["rules_only"]), ("model only", report[split]["model_only"]),
                            ("combined", report[split])):
                print(f"{split} {name:10s}: precision={m['precision']} recall={m['recall']} f1={m['f1']} "
                      f"(n={m['n']})")
    if "model_threshold_selected_on_train" in report:
        print(f"model threshold: {MODEL_THRESHOLD} (selected on train: {report['model_threshold_selected_on_train']})")
    if "support_utterances" in report:
        s = report["support_utterances"]
        cv = s["cross_validated_examples"]
        print(f"support utterances: {s['false_positives']}/{s['n']} flagged (rules only "
              f"{s['rules_only']['false_positives']}); held-out smoke {s['held_out_smoke']['false_positives']}/"
              f"{s['held_out_smoke']['n']}; {cv['folds']}-fold CV {cv['false_positives']}/{cv['n']}")
    print(f"wrote {Path(args.out) / 'injection.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
