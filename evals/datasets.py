"""Dataset loaders for the intent evals (Banking77, CLINC150, Bitext), read by path from the shared data dir.

The API keeps the test split out of reach of training code: `load(name, data_dir)` returns only the
train and validation splits (`DevData` has no test attribute), and `load_test(name, data_dir)` is a
separate function that only the scorer in `evals/intents.py` calls. Texts are read at run time and
never copied into the project.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from sklearn.model_selection import train_test_split

from classifier.data import read_labelled_file

DATASETS = ("banking77", "clinc150", "bitext")
OOS_LABEL = "out_of_scope"
SPLIT_SEED = 13
BANKING_VAL_FRACTION = 0.10
REPO_ROOT = Path(__file__).resolve().parent.parent
SHOP_EXAMPLES = REPO_ROOT / "demo" / "intent_examples.yaml"
_BITEXT_CSV = "bitext-customer-support/Bitext_Sample_Customer_Support_Training_Dataset.csv"


class DatasetUnavailable(FileNotFoundError):
    """The dataset's files are not under the data dir (evals skip with this message)."""


@dataclass(frozen=True)
class Split:
    """Parallel lists of texts and string labels."""

    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class DevData:
    """What training may see: train and (optional) validation splits. There is deliberately no test here."""

    name: str
    train: Split
    val: Split | None
    oos_label: str | None


def _require(path: Path) -> Path:
    if not path.exists():
        raise DatasetUnavailable(f"dataset file not found: {path}")
    return path


def _read_banking_csv(path: Path) -> Split:
    with _require(path).open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return Split([r["text"] for r in rows], [r["category"] for r in rows])


def _read_clinc(data_dir: Path, part: str) -> Split:
    data = json.loads(_require(data_dir / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    pairs = data[part] + data[f"oos_{part}"]
    return Split([t for t, _ in pairs], [OOS_LABEL if lab == "oos" else lab for _, lab in pairs])


def bitext_is_heldout(instruction: str) -> bool:
    """The deterministic Bitext hold-out rule: int(sha1(instruction), 16) % 5 == 0."""
    return int(hashlib.sha1(instruction.encode("utf-8")).hexdigest(), 16) % 5 == 0


def load(name: str, data_dir: Path) -> DevData:
    """Train and validation splits of a dataset (never its test split).

    banking77: a stratified 10 % of train.csv (seed fixed) is the validation split.
    clinc150: data_full.json train/val, with oos_train/oos_val labelled `out_of_scope`.
    bitext: the shop's own demo/intent_examples.yaml (no val: the classifier holds out 20 %).
    """
    data_dir = Path(data_dir)
    if name == "banking77":
        full = _read_banking_csv(data_dir / "banking77" / "train.csv")
        tr_x, va_x, tr_y, va_y = train_test_split(
            full.texts, full.labels, test_size=BANKING_VAL_FRACTION, stratify=full.labels,
            random_state=SPLIT_SEED,
        )
        return DevData(name, Split(list(tr_x), list(tr_y)), Split(list(va_x), list(va_y)), None)
    if name == "clinc150":
        return DevData(name, _read_clinc(data_dir, "train"), _read_clinc(data_dir, "val"), OOS_LABEL)
    if name == "bitext":
        _require(data_dir / _BITEXT_CSV)  # the scorer needs it; fail early and clearly
        texts, labels = read_labelled_file(_require(SHOP_EXAMPLES))
        return DevData(name, Split(texts, labels), None, OOS_LABEL)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def load_test(name: str, data_dir: Path) -> Split:
    """The test split, for the scorer only (clinc150 includes oos_test as `out_of_scope`)."""
    data_dir = Path(data_dir)
    if name == "banking77":
        return _read_banking_csv(data_dir / "banking77" / "test.csv")
    if name == "clinc150":
        return _read_clinc(data_dir, "test")
    if name == "bitext":
        with _require(data_dir / _BITEXT_CSV).open(encoding="utf-8", newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if bitext_is_heldout(r["instruction"])]
        return Split([r["instruction"] for r in rows], [r["intent"] for r in rows])
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
