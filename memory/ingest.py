"""Ingest documents into long-term memory: markdown, plain text, JSON Lines, or a directory of them.

Ingest is idempotent: chunk ids derive from the article id and the chunk content, so running it twice
adds nothing the second time, and a changed document replaces its old chunks. A JSONL file with a bad
line is reported with the line number and skipped whole, so nothing is half-written.

Every document is screened for indirect prompt injection first (guards.injection.screen_document: each
sentence and pair of sentences through the rules and the learned model); a document that carries
instructions to the assistant is refused with a message naming it and the sentence, and is not stored.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from memory.knowledge import Article, LongTermMemory, parse_markdown

__all__ = ["IngestReport", "SUFFIXES", "ingest_path", "load_file"]

SUFFIXES = frozenset({".md", ".markdown", ".txt", ".jsonl"})


@dataclass
class IngestReport:
    """What one ingest run did. `errors` holds human-readable messages with file (and line) names."""

    files: int = 0
    documents: int = 0
    chunks_added: int = 0
    chunks_unchanged: int = 0
    chunks_removed: int = 0
    refused: int = 0
    """Documents refused because they carry instructions to the assistant (also listed in `errors`)."""
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no file or line was rejected."""
        return not self.errors


def _doc_id(path: Path, root: Path | None) -> str:
    rel = path.relative_to(root) if root is not None else Path(path.name)
    return rel.with_suffix("").as_posix()


def _load_jsonl(path: Path, base_id: str, tenant_id: str) -> tuple[list[Article], list[str]]:
    articles: list[Article] = []
    errors: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(f"{path}:{lineno}: invalid JSON ({exc.msg})")
                continue
            if not isinstance(record, dict):
                errors.append(f"{path}:{lineno}: expected an object with a 'text' field")
                continue
            text = record.get("text")
            if not isinstance(text, str) or not text.strip():
                errors.append(f"{path}:{lineno}: missing or empty 'text'")
                continue
            doc_id = str(record.get("id") or f"{base_id}:{lineno}")
            title = str(record.get("title") or text.strip().splitlines()[0][:120])
            intents = record.get("intents") or []
            if not isinstance(intents, list):
                intents = [intents]
            articles.append(
                Article(
                    id=doc_id,
                    title=title,
                    text=text.strip(),
                    intents=[str(i) for i in intents],
                    kind=str(record.get("kind") or "article"),
                    tenant_id=tenant_id,
                    source=f"{path}:{lineno}",
                )
            )
    return articles, errors


def load_file(
    path: Path, *, root: Path | None = None, tenant_id: str = "default"
) -> tuple[list[Article], list[str]]:
    """Parse one file into articles. Returns (articles, errors); a file with any error yields no articles."""
    base_id = _doc_id(path, root)
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            articles, errors = _load_jsonl(path, base_id, tenant_id)
            return ([] if errors else articles), errors
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            return [], [f"{path}: empty file"]
        if suffix in (".md", ".markdown"):
            return [parse_markdown(text, base_id, source=str(path), tenant_id=tenant_id)], []
        if suffix == ".txt":
            title = text.strip().splitlines()[0].strip()[:120]
            return [
                Article(id=base_id, title=title, text=text.strip(), tenant_id=tenant_id, source=str(path))
            ], []
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return [], [f"{path}: {exc}"]
    return [], [f"{path}: unsupported file type (use {', '.join(sorted(SUFFIXES))})"]


def _files(path: Path) -> tuple[list[Path], Path | None]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        return [p for p in files if not any(part.startswith(".") for part in p.relative_to(path).parts)], path
    return [path], None


def ingest_path(
    path: Path, memory: LongTermMemory, *, progress: bool = True, tenant_id: str = "default", guard: Any = None
) -> IngestReport:
    """Ingest a file or a directory (recursively) into `memory`'s knowledge base.

    Markdown may carry YAML front matter (id, title, intents, kind, ...); without an id the path
    relative to the ingested directory is used. `.txt` files take their first line as the title.
    `.jsonl` files hold one {"id"?, "title"?, "text", "intents"?} object per line.
    `guard` (a guards.injection.Guard, default: `get_guard()`) screens each document before it is stored.
    """
    if guard is None:
        from guards.injection import get_guard

        guard = get_guard()
    path = Path(path)
    report = IngestReport()
    if not path.exists():
        report.errors.append(f"{path}: no such file or directory")
        return report
    files, root = _files(path)
    seen: dict[str, str] = {}
    with Progress(
        TextColumn("[bold]ingest[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
        disable=not progress or not sys.stderr.isatty(),  # never on stdout, only for a terminal
        transient=True,
    ) as bar:
        task = bar.add_task("", total=len(files))
        for file in files:
            bar.update(task, description=file.name)
            report.files += 1
            articles, errors = load_file(file, root=root, tenant_id=tenant_id)
            report.errors += errors
            unique: list[Article] = []
            for article in articles:
                key = f"{article.tenant_id}/{article.id}"
                if key in seen:
                    report.errors.append(
                        f"{article.source}: duplicate id {article.id!r} (first in {seen[key]})"
                    )
                    continue
                seen[key] = str(article.source)
                verdict = guard.screen_document(f"{article.title}\n{article.text}")
                if verdict.is_injection:
                    report.refused += 1
                    report.errors.append(f"{article.source}: refused, not ingested: {verdict.message()}")
                    continue
                unique.append(article)
            if unique:
                upserted = memory.upsert_articles(unique)
                report.documents += len(unique)
                report.chunks_added += upserted.chunks_added
                report.chunks_unchanged += upserted.chunks_unchanged
                report.chunks_removed += upserted.chunks_removed
            bar.advance(task)
    return report
