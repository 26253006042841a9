"""Intent classifier: training, calibration, out-of-scope, persistence, policy tiers, LLM cascade, CLI."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from classifier.calibration import apply_temperature, expected_calibration_error, fit_temperature
from classifier.cascade import refine_with_llm
from classifier.cli import train_main, train_shop_classifier
from classifier.config import ClassifierConfig
from classifier.model import IntentClassifier, Prediction
from classifier.policy import decide


class FakeEmbedder:
    """Deterministic bag-of-words embedder: each token has a fixed random unit vector (seeded by sha1)."""

    dim = 64

    def __init__(self) -> None:
        self.calls = 0

    def _vec(self, token: str) -> np.ndarray:
        seed = int(hashlib.sha1(token.encode()).hexdigest()[:8], 16)
        return np.random.default_rng(seed).standard_normal(self.dim)

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            tokens = re.findall(r"[a-z]+", text.lower()) or ["<empty>"]
            v = sum(self._vec(t) for t in tokens)
            out[i] = v / np.linalg.norm(v)
        return out


TEMPLATES = {
    "track_order": ["where is my order {n}", "track my package {n}", "has order {n} shipped yet",
                    "when will my parcel {n} arrive", "delivery status of order {n}"],
    "get_refund": ["i want my money back for {n}", "refund order {n} please", "can i get a refund on {n}",
                   "return and refund item {n}", "please reimburse purchase {n}"],
    "recover_password": ["i forgot my password {n}", "reset my password {n}", "cannot log in password lost {n}",
                         "password recovery for account {n}", "help me change forgotten password {n}"],
    "out_of_scope": ["what is the weather in city {n}", "tell me a joke about cats {n}",
                     "who won the football match {n}", "recipe for banana bread {n}", "how tall is mountain {n}"],
}


def make_data(ns: range) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for label, temps in TEMPLATES.items():
        for n in ns:
            for t in temps:
                texts.append(t.format(n=f"x{n}"))
                labels.append(label)
    return texts, labels


FAST = ClassifierConfig(c_embedding=10, c_tfidf=10, max_iter=200, weight_step=0.25, min_oos_examples=5)


@pytest.fixture(scope="module")
def trained() -> IntentClassifier:
    x, y = make_data(range(6))
    vx, vy = make_data(range(6, 9))
    return IntentClassifier.fit(x, y, embedder=FakeEmbedder(), val_texts=vx, val_labels=vy, config=FAST)


def test_predicts_intents_with_calibrated_top5(trained: IntentClassifier) -> None:
    preds = trained.predict(["where is my order x77", "i forgot my password x42", "refund order x13 please"])
    assert [p.intent for p in preds] == ["track_order", "recover_password", "get_refund"]
    for p in preds:
        assert isinstance(p, Prediction) and 0.0 <= p.confidence <= 1.0
        assert len(p.candidates) == 4  # only 4 classes here; top 5 at most
        probs = [c for _, c in p.candidates]
        assert probs == sorted(probs, reverse=True) and p.candidates[0][0] == p.intent
        assert not p.is_oos
    full = trained.predict_proba(["track my package x1"])
    assert full.shape == (1, 4) and abs(full.sum() - 1.0) < 1e-6
    assert trained.metrics["val_accuracy"] >= 0.9 and trained.metrics["temperature"] > 0


def test_out_of_scope_is_detected(trained: IntentClassifier) -> None:
    preds = trained.predict(["tell me a joke about cats x99", "recipe for banana bread x55"])
    assert all(p.intent == "out_of_scope" and p.is_oos for p in preds)
    inscope = trained.predict(["has order x3 shipped yet"])[0]
    assert inscope.oos_score < preds[0].oos_score
    assert trained.metrics["oos_mode"] == "supervised"


def test_without_validation_holds_out_part_of_train() -> None:
    x, y = make_data(range(8))
    clf = IntentClassifier.fit(x, y, embedder=FakeEmbedder(), config=FAST)
    assert clf.metrics["validation"].startswith("holdout 20%")
    assert clf.metrics["n_val"] == round(0.2 * len(x)) and clf.metrics["refit_on"] == len(x)
    assert clf.predict(["track my package x500"])[0].intent == "track_order"


def test_fit_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="labels"):
        IntentClassifier.fit(["a", "b"], ["x"], embedder=FakeEmbedder(), config=FAST)
    with pytest.raises(ValueError, match="two intents"):
        IntentClassifier.fit(["a b", "c d", "e f", "g h"], ["x"] * 4, embedder=FakeEmbedder(),
                             val_texts=["a"], val_labels=["x"], config=FAST)


def test_save_load_roundtrip_is_atomic(trained: IntentClassifier, tmp_path: Path) -> None:
    out = tmp_path / "model"
    trained.save(out)
    trained.save(out)  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temp or old dirs left behind
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["labels"] == trained.labels and "val_accuracy" in manifest["metrics"]
    assert manifest["config"]["c_tfidf"] == 10
    loaded = IntentClassifier.load(out, FakeEmbedder())
    texts = ["where is my order x5", "who won the football match x8", "reset my password x2"]
    assert loaded.predict(texts) == trained.predict(texts)
    with pytest.raises(FileNotFoundError):
        IntentClassifier.load(tmp_path / "missing", FakeEmbedder())


@pytest.mark.parametrize(
    ("conf", "expected"),
    [(0.99, "auto"), (0.85, "auto"), (0.8499, "review"), (0.5, "review"), (0.49, "escalate"),
     (float("nan"), "escalate")],
)
def test_decide_uses_policy_thresholds(conf: float, expected: str) -> None:
    assert decide(conf, {"auto": 0.85, "review": 0.5}) == expected


def test_decide_reads_thresholds_passed_in() -> None:
    assert decide(0.7, {"auto": 0.6, "review": 0.3}) == "auto"
    from config.settings import ConfidencePolicy

    assert decide(0.7, ConfidencePolicy(auto=0.9, review=0.75)) == "escalate"
    with pytest.raises(ValueError):
        decide(0.7, {"auto": 0.4, "review": 0.6})


def test_temperature_scaling_and_ece() -> None:
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4000, 5)) * 3
    true_t = 2.5
    y = np.array([rng.choice(5, p=p) for p in apply_temperature(logits, true_t)])
    assert abs(fit_temperature(logits, y) - true_t) < 0.3
    over = apply_temperature(logits, 1.0)  # overconfident compared to the truth
    cal = apply_temperature(logits, fit_temperature(logits, y))
    ece_over = expected_calibration_error(over.max(1), over.argmax(1) == y)
    ece_cal = expected_calibration_error(cal.max(1), cal.argmax(1) == y)
    assert ece_cal < 0.03 < ece_over


PRED = Prediction("track_order", 0.3, [("track_order", 0.3), ("get_refund", 0.25), ("recover_password", 0.2)],
                  0.4, False)


def test_cascade_accepts_valid_choice(scripted: Any) -> None:
    model = scripted('{"intent": "get_refund", "confidence": 0.9}')
    out = refine_with_llm("I want my money back", PRED, model)
    assert out is not None and out.intent == "get_refund" and not out.is_oos
    assert out.confidence == pytest.approx(0.55)  # capped at classifier probability + 0.3
    assert model.prompts[0].endswith(
        "Allowed intents: track_order, get_refund, recover_password, out_of_scope\n\n"
        "Customer message:\n<<<\nI want my money back\n>>>"
    )
    oos = refine_with_llm("weather?", PRED, scripted('Sure: {"intent": "out_of_scope", "confidence": 0.6}'))
    assert oos is not None and oos.intent == "out_of_scope" and oos.is_oos


@pytest.mark.parametrize("answer", ['{"intent": "delete_account"}', "get_refund", '{"intent": 3}', "{not json"])
def test_cascade_ignores_invalid_answers(answer: str, scripted: Any) -> None:
    assert refine_with_llm("text", PRED, scripted(answer), top_k=2) is None


def test_cascade_offers_only_top_k_choices(scripted: Any) -> None:
    model = scripted('{"intent": "recover_password", "confidence": 0.9}')
    assert refine_with_llm("text", PRED, model, top_k=2) is None  # third candidate was not offered
    assert "Allowed intents: track_order, get_refund, out_of_scope\n" in model.prompts[0]


def test_train_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train_main(["--data", str(tmp_path / "nope.csv")], embedder=FakeEmbedder()) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: data file not found") and "\n" not in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "hi", "label": "a"}\n{oops\n')
    assert train_main(["--data", str(bad)], embedder=FakeEmbedder()) == 2
    assert "bad.jsonl:2" in capsys.readouterr().err
    csv_bad = tmp_path / "bad.csv"
    csv_bad.write_text("utterance,intent\nhello,a\n")
    assert train_main(["--data", str(csv_bad)], embedder=FakeEmbedder()) == 2
    assert "'text' and 'label'" in capsys.readouterr().err


def test_train_cli_csv_and_jsonl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x, y = make_data(range(6))
    data = tmp_path / "train.csv"
    data.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in zip(x, y, strict=True)))
    vx, vy = make_data(range(6, 8))
    val = tmp_path / "val.jsonl"
    val.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in zip(vx, vy, strict=True)))
    out = tmp_path / "model"
    assert train_main(["--data", str(data), "--val", str(val), "--out", str(out)], embedder=FakeEmbedder()) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["labels"] == 4 and printed["validation"] == "given"
    assert IntentClassifier.load(out, FakeEmbedder()).predict(["reset my password x9"])[0].intent == "recover_password"
    source = json.loads((out / "manifest.json").read_text())["source"]
    assert source == {"kind": "train-intents", "file": "train.csv",
                      "sha256": hashlib.sha256(data.read_bytes()).hexdigest()}


def test_train_shop_classifier_from_yaml(tmp_path: Path) -> None:
    lines = ["version: 1", "intents:"]
    for label, temps in TEMPLATES.items():
        lines += [f"  {label}:", "    examples:"]
        lines += [f'      - "{t.format(n=f"y{n}")}"' for n in range(5) for t in temps]
    lines += ["smoke:", "  - {text: where is my order, intent: track_order}"]
    path = tmp_path / "intent_examples.yaml"
    path.write_text("\n".join(lines) + "\n")
    clf = train_shop_classifier(path, tmp_path / "shop", FakeEmbedder(), config=FAST)
    assert (tmp_path / "shop" / "manifest.json").exists()
    assert set(clf.labels) == set(TEMPLATES) and clf.metrics["validation"].startswith("holdout 20%")
    assert clf.predict(["when will my parcel y9 arrive"])[0].intent == "track_order"


def test_served_predictions_are_scikit_learns(tmp_path: Path) -> None:
    """Serving computes from the exported arrays (weights.npz): the same probabilities as scikit-learn's own
    vectoriser and logistic regressions, fitted on the same data with the same settings."""
    import dataclasses

    from sklearn.linear_model import LogisticRegression

    from classifier.features import build_tfidf

    config = dataclasses.replace(FAST, refit_on_all=False)  # the served models are the ones fitted on x
    x, y = make_data(range(6))
    vx, vy = make_data(range(6, 9))
    embedder = FakeEmbedder()
    clf = IntentClassifier.fit(x, y, embedder=embedder, val_texts=vx, val_labels=vy, config=config)
    out = clf.save(tmp_path / "model")
    assert (out / "weights.npz").is_file() and not (out / "model.joblib").exists()
    served = IntentClassifier.load(out, embedder)

    labels = sorted(set(y))
    yi = np.array([labels.index(c) for c in y])
    vec = build_tfidf(config)
    lr = {"embedding": LogisticRegression(C=config.c_embedding, max_iter=config.max_iter, tol=config.tol,
                                          random_state=config.seed).fit(embedder.embed(x), yi),
          "tfidf": LogisticRegression(C=config.c_tfidf, max_iter=config.max_iter, tol=config.tol,
                                      random_state=config.seed).fit(vec.fit_transform(x), yi)}
    queries = [*vx[::3], "where is my order x77", "tell me a joke about cats x5", "zzz unseen words", "x"]
    q = np.asarray(embedder.embed(queries), dtype=np.float32)
    comps, _ = served._components(served.core, q, queries, served.bank, served.bank_labels)
    want = {"embedding": lr["embedding"].predict_proba(q), "tfidf": lr["tfidf"].predict_proba(vec.transform(queries))}
    assert np.allclose(comps["tfidf"], want["tfidf"], rtol=0, atol=1e-12)
    assert np.allclose(comps["embedding"], want["embedding"], rtol=0, atol=1e-6)  # float32 embeddings
    reference = apply_temperature(IntentClassifier._blend(served.core, {**comps, **want}), served.temperature)
    assert np.allclose(served.predict_proba(queries), reference, rtol=0, atol=1e-6)
    assert [p.intent for p in served.predict(queries)] == [p.intent for p in clf.predict(queries)]
    assert list(served.predict_proba(queries).argmax(1)) == list(reference.argmax(1))


def test_serving_a_saved_model_imports_no_scikit_learn_or_scipy(trained: IntentClassifier, tmp_path: Path) -> None:
    import inspect
    import subprocess
    import sys

    trained.save(tmp_path / "model")
    code = "\n".join([
        "import hashlib, re, sys", "import numpy as np", "from collections.abc import Sequence",
        inspect.getsource(FakeEmbedder),
        "from classifier.model import IntentClassifier",
        "m = IntentClassifier.load(sys.argv[1], FakeEmbedder())",
        "print(m.predict(['where is my order x5'])[0].intent)",
        "print(sorted({k.split('.')[0] for k in sys.modules} & {'sklearn', 'scipy', 'joblib'}))",
    ])
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "model")], cwd=root, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["track_order", "[]"]


def test_a_model_saved_before_weights_npz_still_loads(trained: IntentClassifier, tmp_path: Path) -> None:
    """Older data dirs hold model.joblib (the scikit-learn objects): loaded and exported to arrays."""
    import joblib
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion

    from classifier.features import build_tfidf

    x, y = make_data(range(4))
    labels = sorted(set(y))
    vec: FeatureUnion = build_tfidf(FAST)
    tfidf = vec.fit_transform(x)
    emb = FakeEmbedder().embed(x)
    models = {"embedding": LogisticRegression(max_iter=200).fit(emb, [labels.index(c) for c in y]),
              "tfidf": LogisticRegression(max_iter=200).fit(sp.csr_matrix(tfidf), [labels.index(c) for c in y])}
    out = trained.save(tmp_path / "model")
    (out / "weights.npz").unlink()
    joblib.dump({"vectorizer": vec, "models": models}, out / "model.joblib")
    old = IntentClassifier.load(out, FakeEmbedder())
    assert np.array_equal(old.core.models["tfidf"][0], models["tfidf"].coef_)
    q = ["track my package x2", "recipe for banana bread x1"]
    assert np.allclose(old._components(old.core, FakeEmbedder().embed(q), q, old.bank, old.bank_labels)[0]["tfidf"],
                       models["tfidf"].predict_proba(vec.transform(q)), rtol=0, atol=1e-12)


def _shop_yaml(path: Path, extra: str | None = None) -> None:
    lines = ["version: 1", "intents:"]
    for label, temps in TEMPLATES.items():
        lines += [f"  {label}:", "    examples:"]
        lines += [f'      - "{t.format(n=f"y{n}")}"' for n in range(5) for t in temps]
        if extra and label == "track_order":
            lines.append(f'      - "{extra}"')
    path.write_text("\n".join(lines) + "\n")


def test_seed_retrains_the_shop_classifier_when_its_examples_change(tmp_path: Path) -> None:
    """`app.py seed` used to keep any model it found: edited demo examples never reached the classifier."""
    from config.settings import Settings
    from graphs.services import _seed_classifier

    demo = tmp_path / "demo"
    demo.mkdir()
    _shop_yaml(demo / "intent_examples.yaml")
    settings = Settings(data_dir=tmp_path / "data", demo_dir=demo)
    first = _seed_classifier(settings, FakeEmbedder(), reset=False)
    assert isinstance(first, dict) and "retrained" not in first
    manifest = settings.intent_model_dir / "manifest.json"
    source = json.loads(manifest.read_text())["source"]
    assert source["kind"] == "demo" and source["file"] == "intent_examples.yaml"
    assert _seed_classifier(settings, FakeEmbedder(), reset=False) == "already trained"

    _shop_yaml(demo / "intent_examples.yaml", extra="zq7 parcel whereabouts")
    again = _seed_classifier(settings, FakeEmbedder(), reset=False)
    assert isinstance(again, dict) and again["retrained"] == "intent_examples.yaml changed"
    assert json.loads(manifest.read_text())["source"]["sha256"] != source["sha256"]
    assert _seed_classifier(settings, FakeEmbedder(), reset=False) == "already trained"


def test_seed_keeps_a_model_trained_by_train_intents(tmp_path: Path) -> None:
    from config.settings import Settings
    from graphs.services import _seed_classifier

    demo = tmp_path / "demo"
    demo.mkdir()
    _shop_yaml(demo / "intent_examples.yaml")
    own = tmp_path / "mine.yaml"
    _shop_yaml(own, extra="zq7 parcel whereabouts")
    settings = Settings(data_dir=tmp_path / "data", demo_dir=demo)
    model = settings.intent_model_dir
    clf = IntentClassifier.fit(*make_data(range(6)), embedder=FakeEmbedder(), config=FAST)
    from classifier.cli import training_source

    clf.save(model, source=training_source(own, "train-intents"))
    before = (model / "manifest.json").read_text()
    kept = _seed_classifier(settings, FakeEmbedder(), reset=False)
    assert kept == "kept: trained by train-intents on mine.yaml (seed --reset replaces it)"
    assert (model / "manifest.json").read_text() == before
    replaced = _seed_classifier(settings, FakeEmbedder(), reset=True)
    assert isinstance(replaced, dict)
    assert json.loads((model / "manifest.json").read_text())["source"]["kind"] == "demo"
