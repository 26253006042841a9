"""Services: the long-lived resources nodes use (shop DB, knowledge, classifier, model).

Built from `Settings` at the edges (CLI, server, tests) and handed to `build_supervisor()`; nothing is
created at import time. `get_services()` is the lazy, process-wide instance the dev server uses.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config.settings import Policy, Settings, Workflow
from llm import LLM, build_llm

if TYPE_CHECKING:  # the implementations import heavy libraries (Chroma, onnxruntime, sklearn): opened lazily below
    from auth.audit import AuditLog
    from classifier.model import IntentClassifier
    from memory.knowledge import Embedder, LongTermMemory
    from memory.lessons import LessonQueue
    from memory.working import WorkingMemory
    from observability.alerts import AlertMonitor
    from observability.decisions import DecisionStore
    from tools.shop import ShopDB

log = logging.getLogger("switchboard.services")


@dataclass
class Services:
    settings: Settings
    policy: Policy
    workflows: dict[str, Workflow]
    shop: ShopDB
    knowledge: LongTermMemory  # Chroma in production (memory.knowledge.ChromaMemory)
    classifier: IntentClassifier
    working: WorkingMemory
    embedder: Embedder  # memory.embeddings.MiniLMEmbedder, shared by retrieval, classifier and answer composition
    llm: LLM | None = None  # None: offline, answers composed without a model
    lessons: LessonQueue | None = None  # lessons from human answers, pending review (None: not proposed)
    audit: AuditLog | None = None  # tool calls, approvals, escalations (the shop's handle writes to it too)
    decisions: DecisionStore | None = None  # the decision log (None: not recorded)
    alerts: AlertMonitor | None = None  # alert thresholds judged after every ticket (None: not judged)


ServicesProvider = Callable[[], Services]


def seed(
    settings: Settings, *, reset: bool = False, embedder: Embedder | None = None, progress: bool = False,
    guard_data: Path | None = None, prescreen: bool = True,
) -> dict[str, Any]:
    """Seed the demo: shop database, knowledge base in Chroma, the shop intent classifier and the injection screen.

    The screen is trained on the project's examples plus `guard_data` (a labelled set) into the data directory;
    without `guard_data` the built-in screen is fitted (and cached) so the first ticket does not wait for it.
    The knowledge base's lexical index is fitted and kept in the data directory.
    With `prescreen` the knowledge-base articles are screened as retrieval screens them and the verdicts kept in
    the data directory (guards.injection.VERDICTS_FILE), so no first ticket screens them (~1 s).
    Idempotent: a second call changes nothing unless `reset` is true.
    """
    from memory.embeddings import get_embedder
    from memory.knowledge import ChromaMemory, load_articles
    from tools.shop import ShopDB

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    embedder = embedder or get_embedder(settings.embedder_cache)
    counts: dict[str, Any] = {}
    with ShopDB(settings.shop_target) as shop:
        counts["shop"] = shop.seed(reset=reset)
    memory = ChromaMemory.open(settings.knowledge_target, embedder, lexical_cache=settings.lexical_cache_dir)
    articles = load_articles(settings.demo_dir / "kb")
    report = memory.upsert_articles(articles)
    counts["kb"] = getattr(report, "__dict__", report)
    # The knowledge base's lexical index, fitted once here and kept in the data directory (memory.lexical), so no
    # new process fits it on its first ticket (~0.3-0.5 s).
    counts["lexical_indexes"] = sum(memory.prepare_lexical(t) for t in sorted({a.tenant_id for a in articles}))
    counts["classifier"] = _seed_classifier(settings, embedder, reset=reset)
    from guards.injection import get_guard, trained_dir

    if guard_data is not None and (reset or not (trained_dir(settings.data_dir) / "manifest.json").exists()):
        from guards.cli import train_and_save

        counts["guard"] = train_and_save(settings, guard_data, embedder=embedder)
    else:
        guard = get_guard(settings.data_dir, embedder=embedder)
        counts["guard"] = {"origin": guard.origin, "threshold": round(guard.threshold, 4)}
    # Retrieval screens every article it returns (nodes/retrieve_knowledge.py); screened once here, the verdicts are
    # kept in the data directory, so a new process's first ticket does not screen them again.
    if prescreen:
        guard = get_guard(settings.data_dir, embedder=embedder)
        for article in articles:
            guard.screen_document(memory.article_text(article.id, tenant_id=article.tenant_id))
        counts["documents_screened"] = len(articles)
    return counts


def _seed_classifier(settings: Settings, embedder: Embedder, *, reset: bool) -> dict[str, Any] | str:
    """Train the shop classifier on demo/intent_examples.yaml unless the model there was trained on exactly that file.

    Edited examples retrain it; a model `app.py train-intents` wrote from another file is kept (only `reset`
    replaces it), and so is one whose manifest predates the source record.
    """
    from classifier.cli import DEMO_SOURCE, train_shop_classifier, trained_source, training_source

    examples = settings.demo_dir / "intent_examples.yaml"
    cdir = settings.intent_model_dir
    exists = (cdir / "manifest.json").exists()
    source = trained_source(cdir) if exists else None
    if exists and not reset:
        if source is None:
            return "already trained (source not recorded; seed --reset retrains on the demo examples)"
        if source.get("kind") != DEMO_SOURCE:
            return f"kept: trained by {source.get('kind')} on {source.get('file')} (seed --reset replaces it)"
        if source.get("sha256") == training_source(examples, DEMO_SOURCE)["sha256"]:
            return "already trained"
    clf = train_shop_classifier(examples, cdir, embedder)
    metrics: dict[str, Any] = dict(getattr(clf, "metrics", {}))
    if exists and not reset:
        metrics["retrained"] = f"{examples.name} changed"
    return metrics


def _shop_seeded(settings: Settings) -> bool:
    """The shop database exists and is seeded (a SQLite file that is not there yet is not created by asking)."""
    from storage.sql import is_postgres
    from tools.shop import ShopDB

    if not is_postgres(settings.shop_target) and not Path(settings.shop_target).exists():
        return False
    with ShopDB(settings.shop_target) as shop:
        return shop.is_seeded()


def build_services(settings: Settings, *, embedder: Embedder | None = None, auto_seed: bool = True) -> Services:
    """Open every resource under the data directory, seeding the demo first when it is missing."""
    from auth.audit import open_audit
    from classifier.model import IntentClassifier
    from memory.embeddings import get_embedder
    from memory.knowledge import ChromaMemory
    from memory.lessons import LessonQueue
    from memory.working import WorkingMemory
    from observability.alerts import AlertMonitor
    from observability.decisions import open_decision_store
    from tools.boundary import configure as configure_tool_boundary
    from tools.shop import ShopDB

    policy = settings.policy()
    observability = settings.observability()
    configure_tool_boundary(settings)  # tool breakers and retries from error-policies.yaml (validated here)
    permissions = settings.permissions()  # least privilege: a bad permissions.yaml stops here, with one line
    audit = open_audit(settings)
    embedder = embedder or get_embedder(settings.embedder_cache)
    if auto_seed and (not _shop_seeded(settings) or not (settings.intent_model_dir / "manifest.json").exists()):
        log.info("seeding demo data under %s", settings.data_dir)
        seed(settings, embedder=embedder)
    knowledge = ChromaMemory.open(
        settings.knowledge_target,
        embedder,
        top_k=policy.retrieval.top_k,
        relevance_weight=policy.retrieval.relevance_weight,
        recency_weight=policy.retrieval.recency_weight,
        half_life_days=policy.retrieval.recency_half_life_days,
        min_relevance=policy.retrieval.min_relevance,
        lexical_weight=policy.retrieval.lexical_weight,
        lexical_cache=settings.lexical_cache_dir,
    )
    decisions = open_decision_store(settings)
    return Services(
        settings=settings,
        policy=policy,
        workflows=settings.workflows(),
        shop=ShopDB(settings.shop_target, audit=audit, permissions=permissions),
        knowledge=knowledge,
        classifier=IntentClassifier.load(settings.intent_model_dir, embedder),  # with its encoder.json, if any
        working=WorkingMemory(settings.working_target, ttl_seconds=policy.working_memory.ttl_seconds),
        llm=build_llm(settings, policy.llm),
        embedder=embedder,
        lessons=LessonQueue(settings.lessons_target),
        audit=audit,
        decisions=decisions,
        alerts=AlertMonitor(observability.alerts, decisions, webhook_url=settings.alert_webhook_url),
    )


_lock = threading.Lock()
_instances: dict[Path, Services] = {}


_built: dict[Path, Services] = {}  # the same instances by the data dir as configured (no file-system call to find)


def built_services() -> Services | None:
    """The environment's Services if already built, else None: never builds and never touches the file system, so
    an event loop may call it (observability.cache)."""
    return _built.get(Settings.from_env().data_dir)


def get_services() -> Services:
    """The process-wide Services for the environment's settings, built on first use."""
    settings = Settings.from_env()
    key = settings.data_dir.resolve()
    with _lock:
        if key not in _instances:
            _instances[key] = build_services(settings)
        _built[settings.data_dir] = _instances[key]
        return _instances[key]
