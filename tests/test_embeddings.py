"""Tests for memory.embeddings: parity with sentence-transformers and caching."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from memory import embeddings as emb
from memory.embeddings import DIM, ONNX_FILENAME, MiniLMEmbedder, get_embedder, optimized_filename

REFERENCE = json.loads((Path(__file__).parent / "data" / "minilm_reference.json").read_text(encoding="utf-8"))
REPO = Path(__file__).resolve().parents[1]

DOCS = {
    "refund": "Refunds are paid back to the original card within five working days.",
    "password": "To reset your password, use the 'forgot password' link on the sign-in page.",
    "shipping": "Parcels are shipped with tracked delivery and usually arrive in two to three days.",
}


def _one(embedder: MiniLMEmbedder, text: str) -> np.ndarray:
    return embedder.embed([text])[0]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models dir shared by the session, so the ONNX file is built only once."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def embedder(cache_dir: Path) -> MiniLMEmbedder:
    """The embedder that builds the ONNX file in the session's cache dir."""
    return MiniLMEmbedder(cache_dir=cache_dir)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_first_use_builds_onnx_atomically(embedder: MiniLMEmbedder, cache_dir: Path) -> None:
    assert embedder.rebuilt
    # no temp file left behind; the record of the weights' hash beside the graph
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted(
        [ONNX_FILENAME, ONNX_FILENAME + ".source.json", optimized_filename()]
    )


def test_the_weights_hash_is_recorded_and_redone_when_the_file_changes(tmp_path: Path) -> None:
    weights, record = tmp_path / "model.safetensors", tmp_path / "cache" / "record.json"
    weights.write_bytes(b"weights v1")
    first = emb._weights_hash(weights, record)
    assert first == emb._sha256(weights) and record.is_file()
    known = json.loads(record.read_text())
    record.write_text(json.dumps({**known, "sha256": "recorded"}))
    assert emb._weights_hash(weights, record) == "recorded"  # read back, not hashed again
    weights.write_bytes(b"weights v2, longer")
    assert emb._weights_hash(weights, record) == emb._sha256(weights) != first
    record.write_text("not json")
    assert emb._weights_hash(weights, record) == emb._sha256(weights)


def test_onnx_file_is_valid_standard_onnx_with_hash(embedder: MiniLMEmbedder) -> None:
    import onnx

    model = onnx.load(str(embedder.onnx_path))
    onnx.checker.check_model(model)
    assert {node.domain for node in model.graph.node} <= {"", "ai.onnx"}  # portable: no contrib ops
    props = {p.key: p.value for p in model.metadata_props}
    assert props["switchboard.safetensors_sha256"] == emb._sha256(emb.model_dir() / "model.safetensors")


@pytest.mark.parametrize("index", range(len(REFERENCE["sentences"])))
def test_matches_sentence_transformers(embedder: MiniLMEmbedder, index: int) -> None:
    ours = _one(embedder, REFERENCE["sentences"][index])
    ref = np.asarray(REFERENCE["vectors"][index], dtype=np.float32)
    assert _cosine(ours, ref) >= 1 - 1e-5


def test_batch_matches_reference_all_at_once(embedder: MiniLMEmbedder) -> None:
    ours = embedder.embed(REFERENCE["sentences"], batch_size=3)
    ref = np.asarray(REFERENCE["vectors"], dtype=np.float32)
    assert np.abs(ours - ref).max() < 1e-5


def test_long_input_is_truncated_like_sentence_transformers(embedder: MiniLMEmbedder, cache_dir: Path) -> None:
    lengths = REFERENCE["token_lengths_untruncated"]
    long_index = max(range(len(lengths)), key=lengths.__getitem__)
    assert lengths[long_index] > 256
    ref = np.asarray(REFERENCE["vectors"][long_index], dtype=np.float32)
    untruncated = MiniLMEmbedder(cache_dir=cache_dir, max_length=512)
    assert not untruncated.rebuilt  # same ONNX file, only the tokenizer differs
    assert _cosine(_one(untruncated, REFERENCE["sentences"][long_index]), ref) < 1 - 1e-4
    assert _cosine(_one(embedder, REFERENCE["sentences"][long_index]), ref) >= 1 - 1e-5


