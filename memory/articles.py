"""Knowledge-base articles: markdown with YAML front matter parsed into `Article`, and chunked for retrieval.

`parse_markdown` / `load_articles` read articles; `chunk_markdown` splits a body along headings and paragraphs;
`chunk_ids` names each chunk by its text and the article's metadata, so an edit re-embeds only what changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Article", "chunk_ids", "chunk_markdown", "digest", "load_articles", "parse_markdown"]

_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.S)
_HEADING = re.compile(r"^#{1,6}\s+\S")


@dataclass
class Article:
    """One knowledge-base article (markdown body without front matter)."""

    id: str
    title: str
    text: str
    intents: list[str] = field(default_factory=list)
    kind: str = "article"
    error_codes: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    http_status: list[int] = field(default_factory=list)
    updated: float | None = None  # epoch seconds; drives recency when set
    tenant_id: str = "default"
    source: str | None = None



def _as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _to_epoch(value: Any) -> float | None:
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp()
    if isinstance(value, str) and value.strip():
        try:
            return _to_epoch(dt.datetime.fromisoformat(value.strip()))
        except ValueError:
            return None
    return None


def parse_markdown(
    text: str, default_id: str, *, source: str | None = None, tenant_id: str = "default"
) -> Article:
    """Parse a markdown document with optional YAML front matter into an `Article`.

    Missing ``id`` falls back to `default_id`; missing ``title`` to the first heading or line.
    Raises ValueError on malformed front matter.
    """
    meta: dict[str, Any] = {}
    body = text
    match = _FRONT_MATTER.match(text)
    if match:
        try:
            loaded = yaml.safe_load(match.group(1)) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"bad front matter: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ValueError("front matter is not a mapping")
        meta, body = loaded, text[match.end() :]
    body = body.strip()
    title = str(meta.get("title") or "").strip()
    if not title:
        first = next((ln for ln in body.splitlines() if ln.strip()), default_id)
        title = first.lstrip("#").strip()[:120]
    return Article(
        id=str(meta.get("id") or default_id),
        title=title,
        text=body,
        intents=[str(i) for i in _as_list(meta.get("intents"))],
        kind=str(meta.get("kind") or "article"),
        error_codes=[str(c) for c in _as_list(meta.get("error_codes"))],
        exceptions=[str(c) for c in _as_list(meta.get("exceptions"))],
        http_status=[int(c) for c in _as_list(meta.get("http_status"))],
        updated=_to_epoch(meta.get("updated")),
        tenant_id=str(meta.get("tenant_id") or tenant_id),
        source=source,
    )


def load_articles(kb_dir: Path) -> list[Article]:
    """Load every ``*.md`` article under `kb_dir` (sorted by path; id defaults to the file stem)."""
    return [
        parse_markdown(path.read_text(encoding="utf-8"), path.stem, source=str(path))
        for path in sorted(Path(kb_dir).glob("*.md"))
    ]


def _words(text: str) -> int:
    return len(text.split())


def _split_long(paragraph: str, max_words: int) -> list[str]:
    sentences = re.split(r"(?<=[.!?])\s+", paragraph)
    out: list[str] = []
    current: list[str] = []
    for sentence in sentences:
        words = sentence.split()
        while len(words) > max_words:  # one giant sentence: hard split on words
            if current:
                out.append(" ".join(current))
                current = []
            out.append(" ".join(words[:max_words]))
            words = words[max_words:]
        if current and _words(" ".join(current)) + len(words) > max_words:
            out.append(" ".join(current))
            current = []
        if words:
            current.append(" ".join(words))
    if current:
        out.append(" ".join(current))
    return out


def chunk_markdown(text: str, *, min_words: int = 120, max_words: int = 200) -> list[str]:
    """Split markdown into chunks of about `min_words`..`max_words` words along headings and paragraphs.

    A heading stays with the paragraph after it; a new heading starts a new chunk once the current one
    has `min_words`; a paragraph longer than `max_words` is split on sentences.
    """
    blocks: list[tuple[bool, str]] = []  # (starts with heading, text)
    pending_heading = ""
    for raw in re.split(r"\n\s*\n", text.strip()):
        block = raw.strip()
        if not block:
            continue
        lines = block.splitlines()
        if _HEADING.match(lines[0]) and len(lines) == 1:
            pending_heading = (pending_heading + "\n\n" + block).strip()
            continue
        heading = bool(pending_heading) or bool(_HEADING.match(lines[0]))
        block = (pending_heading + "\n\n" + block).strip() if pending_heading else block
        pending_heading = ""
        for i, piece in enumerate(_split_long(block, max_words) if _words(block) > max_words else [block]):
            blocks.append((heading and i == 0, piece))
    if pending_heading:
        blocks.append((True, pending_heading))

    chunks: list[str] = []
    current: list[str] = []
    for heading, block in blocks:
        size = _words("\n\n".join(current))
        if current and (size + _words(block) > max_words or (heading and size >= min_words)):
            chunks.append("\n\n".join(current))
            current = []
        current.append(block)
    if current:
        if chunks and _words("\n\n".join(current)) < min_words // 3 and _words(chunks[-1]) < max_words:
            chunks[-1] = chunks[-1] + "\n\n" + "\n\n".join(current)  # no orphan tail
        else:
            chunks.append("\n\n".join(current))
    return chunks


def digest(*parts: str) -> str:
    """SHA-1 hex of the parts joined by a unit separator: stable ids for chunks, cases and preferences."""
    return hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()


def chunk_ids(article: Article) -> dict[str, tuple[int, str]]:
    """Chunk id -> (index, text); ids hash the chunk and the article's metadata, so edits re-embed."""
    fingerprint = json.dumps(
        [
            article.title,
            article.intents,
            article.kind,
            article.error_codes,
            article.exceptions,
            article.http_status,
            article.updated,
        ],
        sort_keys=True,
    )
    wanted: dict[str, tuple[int, str]] = {}
    for index, chunk in enumerate(chunk_markdown(article.text) or [article.title]):
        cid = f"{article.tenant_id}/{article.id}#{digest(fingerprint, chunk)[:16]}"
        wanted.setdefault(cid, (index, chunk))
    return wanted

