"""Where long-term memory lives in Chroma: one collection per namespace, named from the tenant (and user) ids.

    name = collection_name("switchboard", CASES, "t1", "alice")   # switchboard_uc_<32 hex digits>

Kinds: `KB` (a tenant's knowledge-base chunks), `SHARED` (cases a tenant shares), `CASES` (one user's cases) and
`PREFS` (one user's preferences, written before they moved to the LangGraph store, memory.user_store; only
`forget_user` and `count` still touch those collections). A name is ``{prefix}_{code}_{hash}``, the hash a 128-bit
BLAKE2b of the JSON list of ids, so names stay within Chroma's 63 characters whatever the ids hold.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

__all__ = ["CASES", "KB", "PREFS", "SHARED", "SHARED_USER", "check_prefix", "collection_name", "count_key"]

SHARED_USER = "*"  # the user_id of records a whole tenant sees (knowledge-base chunks)
KB, SHARED, CASES, PREFS = "kb", "shared_cases", "cases", "prefs"
CODES = {KB: "kb", SHARED: "sc", CASES: "uc", PREFS: "up"}
_COUNT_KEY = {KB: "kb", SHARED: "cases", CASES: "cases", PREFS: "prefs"}
_BY_CODE = {code: _COUNT_KEY[kind] for kind, code in CODES.items()}
_PREFIX = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9_-]|\.(?!\.)){0,26}")
# Chroma's local engine keeps writes in one write-ahead log (a SQLite table shared by every collection and
# not indexed by collection) until a collection's HNSW index is persisted, and it scans that log whenever
# it loads a collection. With the default sync threshold (1,000) a collection of a hundred records never
# persists, the log is never purged, and loading one user's collection scans every record of every user
# (~140 ms at 100k records). Persisting every two writes keeps the log at a few rows per collection.
HNSW: dict[str, Any] = {"space": "cosine", "batch_size": 2, "sync_threshold": 2}


def check_prefix(prefix: str) -> str:
    """`prefix`, or ValueError when it would make names Chroma refuses."""
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"prefix must be 1-27 chars of [a-zA-Z0-9._-], alphanumeric first: {prefix!r}")
    return prefix


def collection_name(prefix: str, kind: str, tenant_id: str, user_id: str | None = None) -> str:
    """Chroma name of a namespace's collection; `kind` is kb, shared_cases, cases or prefs."""
    key = json.dumps([tenant_id] if user_id is None else [tenant_id, user_id])  # unambiguous
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=16).hexdigest()
    return f"{prefix}_{CODES[kind]}_{digest}"


def count_key(prefix: str, name: str) -> str | None:
    """The `count()` total a collection of this store adds to (kb, cases or prefs); None for another store's."""
    if not name.startswith(f"{prefix}_"):
        return None
    return _BY_CODE.get(name[len(prefix) + 1 :].split("_", 1)[0])
