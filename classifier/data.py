"""Read labelled (text, label) files: CSV with text,label columns, JSONL {"text","label"}, or intents YAML."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml


class DataFileError(ValueError):
    """A training/validation file is missing or malformed (message is one line, fit for a CLI)."""


def _from_yaml(path: Path) -> tuple[list[str], list[str]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DataFileError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("intents"), dict):
        raise DataFileError(f"{path}: expected 'intents: {{name: {{examples: [...]}}}}'")
    texts: list[str] = []
    labels: list[str] = []
    for name, spec in data["intents"].items():
        examples = spec.get("examples") if isinstance(spec, dict) else None
        if not isinstance(examples, list):
            raise DataFileError(f"{path}: intent {name!r} has no 'examples' list")
        for ex in examples:
            if not isinstance(ex, str) or not ex.strip():
                raise DataFileError(f"{path}: intent {name!r} has an empty or non-text example")
            texts.append(ex.strip())
            labels.append(str(name))
    return texts, labels


def _from_csv(path: Path) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        label_col = "label" if "label" in fields else ("category" if "category" in fields else None)
        if "text" not in fields or label_col is None:
            raise DataFileError(f"{path}: CSV needs 'text' and 'label' columns, found {fields}")
        texts, labels = [], []
        for n, row in enumerate(reader, start=2):
            text, label = (row.get("text") or "").strip(), (row.get(label_col) or "").strip()
            if not text or not label:
                raise DataFileError(f"{path}:{n}: empty text or label")
            texts.append(text)
            labels.append(label)
    return texts, labels


def _from_jsonl(path: Path) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFileError(f"{path}:{n}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not isinstance(row.get("label"), str):
            raise DataFileError(f"{path}:{n}: expected an object with string 'text' and 'label'")
        if not row["text"].strip() or not row["label"].strip():
            raise DataFileError(f"{path}:{n}: empty text or label")
        texts.append(row["text"].strip())
        labels.append(row["label"].strip())
    return texts, labels


def read_labelled_file(path: Path) -> tuple[list[str], list[str]]:
    """Texts and labels from a .csv, .jsonl/.json-lines or .yaml/.yml file; raises DataFileError."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            texts, labels = _from_yaml(path)
        elif suffix == ".csv":
            texts, labels = _from_csv(path)
        elif suffix in (".jsonl", ".ndjson", ".json"):
            texts, labels = _from_jsonl(path)
        else:
            raise DataFileError(f"{path}: unsupported file type {suffix!r} (use .csv, .jsonl or .yaml)")
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{path}: not UTF-8 text") from exc
    if not texts:
        raise DataFileError(f"{path}: no examples")
    if len(set(labels)) < 2:
        raise DataFileError(f"{path}: need at least two different labels")
    return texts, labels
