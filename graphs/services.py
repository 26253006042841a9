"""Services: the long-lived resources nodes use (shop DB, knowledge, classifier, model).

Built from `Settings` at the edges (CLI, server, tests) and handed to `build_supervisor()`; nothing is
created at import time. `get_services()` is the lazy, process-wide instance the dev server uses.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from config.settings import Policy, Settings, Workflow
from llm import LLM, build_llm

log = logging.getLogger("switchboard.services")


@dataclass
class Services:
    settings: Settings
    policy: Policy
    workflows: dict[str, Workflow]
    shop: Any  # tools.shop.ShopDB
    knowledge: Any  # memory.knowledge.LongTermMemory
    classifier: Any  # classifier.IntentClassifier
    working: Any  # memory.working.WorkingMemory
    llm: LLM | None = None
    known_issues: list[dict[str, Any]] = field(default_factory=list)
    embedder: Any = None  # memory.embeddings.MiniLMEmbedder, shared by retrieval and answer composition
    lessons: Any = None  # memory.lessons.LessonQueue: lessons from human answers, pending review
    decisions: Any = None  # observability.decisions.DecisionStore: the decision log (None: not recorded)
    alerts: Any = None  # observability.alerts.AlertMonitor: alert thresholds judged after every ticket
    audit_path: Path | None = None  # unused: decision records moved to `decisions`; kept for callers that set it


ServicesProvider = Callable[[], Services]


def classifier_dir(settings: Settings) -> Path:
    return settings.data_dir / "models" / "intents"


def seed(settings: Settings, *, reset: bool = False, embedder: Any = None, progress: bool = False) -> dict[str, Any]:
    """Seed the demo: shop database, knowledge base in Chroma, and the shop intent classifier.

    Idempotent: a second call changes nothing unless `reset` is true.
    """
    from classifier.cli import train_shop_classifier
    from memory.embeddings import get_embedder
    from memory.knowledge import ChromaMemory, load_articles
    from tools.shop import ShopDB

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    embedder = embedder or get_embedder(settings.embedder_cache)
    counts: dict[str, Any] = {}
    with ShopDB(settings.data_dir / "shop.sqlite") as shop:
        counts["shop"] = shop.seed(reset=reset)
    memory = ChromaMemory.persistent(settings.data_dir / "chroma", embedder)
    report = memory.upsert_articles(load_articles(settings.demo_dir / "kb"))
    counts["kb"] = getattr(report, "__dict__", report)
    cdir = classifier_dir(settings)
    if reset or not (cdir / "manifest.json").exists():
        clf = train_shop_classifier(settings.demo_dir / "intent_examples.yaml", cdir, embedder)
        counts["classifier"] = getattr(clf, "metrics", {})
    else:
        counts["classifier"] = "already trained"
    return counts


def build_services(settings: Settings, *, embedder: Any = None, auto_seed: bool = True) -> Services:
    """Open every resource under the data directory, seeding the demo first when it is missing."""
    from classifier.model import IntentClassifier
    from memory.embeddings import get_embedder
    from memory.knowledge import ChromaMemory, load_articles
    from memory.lessons import LessonQueue
    from memory.working import WorkingMemory
    from observability.alerts import AlertMonitor
    from observability.decisions import open_decision_store
    from tools.shop import ShopDB

    policy = settings.policy()
    observability = settings.observability()
    embedder = embedder or get_embedder(settings.embedder_cache)
    shop_path = settings.data_dir / "shop.sqlite"
    if auto_seed and (not shop_path.exists() or not (classifier_dir(settings) / "manifest.json").exists()):
        log.info("seeding demo data under %s", settings.data_dir)
        seed(settings, embedder=embedder)
    knowledge = ChromaMemory.persistent(
        settings.data_dir / "chroma",
        embedder,
        top_k=policy.retrieval.top_k,
        relevance_weight=policy.retrieval.relevance_weight,
        recency_weight=policy.retrieval.recency_weight,
        half_life_days=policy.retrieval.recency_half_life_days,
        min_relevance=policy.retrieval.min_relevance,
        lexical_weight=policy.retrieval.lexical_weight,
    )
    known = [{**asdict(a), "body": a.text} for a in load_articles(settings.demo_dir / "kb") if a.kind == "known_issue"]
    decisions = open_decision_store(settings)
    return Services(
        settings=settings,
        policy=policy,
        workflows=settings.workflows(),
        shop=ShopDB(shop_path),
        knowledge=knowledge,
        classifier=IntentClassifier.load(classifier_dir(settings), embedder),
        working=WorkingMemory(settings.data_dir / "working.sqlite", ttl_seconds=policy.working_memory.ttl_seconds),
        llm=build_llm(settings, policy.llm),
        known_issues=known,
        embedder=embedder,
        lessons=LessonQueue(settings.data_dir / "lessons.sqlite"),
        decisions=decisions,
        alerts=AlertMonitor(observability.alerts, decisions, webhook_url=settings.alert_webhook_url),
    )


_lock = threading.Lock()
_instances: dict[Path, Services] = {}


def get_services() -> Services:
    """The process-wide Services for the environment's settings, built on first use."""
    settings = Settings.from_env()
    key = settings.data_dir.resolve()
    with _lock:
        if key not in _instances:
            _instances[key] = build_services(settings)
        return _instances[key]