def test_shape_dtype_and_unit_norm(embedder: MiniLMEmbedder) -> None:
    vectors = embedder.embed(["Where is my parcel?", "Cancel my plan", "ok"])
    assert vectors.shape == (3, DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    one = _one(embedder, "Where is my parcel?")
    assert one.shape == (DIM,) and one.dtype == np.float32
    # Similar requests are closer than unrelated ones.
    assert float(vectors[0] @ _one(embedder, "Where is my package?")) > float(vectors[0] @ vectors[1])


def test_empty_input(embedder: MiniLMEmbedder) -> None:
    out = embedder.embed([])
    assert out.shape == (0, DIM) and out.dtype == np.float32


def test_rejects_bare_string(embedder: MiniLMEmbedder) -> None:
    with pytest.raises(TypeError):
        embedder.embed("not a list")  # type: ignore[arg-type]


def test_batching_and_order_do_not_change_vectors(embedder: MiniLMEmbedder) -> None:
    texts = [
        "A much longer sentence about a delayed parcel that never arrived at my front door.",
        "hi",
        "Refund please",
        "Why was I charged twice for the same order last Tuesday?",
        "",
    ]
    alone = np.stack([_one(embedder, t) for t in texts])
    batched = embedder.embed(texts, batch_size=2)
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    reversed_rows = embedder.embed(texts[::-1], batch_size=64)
    np.testing.assert_allclose(reversed_rows[::-1], alone, atol=1e-5)


def test_cached_onnx_is_reused(embedder: MiniLMEmbedder, cache_dir: Path) -> None:
    path = cache_dir / ONNX_FILENAME
    before = path.stat().st_mtime_ns
    again = MiniLMEmbedder(cache_dir=cache_dir, threads=1)
    assert not again.rebuilt
    assert path.stat().st_mtime_ns == before
    np.testing.assert_allclose(_one(again, "hello"), _one(embedder, "hello"), atol=1e-6)


def _count_sessions(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    """Record every onnxruntime session opened: (path, graph optimisation level)."""
    opened: list[tuple[str, object]] = []
    real = emb.ort.InferenceSession

    def counting(path: str, options: emb.ort.SessionOptions, **kwargs: object) -> emb.ort.InferenceSession:
        opened.append((Path(path).name, options.graph_optimization_level))
        return real(path, options, **kwargs)

    monkeypatch.setattr(emb.ort, "InferenceSession", counting)
    return opened


def test_the_optimised_graph_is_opened_as_it_is_and_once_per_ticket(
    embedder: MiniLMEmbedder, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    optimized = cache_dir / optimized_filename()
    before = optimized.stat().st_mtime_ns
    opened = _count_sessions(monkeypatch)
    again = MiniLMEmbedder(cache_dir=cache_dir, threads=2)
    one = _one(again, "where is my parcel")  # a ticket's single query
    # One session, on the optimised file, not optimised again (that costs a cold start most of a second).
    assert opened == [(optimized_filename(), emb.ort.GraphOptimizationLevel.ORT_DISABLE_ALL)]
    assert not again.rebuilt and optimized.stat().st_mtime_ns == before
    np.testing.assert_allclose(one, _one(embedder, "where is my parcel"), atol=1e-6)
    texts = [f"text {i}" for i in range(8)]
    few = again.embed(texts)  # one batch (a tool result's fields screened in a ticket): still the one session
    assert len(opened) == 1 and again._narrow is None
    many = again.embed(texts, batch_size=2)  # whole batches: the per-core session opens now
    assert opened[1:] == [(optimized_filename(), emb.ort.GraphOptimizationLevel.ORT_DISABLE_ALL)]
    np.testing.assert_allclose(few, many, atol=1e-6)


@pytest.mark.parametrize("fault", ["stale", "damaged"])
def test_a_stale_or_damaged_optimised_graph_is_made_again_from_the_onnx_file(
    tmp_path: Path, embedder: MiniLMEmbedder, cache_dir: Path, fault: str
) -> None:
    import shutil

    folder = tmp_path / fault
    folder.mkdir()
    for name in (ONNX_FILENAME, ONNX_FILENAME + ".source.json"):
        shutil.copy(cache_dir / name, folder / name)
    if fault == "stale":  # a graph of other weights: its recorded hash differs
        import onnx

        model = onnx.load(str(cache_dir / optimized_filename()))
        for prop in model.metadata_props:
            if prop.key == "switchboard.safetensors_sha256":
                prop.value = "0" * 64
        onnx.save(model, folder / optimized_filename())
    else:
        (folder / optimized_filename()).write_bytes(b"half-written")
    remade = MiniLMEmbedder(cache_dir=folder)
    assert not remade.rebuilt  # the ONNX file itself was current
    np.testing.assert_allclose(_one(remade, "hello"), _one(embedder, "hello"), atol=1e-6)
    assert (folder / optimized_filename()).read_bytes() != b"half-written"
    assert MiniLMEmbedder._is_current(
        emb.ort.InferenceSession(str(folder / optimized_filename()), providers=["CPUExecutionProvider"]),
        remade.weights_hash,
    )
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [ONNX_FILENAME, ONNX_FILENAME + ".source.json", optimized_filename()]
    )


def test_intra_op_mode_and_concurrent_callers_agree(embedder: MiniLMEmbedder, cache_dir: Path) -> None:
    texts = [f"order {i} has not arrived" + " yet" * (i % 5) for i in range(20)]
    expected = embedder.embed(texts, batch_size=4)
    intra = MiniLMEmbedder(cache_dir=cache_dir, threads=2, parallel_batches=False)
    assert not intra.parallel_batches
    np.testing.assert_allclose(intra.embed(texts, batch_size=4), expected, atol=1e-5)
    results: dict[int, np.ndarray] = {}

    def worker(k: int) -> None:
        results[k] = embedder.embed(texts[k::3], batch_size=2)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(3):
        np.testing.assert_allclose(results[k], expected[k::3], atol=1e-5)


def test_stale_or_damaged_cache_is_rebuilt(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    import onnx
    from onnx import TensorProto, helper

    stale = helper.make_model(
        helper.make_graph(
            [helper.make_node("Identity", ["x"], ["y"])],
            "stale",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        ),
        opset_imports=[helper.make_opsetid("", 18)],
    )
    stale.ir_version = 9
    helper.set_model_props(stale, {"switchboard.safetensors_sha256": "0" * 64, "switchboard.graph_version": "0"})
    stale_dir = tmp_path / "stale"
    stale_dir.mkdir()
    onnx.save(stale, stale_dir / ONNX_FILENAME)
    damaged_dir = tmp_path / "damaged"
    damaged_dir.mkdir()
    (damaged_dir / ONNX_FILENAME).write_bytes(b"half-written garbage")
    for folder in (stale_dir, damaged_dir):
        rebuilt = MiniLMEmbedder(cache_dir=folder)
        assert rebuilt.rebuilt
        np.testing.assert_allclose(_one(rebuilt, "hello"), _one(embedder, "hello"), atol=1e-6)
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            [ONNX_FILENAME, ONNX_FILENAME + ".source.json", optimized_filename()]
        )


def test_get_embedder_is_one_instance_per_dir_across_threads(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emb, "_EMBEDDERS", {})
    results: list[MiniLMEmbedder] = []

    def worker() -> None:
        results.append(get_embedder(cache_dir))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r is results[0] for r in results)
    assert get_embedder(cache_dir / ".." / cache_dir.name) is results[0]


def test_import_loads_nothing() -> None:
    code = "import memory.embeddings as e, sys; print(len(e._EMBEDDERS), 'torch' in sys.modules)"
    env = {**os.environ, "SWITCHBOARD_DATA_DIR": "/nonexistent/switchboard"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "False"]


def test_a_repeated_single_text_is_served_from_recent_embeddings(embedder) -> None:  # noqa: ANN001
    first = embedder.embed(["Where is my order 1006?"])
    first[0, :] = 0.0  # the caller's copy: changing it must not change what comes back next time
    again = embedder.embed(["Where is my order 1006?"])
    batch = embedder.embed(["Where is my order 1006?", "How long does delivery take?"])
    np.testing.assert_allclose(again[0], batch[0], atol=1e-5)
    assert abs(float(np.linalg.norm(again[0])) - 1.0) < 1e-4


def test_one_parsed_tokenizer_serves_the_encoder_and_the_token_counter(embedder: MiniLMEmbedder) -> None:
    """tokenizer.json used to be parsed twice in a process that embeds and counts tokens (~17 ms each): the
    encoder's, truncating, and the token counter's. One untruncated copy now; the encoder cuts ids to max_length
    exactly as the tokenizer would."""
    from tokenizers import Tokenizer

    from memory import session

    assert session._tokenizer() is embedder.tokenizer
    text = " ".join(REFERENCE["sentences"]) * 3
    assert session.count_tokens(text) > 256  # the counter still sees every token
    hf = Tokenizer.from_file(str(embedder.model_dir / "tokenizer.json"))
    hf.no_padding()
    hf.enable_truncation(max_length=256)
    for t in (text, "short one", REFERENCE["sentences"][0]):
        assert emb.truncated(embedder.tokenizer.encode(t).ids, 256) == hf.encode(t).ids
