"""Intent evals: loaders keep test away from training, reports are written, quick real-data floors."""

from __future__ import annotations

import json
import os
import random
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from classifier.model import IntentClassifier
from evals import datasets, intents

REAL_DATA = Path(os.environ.get("SWITCHBOARD_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


class FakeEmbedder:
    """Deterministic bag-of-words embedder (token vectors seeded by a stable hash)."""

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        out = np.zeros((len(texts), 32), dtype=np.float32)
        for i, text in enumerate(texts):
            for tok in re.findall(r"[a-z]+", text.lower()) or ["<empty>"]:
                out[i] += np.random.default_rng(sum(map(ord, tok)) * 7919 + len(tok)).standard_normal(32)
            out[i] /= np.linalg.norm(out[i])
        return out


WORDS = {"card_arrival": "card arrive post mail", "top_up": "top up add money wallet",
         "exchange_rate": "exchange rate currency convert", "lost_card": "lost stolen card block"}


def _rows(n: int, seed: int) -> list[tuple[str, str]]:
    rnd = random.Random(seed)
    rows = []
    for label, words in WORDS.items():
        for _ in range(n):
            picked = " ".join(rnd.sample(words.split(), 3))
            rows.append((f"please {picked} {rnd.choice(['now', 'today', 'asap'])}", label))
    return rows


@pytest.fixture()
def fake_banking(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "banking77").mkdir(parents=True)
    for name, n, seed in (("train.csv", 30, 1), ("test.csv", 10, 2)):
        lines = ["text,category"] + [f"{t},{lab}" for t, lab in _rows(n, seed)]
        (root / "banking77" / name).write_text("\n".join(lines) + "\n")
    return root


def test_dev_data_has_no_test_split(fake_banking: Path) -> None:
    dev = datasets.load("banking77", fake_banking)
    assert not hasattr(dev, "test")
    assert len(dev.train) == 108 and len(dev.val) == 12  # stratified 10 % hold-out of train
    assert Counter(dev.val.labels) == dict.fromkeys(WORDS, 3)


def test_training_never_reads_test_split(fake_banking: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    state = {"fitting": False, "test_reads": 0}
    real_fit, real_read, real_load_test = IntentClassifier.fit.__func__, datasets._read_banking_csv, datasets.load_test

    def fit(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
        state["fitting"] = True
        try:
            return real_fit(cls, *args, **kwargs)
        finally:
            state["fitting"] = False

    def read(path: Path) -> datasets.Split:
        assert not (state["fitting"] and path.name == "test.csv"), "training read the test file"
        return real_read(path)

    def load_test(name: str, data_dir: Path) -> datasets.Split:
        if state["fitting"]:
            raise AssertionError("load_test called during fit")
        state["test_reads"] += 1
        return real_load_test(name, data_dir)

    monkeypatch.setattr(IntentClassifier, "fit", classmethod(fit))
    monkeypatch.setattr(datasets, "_read_banking_csv", read)
    monkeypatch.setattr(datasets, "load_test", load_test)
    report = intents.run("banking77", fake_banking, tmp_path / "reports", FakeEmbedder(), cache_dir=tmp_path / "c")
    assert state["test_reads"] == 1
    for key in ("dataset", "n_test", "accuracy", "macro_f1", "ece", "auto_threshold", "auto_coverage",
                "auto_accuracy", "p50_ms"):
        assert key in report
    assert report["n_test"] == 40 and report["accuracy"] >= 0.9
    saved = json.loads((tmp_path / "reports" / "intents-banking77.json").read_text())
    assert saved["accuracy"] == report["accuracy"]
    assert (tmp_path / "reports" / "intents-banking77.png").read_bytes()[:4] == b"\x89PNG"


def test_clinc_report_has_oos_metrics(tmp_path: Path) -> None:
    oos = ["what is the capital of peru", "sing me a song", "how tall is everest", "best pizza topping",
           "who wrote hamlet", "is it going to rain", "translate hello to french", "play some jazz",
           "what time is it in tokyo", "how many legs does a spider have", "tell me a riddle", "define entropy"]
    data = {}
    for part, n, seed in (("train", 20, 1), ("val", 8, 2), ("test", 8, 3)):
        data[part] = [[t, lab] for t, lab in _rows(n, seed)]
        data[f"oos_{part}"] = [[f"{q} {part} {i}", "oos"] for i, q in enumerate(oos)]
    (tmp_path / "clinc150").mkdir()
    (tmp_path / "clinc150" / "data_full.json").write_text(json.dumps(data))
    report = intents.run("clinc150", tmp_path, tmp_path / "out", FakeEmbedder(), cache_dir=tmp_path / "c")
    assert {"inscope_accuracy", "oos_recall", "oos_auroc"} <= set(report)
    assert report["n_test"] == 32 + 12 and report["validation"]["oos_mode"] == "supervised"


def test_missing_data_dir_is_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = intents.eval_main(["intents", "--dataset", "clinc150", "--data-dir", str(tmp_path / "none"),
                              "--out", str(tmp_path / "out")], embedder=FakeEmbedder())
    assert code == 0 and capsys.readouterr().out.startswith("skipped:")
    assert not (tmp_path / "out").exists()


def test_unknown_dataset_is_a_usage_error(tmp_path: Path) -> None:
    assert intents.eval_main(["intents", "--dataset", "imdb", "--data-dir", str(tmp_path)]) == 2


def test_bitext_holdout_rule() -> None:
    import hashlib

    picked = [s for s in (f"q{i}" for i in range(200)) if datasets.bitext_is_heldout(s)]
    assert picked and all(int(hashlib.sha1(s.encode()).hexdigest(), 16) % 5 == 0 for s in picked)
    assert 20 <= len(picked) <= 60


@pytest.mark.skipif(not (REAL_DATA / "banking77" / "train.csv").exists(), reason="shared Banking77 data absent")
def test_quick_banking77_floors(tmp_path: Path) -> None:
    """Real MiniLM + real Banking77, quick subsample (20 train / 6 val / 8 test per intent).

    Measured quick values (this machine, 2 cores): accuracy 0.898, macro_f1 0.896, ece 0.044 (616 test rows).
    Floors: accuracy and macro F1 minus a 0.04 margin; ECE (noisy on 616 rows) at most 0.08.
    """
    from memory import embeddings  # the project's own module: an import error must fail, not skip
    report = intents.run("banking77", REAL_DATA, tmp_path, embeddings.get_embedder(), quick=True)
    assert report["quick"] and report["n_test"] == 77 * 8
    assert report["accuracy"] >= 0.858
    assert report["macro_f1"] >= 0.856
    assert report["ece"] <= 0.08
