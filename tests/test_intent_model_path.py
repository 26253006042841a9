"""Training and serving share one intent model: `app.py train-intents` writes where `build_services` loads, and a
model trained on a fine-tuned encoder is served with that encoder (issue 10)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langgraph.runtime import Runtime
from safetensors.numpy import load_file, save_file

import app
import classifier.finetune as finetune
import memory.embeddings as emb
from classifier.model import IntentClassifier
from config.settings import Settings
from graphs.context import Context
from graphs.services import build_services
from nodes import classify_intent

# A labelled set with intents the demo shop does not have, so only the newly trained model can answer them.
EXAMPLES = {
    "dragon_care": ["my dragon will not eat its coal", "the dragon sneezes fire at night", "dragon scales falling off",
                    "how often should I feed my baby dragon", "my dragon sleeps all day in the cave",
                    "dragon wings look droopy"],
    "moon_rental": ["rent a crater on the moon for a weekend", "price of a lunar cabin per night",
                    "book a moon base holiday", "cancel my stay at the lunar hotel", "moon rover hire for tourists",
                    "how much is a crater with an earth view"],
    "violin_repair": ["my violin string snapped", "the violin bridge is cracked", "rehair my violin bow",
                      "violin sounds buzzy on the g string", "fix a loose violin peg", "seam opened on my violin"],
}
ASK = {"dragon_care": "what should my pet dragon eat", "moon_rental": "I want to rent a cabin on the moon",
       "violin_repair": "the violin bow needs new hair"}


def _write_examples(path: Path) -> Path:
    rows = [(t, label) for label, texts in EXAMPLES.items() for t in texts]
    path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows), encoding="utf-8")
    return path


def _environment(monkeypatch: pytest.MonkeyPatch, data_dir: Path, model_cache: Path) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(data_dir))
    monkeypatch.setenv("SWITCHBOARD_MODEL_CACHE", str(model_cache))


def _served_intent(services: Any, text: str) -> str:
    """The intent the graph's classify_intent node gets for `text` from these services."""
    node = classify_intent.make(lambda: services)
    update = node({"ticket": text, "entities": {}}, Runtime(context=Context()))
    return update["intent"]


def test_trained_model_is_the_served_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_cache: Path,
                                           embedder: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _environment(monkeypatch, tmp_path / "data", model_cache)
    data = _write_examples(tmp_path / "intents.jsonl")
    assert app.main(["train-intents", "--data", str(data), "--oos-label", "none"]) == 0
    saved = Path(json.loads(capsys.readouterr().out)["saved"])
    services = build_services(Settings.from_env(), embedder=embedder, auto_seed=False)
    assert saved == services.settings.intent_model_dir
    assert sorted(services.classifier.labels) == sorted(EXAMPLES)
    for intent, text in ASK.items():
        assert _served_intent(services, text) == intent


def _finetuned_weights(folder: Path) -> Path:
    """A weights folder in the layout the fine-tuning worker writes, with weights moved away from the bundled
    ones (what training does), so its vectors differ from the bundled encoder's."""
    src = emb.model_dir()
    folder.mkdir(parents=True)
    weights = load_file(str(src / "model.safetensors"))
    rng = np.random.default_rng(0)
    for key in ("embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight"):
        w = weights[key]
        weights[key] = (w + 0.5 * w.std() * rng.standard_normal(w.shape)).astype(w.dtype)
    save_file(weights, str(folder / "model.safetensors"))
    for name in ("config.json", "tokenizer.json"):
        shutil.copy2(src / name, folder / name)
    return folder


def test_model_trained_on_a_finetuned_encoder_is_served_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_cache: Path, embedder: Any
) -> None:
    _environment(monkeypatch, tmp_path / "data", model_cache)
    data = _write_examples(tmp_path / "intents.jsonl")
    written: list[Path] = []

    def fake_finetune(texts: list[str], labels: list[str], out_dir: Path, **_: Any) -> dict[str, Any]:
        # Torch is not installed here: stand in for the worker's run by writing the folder it would write.
        written.append(_finetuned_weights(Path(out_dir)))
        return {"history": [], "reused": False}

    monkeypatch.setattr(finetune, "finetune_encoder", fake_finetune)
    assert app.main(["train-intents", "--data", str(data), "--oos-label", "none", "--finetune"]) == 0
    [folder] = written
    assert folder == tmp_path / "data" / "models" / "finetuned-intents"  # named after the data file
    services = build_services(Settings.from_env(), embedder=embedder, auto_seed=False)
    served = services.classifier.embedder
    assert served is not embedder and Path(served.model_dir) == folder
    tuned = emb.MiniLMEmbedder(model_dir=folder, threads=1)
    texts = list(ASK.values())
    np.testing.assert_allclose(served.embed(texts), tuned.embed(texts), atol=1e-6)
    assert np.all(np.sum(served.embed(texts) * embedder.embed(texts), axis=1) < 0.999)  # not the bundled encoder
    for intent, text in ASK.items():
        assert _served_intent(services, text) == intent


def test_encoder_pointer_is_read_by_the_loader(tmp_path: Path, embedder: Any) -> None:
    """A model directory with encoder.json, in the shape a fine-tuning run writes, loads with that encoder."""
    texts = [t for ts in EXAMPLES.values() for t in ts]
    labels = [lab for lab, ts in EXAMPLES.items() for _ in ts]
    clf = IntentClassifier.fit(texts, labels, embedder=embedder, oos_label=None)
    clf.save(tmp_path / "model")
    folder = tmp_path / "encoder"
    folder.mkdir()
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        (folder / name).symlink_to(emb.model_dir() / name)
    (tmp_path / "model" / "encoder.json").write_text(json.dumps({"model_dir": str(folder)}) + "\n")
    loaded = IntentClassifier.load(tmp_path / "model", embedder)
    assert loaded.embedder is not embedder and Path(getattr(loaded.embedder, "model_dir", "")) == folder
    (tmp_path / "model" / "encoder.json").write_text(json.dumps({"model_dir": str(tmp_path / "gone")}))
    with pytest.raises(FileNotFoundError, match="gone"):
        IntentClassifier.load(tmp_path / "model", embedder)
    (tmp_path / "model" / "encoder.json").write_text('{"dir": 1}')
    with pytest.raises(ValueError, match="model_dir"):
        IntentClassifier.load(tmp_path / "model", embedder)
