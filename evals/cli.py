"""`python app.py eval KIND ...`: intents, routing, injection, slots, answers, redteam, or all (summary table)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
REPORTS = Path(__file__).with_name("reports")
KINDS = ("intents", "routing", "injection", "slots", "answers", "redteam", "all")


def eval_main(argv: list[str]) -> int:
    if not argv or argv[0] not in KINDS:
        print(f"usage: app.py eval {{{'|'.join(KINDS)}}} [options]  (got {argv[:1] or 'nothing'})")
        return 2
    kind, rest = argv[0], argv[1:]
    if kind == "intents":
        from evals.intents import eval_main as intents_main

        return intents_main(rest)
    if kind == "routing":
        from evals.routing import eval_main as routing_main

        return routing_main(rest)
    if kind == "injection":
        from evals.injection import main as injection_main

        return injection_main(rest)
    if kind == "slots":
        from evals.slots import main as slots_main

        return slots_main(rest)
    if kind == "redteam":
        from evals.redteam import main as redteam_main

        return redteam_main(rest)
    if kind == "answers":
        from evals.answers import main as answers_main

        return answers_main(rest)
    return eval_all(rest)


def eval_all(argv: list[str]) -> int:
    """Every eval on its full data, one summary table at the end (`make eval`)."""
    parser = argparse.ArgumentParser(prog="app.py eval all")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    from config.settings import Settings
    from evals import datasets
    from evals.injection import run as run_injection
    from evals.intents import run as run_intents
    from memory.embeddings import get_embedder

    settings = Settings.from_env()  # an entry point: the environment is read here, once
    rows: list[tuple[str, str, str]] = []
    embedder = get_embedder(settings.embedder_cache)
    for name in ("banking77", "clinc150", "bitext"):
        started = time.perf_counter()
        try:
            datasets.load(name, args.data_dir)
        except datasets.DatasetUnavailable as exc:
            rows.append((f"intents {name}", "skipped", str(exc)))
            continue
        r = run_intents(name, args.data_dir, REPORTS, embedder, quick=args.quick,
                        cache_dir=settings.embedding_cache_dir, command=f"python app.py eval intents --dataset {name}")
        keys = ("accuracy", "inscope_accuracy", "oos_recall", "ece", "auto_coverage", "auto_accuracy", "p50_ms")
        rows.append((f"intents {name}", ", ".join(f"{k} {r[k]:.4f}" for k in keys if r.get(k) is not None),
                     f"{time.perf_counter() - started:.0f} s; targets {r.get('targets_met')}"))
    from evals.routing import eval_main as routing_main

    routing_main(["--out", str(REPORTS)])
    routing = json.loads((REPORTS / "routing.json").read_text())
    rows.append(("routing (graph)", f"trajectory {routing['trajectory_accuracy']:.4f}, intent "
                 f"{routing['intent_accuracy']:.4f}, status {routing['status_accuracy']:.4f}",
                 f"{routing['n_cases']} cases"))
    import tempfile

    from evals.answers import fresh_seed_settings
    from evals.answers import run as run_answers

    with tempfile.TemporaryDirectory(prefix="switchboard-answers-src-") as fresh:
        answers = run_answers(fresh_seed_settings(Path(fresh)), REPORTS)
    rows.append(("answers (graph)", f"first response {answers['first_response_accuracy']:.4f}, turn "
                 f"{answers['turn_accuracy']:.4f}, wrong approvals {answers['wrong_action_proposals']}, "
                 f"unsupported {answers['unsupported_claims']}", f"{answers['conversations']} conversations"))
    if (args.data_dir / "prompt-injections-deepset").exists():
        inj = run_injection(args.data_dir, REPORTS)
        test = inj.get("test", {})
        rows.append(("injection screen", ", ".join(f"{k} {test[k]:.3f}" for k in ("precision", "recall", "f1")
                                                   if k in test), "deepset test split"))
    else:
        rows.append(("injection screen", "skipped", "prompt-injections-deepset not found"))
    from evals.slots import run as run_slots

    slots = run_slots(args.data_dir, REPORTS)
    if "skipped" in slots:
        rows.append(("slots (bitext)", "skipped", slots["skipped"]))
    else:
        rows.append(("slots (bitext)", ", ".join(f"{k} {slots['micro'][k]:.3f}" for k in ("precision", "recall", "f1")),
                     f"micro over {', '.join(slots['types'])}; test split, {slots['n_test']} rows"))
    table = Table(title="Switchboard evals")
    for col in ("eval", "result", "notes"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*row)
    Console(width=160).print(table)
    return 0
