"""`python app.py train-intents`, and training the demo shop's classifier when the demo is seeded."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from classifier.config import ClassifierConfig
from classifier.data import DataFileError, read_labelled_file
from classifier.model import IntentClassifier
from config.settings import Settings
from memory.embedder import Embedder

OOS_LABEL = "out_of_scope"
# The shop has no separate validation file: hold out 20 % (stratified) for the choices, then refit on all.
SHOP_CONFIG = ClassifierConfig(holdout_fraction=0.2, refit_on_all=True)


def _default_embedder(settings: Settings) -> Embedder:
    from memory.embeddings import get_embedder

    return get_embedder(settings.embedder_cache)


def train_shop_classifier(examples_yaml: Path, out_dir: Path, embedder: Embedder,
                          config: ClassifierConfig | None = None) -> IntentClassifier:
    """Train the shop classifier on demo/intent_examples.yaml and save it to `out_dir`.

    With no separate validation file a stratified 20 % is held out for blend weights, temperature and the
    out-of-scope threshold; the model is then refit on all examples, keeping those choices.
    """
    texts, labels = read_labelled_file(Path(examples_yaml))
    clf = IntentClassifier.fit(texts, labels, embedder=embedder, oos_label=OOS_LABEL,
                               config=config or SHOP_CONFIG)
    clf.save(Path(out_dir), source=training_source(Path(examples_yaml), DEMO_SOURCE))
    return clf


DEMO_SOURCE = "demo"
"""`source.kind` of the shop classifier `app.py seed` trains on demo/intent_examples.yaml."""


def training_source(path: Path, kind: str) -> dict[str, str]:
    """What a model was trained on: `kind` ("demo" for seed, "train-intents"), the file's name and its sha256."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return {"kind": kind, "file": Path(path).name, "sha256": digest}


def trained_source(model_dir: Path) -> dict[str, str] | None:
    """The `source` recorded in `model_dir`'s manifest (None when there is no model or it predates the record)."""
    path = Path(model_dir) / "manifest.json"
    try:
        source = json.loads(path.read_text(encoding="utf-8")).get("source")
    except (OSError, ValueError, AttributeError):
        return None
    return source if isinstance(source, dict) else None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="app.py train-intents", description="Train the intent classifier.")
    p.add_argument("--data", required=True, type=Path, help="CSV (text,label), JSONL {text,label} or intents YAML")
    p.add_argument("--val", type=Path, default=None, help="validation file (default: hold out 20%% of --data)")
    p.add_argument("--out", type=Path, default=None,
                   help="output dir (default: $SWITCHBOARD_DATA_DIR/models/intents, which serving loads)")
    p.add_argument("--oos-label", default=OOS_LABEL, help="label of out-of-scope examples (default out_of_scope)")
    p.add_argument("--finetune", action="store_true",
                   help="fine-tune the encoder on --data first (needs the torch venv: make train-venv)")
    p.add_argument("--finetune-dir", type=Path, default=None,
                   help="weights folder (default $SWITCHBOARD_DATA_DIR/models/finetuned-<data stem>)")
    p.add_argument("--finetune-epochs", type=int, default=1)
    p.add_argument("--finetune-lr", type=float, default=4e-5)
    return p


def train_main(argv: list[str], embedder: Embedder | None = None, settings: Settings | None = None) -> int:
    """Train from files, save the model, print its validation metrics as JSON. Returns an exit code.

    Without --out the model goes to `settings.intent_model_dir`, the directory `build_services` loads.
    """
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        texts, labels = read_labelled_file(args.data)
        val_texts = val_labels = None
        if args.val is not None:
            val_texts, val_labels = read_labelled_file(args.val)
    except DataFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = settings or Settings.from_env()
    out = args.out or settings.intent_model_dir
    extra: dict[str, object] = {}
    encoder: Path | None = None
    if args.finetune:
        try:
            embedder, encoder, extra = _finetuned_embedder(args, texts, labels, settings)
        except (RuntimeError, ValueError) as exc:  # FinetuneUnavailable is a RuntimeError
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        clf = IntentClassifier.fit(texts, labels, embedder=embedder or _default_embedder(settings), val_texts=val_texts,
                                   val_labels=val_labels, oos_label=args.oos_label)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # serving embeds with the same encoder (encoder.json); the source tells `app.py seed` to keep this model
    clf.save(out, encoder_dir=encoder, source=training_source(args.data, "train-intents"))
    print(json.dumps({"saved": str(out), "labels": len(clf.labels), **extra, **clf.metrics}, indent=2,
                     default=float))
    return 0


def _finetuned_embedder(args: argparse.Namespace, texts: list[str], labels: list[str],
                        settings: Settings) -> tuple[Embedder, Path, dict[str, object]]:
    """Fine-tune MiniLM on the training file (never --val); return its ONNX embedder, folder and a summary."""
    from classifier.finetune import FinetuneOptions, finetune_encoder
    from memory.embeddings import MiniLMEmbedder

    folder = args.finetune_dir or settings.finetuned_encoder_dir(Path(args.data).stem)
    options = FinetuneOptions(epochs=args.finetune_epochs, lr=args.finetune_lr)
    meta = finetune_encoder(texts, labels, folder, options=options, exclude_labels={args.oos_label})
    summary = {"encoder": str(folder), "finetune_history": meta.get("history"),
               "finetune_reused": meta["reused"]}
    return MiniLMEmbedder(model_dir=folder), folder, summary
