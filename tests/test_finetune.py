"""Optional MiniLM fine-tuning: worker command, clear errors without the torch venv, serving tuned weights.

Tests that run torch are skipped unless the optional `.venv-train` exists (`make train-venv`).
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from classifier import finetune
from classifier.finetune import FinetuneOptions, FinetuneUnavailable
from evals import intents
from memory import embeddings as emb
from memory.embeddings import ONNX_FILENAME, MiniLMEmbedder

REPO = Path(__file__).resolve().parents[1]
TEXTS = ["I lost my card yesterday", "how do I top up my account?", "what's the euro exchange rate today",
         "my card still hasn't arrived after two weeks, what should I do"]
needs_torch = pytest.mark.skipif(not (finetune.TRAIN_VENV / "bin" / "python").exists(),
                                 reason="optional torch venv absent (make train-venv)")


def _copy_weights(dst: Path) -> Path:
    """A copy of the bundled weights folder (the layout a fine-tuned folder has)."""
    src = emb.model_dir()
    dst.mkdir(parents=True)
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        shutil.copy2(src / name, dst / name)
    return dst


def _fake_python(venv: Path, script: str) -> Path:
    """A stand-in interpreter at `<venv>/bin/python` running a shell script (no torch needed)."""
    python = venv / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\n" + script)
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return python


def test_build_command_passes_every_option_to_the_worker(tmp_path: Path) -> None:
    opts = FinetuneOptions(epochs=2, batch_size=48, lr=5e-5, margin=0.3)
    cmd = finetune.build_command(tmp_path / "train.jsonl", tmp_path / "out", opts, python=Path("/venv/bin/python"),
                                 data_sha256="abc")
    assert cmd[:4] == ["/venv/bin/python", "-m", "classifier.finetune_worker", "train"]
    args = dict(zip(cmd[4::2], cmd[5::2], strict=True))
    assert args["--data"] == str(tmp_path / "train.jsonl") and args["--out"] == str(tmp_path / "out")
    assert (args["--epochs"], args["--batch-size"], args["--lr"], args["--margin"]) == ("2", "48", "5e-05", "0.3")
    assert args["--max-length"] == "64" and args["--threads"] == "2" and args["--data-sha256"] == "abc"
    assert "--base" not in args


def test_missing_torch_venv_gives_the_make_target(tmp_path: Path) -> None:
    with pytest.raises(FinetuneUnavailable, match="fine-tuning needs the optional torch venv: make train-venv"):
        finetune.train_python(tmp_path / "no-venv")
    with pytest.raises(FinetuneUnavailable, match="make train-venv"):
        finetune.finetune_encoder(["a", "b"], ["x", "y"], tmp_path / "out", venv=tmp_path / "no-venv")
    assert not (tmp_path / "out").exists()


def test_training_data_leaves_out_excluded_labels(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    sha = finetune.write_training_data(["a", "b", "c"], ["x", "out_of_scope", "y"], path, {"out_of_scope"})
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == [{"text": "a", "label": "x"}, {"text": "c", "label": "y"}]
    assert sha == finetune.write_training_data(["a", "c"], ["x", "y"], tmp_path / "again.jsonl")
    with pytest.raises(ValueError, match="no training examples"):
        finetune.write_training_data(["a"], ["out_of_scope"], path, {"out_of_scope"})


def test_worker_runs_in_the_venv_and_matching_weights_are_reused(tmp_path: Path) -> None:
    venv, out = tmp_path / "venv", tmp_path / "out"
    log = tmp_path / "argv.txt"
    _fake_python(venv, f'echo "$@" > {log}\necho \'{{"history": [{{"epoch": 1}}]}}\'\n')
    meta = finetune.finetune_encoder(["a", "b"], ["x", "y"], out, venv=venv)
    assert meta == {"history": [{"epoch": 1}], "reused": False}
    argv = log.read_text().split()
    assert argv[:3] == ["-m", "classifier.finetune_worker", "train"] and argv[argv.index("--out") + 1] == str(out)
    sha = argv[argv.index("--data-sha256") + 1]
    # a folder trained on the same data with the same options is reused without starting the worker
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"w")
    (out / "finetune.json").write_text(json.dumps({"data_sha256": sha, "params": FinetuneOptions().to_dict()}))
    log.unlink()
    assert finetune.finetune_encoder(["a", "b"], ["x", "y"], out, venv=venv)["reused"] is True
    assert not log.exists()
    assert not finetune.is_current(out, sha, FinetuneOptions(lr=1e-5))  # other options: retrain


def test_worker_failure_is_an_error(tmp_path: Path) -> None:
    _fake_python(tmp_path / "venv", "exit 3\n")
    with pytest.raises(RuntimeError, match="exit 3"):
        finetune.finetune_encoder(["a", "b"], ["x", "y"], tmp_path / "out", venv=tmp_path / "venv")


def test_embedder_model_dir_serves_a_copied_weights_folder(tmp_path: Path, embedder: Any) -> None:
    folder = _copy_weights(tmp_path / "tuned")
    copied = MiniLMEmbedder(model_dir=folder, threads=1)
    assert copied.model_dir == folder and copied.onnx_path == folder / ONNX_FILENAME and copied.rebuilt
    np.testing.assert_array_equal(copied.embed(TEXTS), embedder.embed(TEXTS))
    assert copied.weights_hash == emb._sha256(emb.model_dir() / "model.safetensors")


def test_eval_finetune_without_venv_exits_with_the_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data" / "banking77"
    data.mkdir(parents=True)
    rows = "".join(f"card {i} lost,lost_card\ntop up {i},top_up\n" for i in range(10))
    for name in ("train.csv", "test.csv"):
        (data / name).write_text("text,category\n" + rows)
    monkeypatch.setattr(finetune, "TRAIN_VENV", tmp_path / "no-venv")
    code = intents.eval_main(["intents", "--dataset", "banking77", "--data-dir", str(tmp_path / "data"),
                              "--out", str(tmp_path / "reports"), "--finetune"])
    assert code == 2
    assert "make train-venv" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()


@needs_torch
def test_torch_forward_matches_onnx_embedder(tmp_path: Path, embedder: Any) -> None:
    (tmp_path / "texts.json").write_text(json.dumps(TEXTS))
    subprocess.run([str(finetune.TRAIN_VENV / "bin" / "python"), "-m", "classifier.finetune_worker", "embed",
                    "--texts", str(tmp_path / "texts.json"), "--out", str(tmp_path / "v.npy")], cwd=REPO, check=True)
    cosines = np.sum(np.load(tmp_path / "v.npy") * embedder.embed(TEXTS), axis=1)
    assert np.all(np.abs(cosines - 1.0) < 1e-4)


@needs_torch
def test_finetuned_folder_is_served_from_onnx(tmp_path: Path, embedder: Any) -> None:
    texts = [f"I lost my card {w}" for w in ("today", "again", "abroad", "at home")]
    texts += [f"top up my account {w}" for w in ("today", "again", "by card", "now")]
    labels = ["lost_card"] * 4 + ["top_up"] * 4
    opts = FinetuneOptions(batch_size=4, lr=1e-4, threads=1)
    meta = finetune.finetune_encoder(texts, labels, tmp_path / "tuned", options=opts)
    assert meta["n_train"] == 8 and meta["steps"] == 2 and not meta["reused"]
    tuned = MiniLMEmbedder(model_dir=tmp_path / "tuned", threads=1)
    vectors = tuned.embed(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(vectors * embedder.embed(TEXTS), axis=1)
    assert np.all(cosines > 0.9) and np.any(cosines < 0.99999)  # moved, but still the same encoder


def test_train_intents_finetune_without_venv_exits_with_the_message(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from classifier.cli import train_main

    data = tmp_path / "intents.csv"
    data.write_text("text,label\n" + "".join(f"card {i} lost,lost_card\ntop up {i},top_up\n" for i in range(5)))
    monkeypatch.setattr(finetune, "TRAIN_VENV", tmp_path / "no-venv")
    assert train_main(["--data", str(data), "--out", str(tmp_path / "model"), "--finetune"]) == 2
    assert "make train-venv" in capsys.readouterr().err
    assert not (tmp_path / "model").exists()
