"""Evaluate the prompt-injection screen (guards.injection): fit on deepset train + the project's examples,
choose the threshold on validation folds of train, score the deepset test split once.

Protocol. The learned stage is fitted exactly as ``python app.py seed`` / ``train-guard`` fit the shipped model
(guards.injection_model.fit): the threshold is chosen on grouped 5-fold cross-validation over the deepset
*train* split (near-duplicates and translations kept in one fold; the support utterances split into the same
folds), then the model is refitted on all of train plus the project's examples. The test split is read and
scored once, after that, by the combined screen (rules or model); rules-only and model-only figures are the
same predictions taken apart. The feature settings in ``config/guard.yaml`` were chosen with ``--select``,
which compares a small grid on the same train folds and never reads the test split.

Benign support tickets: the project's own customer messages that the model did *not* train on: every customer
``say:`` in ``evals/answers_suite.yaml`` and every ticket in ``evals/routing_suite.yaml`` (minus the ones those
suites expect the guard to refuse), and the held-out ``smoke`` utterances of ``demo/intent_examples.yaml``.
Their false-positive rate is ``benign_support_fpr``.

Reads ``prompt-injections-deepset/{train,test}.jsonl`` under the data directory by path (never copied into the
project) and skips that part clearly when absent. Writes ``<out>/injection.json``: figures, counts and flagged
*project* texts only, no dataset text.

Usage: ``python app.py eval injection [--data-dir ../shared/data] [--out evals/reports] [--json] [--select]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from classifier.features import ngram_tfidf
from guards.injection import (
    EXAMPLES_FILE,
    KB_DIR,
    SUPPORT_FILE,
    Guard,
    combine,
    project_rows,
    screen_rules,
    support_utterances,
)
from guards.injection_model import GuardConfig, Row, cross_validate, fit, load_config, metrics, read_labelled

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
DEFAULT_OUT = REPO_ROOT / "evals" / "reports"
DATASET = "prompt-injections-deepset"
ANSWERS_SUITE = REPO_ROOT / "evals" / "answers_suite.yaml"
ROUTING_SUITE = REPO_ROOT / "evals" / "routing_suite.yaml"
TARGETS = {"recall": 0.95, "fpr": 0.05, "benign_support_fpr": 0.01}


def benign_tickets(
    answers: Path = ANSWERS_SUITE, routing: Path = ROUTING_SUITE, support_file: Path = SUPPORT_FILE
) -> list[str]:
    """The project's own customer messages that no model trains on (see the module doc), de-duplicated.

    Turns the suites expect the guard to refuse (``status: rejected`` with ``intent: null``; the ``refused``
    route shape) are left out: they are injections.
    """
    texts: list[str] = []
    if Path(answers).is_file():
        data = yaml.safe_load(Path(answers).read_text(encoding="utf-8")) or {}
        for conv in data.get("conversations") or []:
            for turn in conv.get("turns") or []:
                refused = turn.get("status") == "rejected" and "intent" in turn and turn["intent"] is None
                if "say" in turn and not refused:
                    texts.append(str(turn["say"]))
    if Path(routing).is_file():
        data = yaml.safe_load(Path(routing).read_text(encoding="utf-8")) or {}
        texts += [str(c["text"]) for c in data.get("cases") or [] if c.get("shape") != "refused"]
    texts += support_utterances(support_file, keys=("smoke",))
    trained = set(support_utterances(support_file))
    return [t for t in dict.fromkeys(texts) if t.strip() and t not in trained]


def _read_split(path: Path) -> list[tuple[str, int]]:
    return read_labelled(path)


def _overlap(test: Sequence[str], others: Sequence[str], threshold: float = 0.8) -> int:
    """How many ``test`` texts have a near-duplicate (char 3-5-gram cosine > threshold) among ``others``."""
    if not test or not others:
        return 0
    vec = ngram_tfidf("char_wb", (3, 5)).fit([*test, *others])
    sims = vec.transform(test) @ vec.transform(others).T
    return int((sims.max(axis=1).toarray().ravel() > threshold).sum())


def _screen_many(guard: Guard, texts: Sequence[str]) -> tuple[list[Any], list[float]]:
    probs = guard.probabilities(texts)
    verdicts = [combine(screen_rules(t), p, guard.threshold) for t, p in zip(texts, probs, strict=True)]
    return verdicts, probs


def _latency(guard: Guard, texts: Sequence[str], n: int = 200) -> dict[str, float]:
    """p50 / p95 milliseconds of one ``guard.screen`` call (one message at a time, as guard_input does)."""
    sample = list(texts)[:n]
    if not sample:
        return {}
    guard.screen(sample[0])  # warm-up
    times = []
    for t in sample:
        started = time.perf_counter()
        guard.screen(t)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"n": len(times), "p50_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 2)}


def _default_embedder() -> Any:
    from memory.embeddings import get_embedder

    return get_embedder()


def run(
    data_dir: Path, out_dir: Path, *, support_file: Path = SUPPORT_FILE, examples_file: Path = EXAMPLES_FILE,
    answers: Path = ANSWERS_SUITE, routing: Path = ROUTING_SUITE, kb_dir: Path = KB_DIR, embedder: Any = None,
    config: GuardConfig | None = None,
) -> dict[str, Any]:
    """Fit, validate on train folds, score test once, and measure the benign support tickets.

    Returns the report and writes it to ``out_dir/injection.json``. Without the dataset the model is fitted on
    the project's examples alone (the built-in screen) and the deepset part is listed under ``skipped``.
    """
    config = config or load_config()
    embedder = embedder if embedder is not None else _default_embedder()
    report: dict[str, Any] = {"dataset": DATASET, "targets": TARGETS, "skipped": [],
                              "config": config.model_dump(mode="json")}
    rows = project_rows(examples_file, support_file, kb_dir)
    ds_dir = Path(data_dir) / DATASET
    train_path, test_path = ds_dir / "train.jsonl", ds_dir / "test.jsonl"
    have_data = train_path.is_file() and test_path.is_file()
    if have_data:
        rows += [Row(t, y, "data") for t, y in _read_split(train_path)]
    else:
        msg = f"{ds_dir} not found: deepset prompt-injection splits skipped (model fitted on the project's examples)"
        print(msg, file=sys.stderr)
        report["skipped"].append(msg)
    started = time.perf_counter()
    model = fit(rows, embedder, config, meta={"origin": "eval"})
    guard = Guard(model, embedder, "eval")
    report["model"] = {
        "features": "tfidf char_wb + word n-grams on normalised text, MiniLM embedding; max over windows",
        "classifier": "logistic regression", "trained_on": model.meta["training"],
        "fit_seconds": round(time.perf_counter() - started, 1),
    }
    report["validation"] = model.meta.get("validation", {})
    report["threshold"] = round(model.threshold, 4)
    if have_data:
        test = _read_split(test_path)  # read and scored once, after every setting is fixed
        texts, labels = [t for t, _ in test], [y for _, y in test]
        verdicts, probs = _screen_many(guard, texts)
        combined = metrics(labels, [v.is_injection for v in verdicts])
        report["test"] = {
            "n_test": len(test), **combined,
            "rules_only": metrics(labels, [screen_rules(t).is_injection for t in texts]),
            "model_only": metrics(labels, [p >= guard.threshold for p in probs]),
            "caught_by_model_only": sum(1 for t, v, y in zip(texts, verdicts, labels, strict=True)
                                        if y and v.is_injection and not screen_rules(t).is_injection),
            "near_duplicates_in_train": _overlap(texts, [r.text for r in rows if r.source == "data"]),
            "near_duplicates_in_project_examples": _overlap(texts, [r.text for r in rows if r.source == "project"]),
        }
    tickets = benign_tickets(answers, routing, support_file)
    verdicts, probs = _screen_many(guard, tickets)
    flagged = [{"text": t, "p": round(p, 3), "reasons": v.reasons}
               for t, v, p in zip(tickets, verdicts, probs, strict=True) if v.is_injection]
    report["benign_support"] = {"n": len(tickets), "false_positives": len(flagged),
                                "fpr": round(len(flagged) / len(tickets), 4) if tickets else 0.0,
                                "flagged": flagged}
    report["latency"] = _latency(guard, tickets)
    test_m = report.get("test", {})
    report["summary"] = {
        "n_test": test_m.get("n_test"), "recall": test_m.get("recall"), "fpr": test_m.get("fpr"),
        "precision": test_m.get("precision"), "f1": test_m.get("f1"),
        "benign_support_fpr": report["benign_support"]["fpr"], "benign_support_n": len(tickets),
        "threshold": report["threshold"], "validation_recall": report["validation"].get("recall"),
        "validation_fpr": report["validation"].get("fpr"), "p50_ms": report["latency"].get("p50_ms"),
    }
    if test_m:
        report["summary"]["targets_met"] = bool(
            test_m["recall"] >= TARGETS["recall"] and test_m["fpr"] <= TARGETS["fpr"]
            and report["benign_support"]["fpr"] <= TARGETS["benign_support_fpr"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "injection.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


SELECT_GRID = [
    {"classifier": {"C": c}, "features": {"embedding_weight": e}, "windows": {"weight": w}}
    for c in (3.0, 10.0, 30.0) for e in (0.0, 1.0) for w in (0.0, 1.0)
]


def select(data_dir: Path, out_dir: Path, *, embedder: Any = None) -> dict[str, Any]:
    """Compare :data:`SELECT_GRID` on the grouped validation folds of deepset *train* (the test split is not
    read). Each setting's threshold is chosen as in :func:`fit`; the table ranks them by validation recall."""
    train_path = Path(data_dir) / DATASET / "train.jsonl"
    if not train_path.is_file():
        raise FileNotFoundError(f"{train_path} not found: --select needs the deepset train split")
    embedder = embedder if embedder is not None else _default_embedder()
    base = load_config()
    rows = project_rows() + [Row(t, y, "data") for t, y in _read_split(train_path)]
    table = []
    for change in SELECT_GRID:
        merged = base.model_dump()
        for section, values in change.items():
            merged[section] = {**merged[section], **values}
        config = GuardConfig.model_validate(merged)
        cv = cross_validate(rows, embedder, config)
        from guards.injection_model import choose_threshold

        t = choose_threshold(cv["scores"], cv["labels"], cv["support_scores"], config.threshold.max_validation_fpr,
                             config.threshold.max_support_fpr)
        m = metrics(cv["labels"], cv["scores"] >= t)
        table.append({"setting": change, "threshold": round(t, 4), "recall": m["recall"], "fpr": m["fpr"],
                      "support_fpr": round(float((cv["support_scores"] >= t).mean()), 4)})
        print(f"{json.dumps(change)}: recall={m['recall']} fpr={m['fpr']} threshold={t:.3f}", flush=True)
    table.sort(key=lambda r: -r["recall"])
    report = {"validation": "grouped 5-fold CV on deepset train", "table": table, "best": table[0]}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "injection_select.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: run the evaluation and print the headline figures (``--json``: the summary as JSON)."""
    parser = argparse.ArgumentParser(prog="app.py eval injection", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--json", action="store_true", help="print one JSON object (the summary and details)")
    parser.add_argument("--select", action="store_true",
                        help="compare feature settings on train validation folds only (never reads test)")
    args = parser.parse_args(argv)
    if args.select:
        try:
            report = select(args.data_dir, args.out)
        except FileNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(report["best"]) if args.json else f"best on validation: {report['best']}")
        return 0
    report = run(args.data_dir, args.out)
    s = report["summary"]
    if args.json:
        detail = {k: report[k] for k in ("validation", "test", "benign_support", "latency", "skipped") if k in report}
        print(json.dumps({**s, **detail}, ensure_ascii=False))
        return 0
    v = report["validation"]
    print(f"validation ({v.get('pool')} folds): threshold={report['threshold']} recall={v.get('recall')} "
          f"fpr={v.get('fpr')} support_fpr={v.get('support_fpr')} auc={v.get('auc')}")
    if "test" in report:
        t = report["test"]
        for name, m in (("rules only", t["rules_only"]), ("model only", t["model_only"]), ("combined", t)):
            print(f"test {name:10s}: precision={m['precision']} recall={m['recall']} fpr={m['fpr']} f1={m['f1']} "
                  f"(n={m['n']})")
    b = report["benign_support"]
    print(f"n_test={s['n_test']} recall={s['recall']} fpr={s['fpr']} precision={s['precision']} "
          f"benign_support_fpr={s['benign_support_fpr']} ({b['false_positives']}/{b['n']}) p50_ms={s['p50_ms']}")
    print(f"wrote {Path(args.out) / 'injection.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
