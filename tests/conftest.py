"""Shared fixtures: a real MiniLM embedder, a seeded data directory, services and graphs.

The knowledge base and the shop classifier are built once per session (they are read-only in
tests); every test gets its own shop database, working memory and decision log.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("LANGSMITH_TRACING", "false")

from config.settings import Settings  # noqa: E402
from tests.scripted import scripted  # noqa: E402, F401 - fixture: scripted chat models that must be used as scripted

SHARED_DATA = Path(os.environ.get("SWITCHBOARD_SHARED_DATA", REPO.parent / "shared" / "data"))


def require_service(reason: str) -> None:
    """Skip a test whose service is missing; under CI (SWITCHBOARD_REQUIRE_SERVICES=1) fail instead."""
    if os.environ.get("SWITCHBOARD_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def full_rate_limit_buckets() -> None:
    """Every test starts with full in-process rate-limit buckets (the CLI's limiter lives for the process)."""
    from auth.ratelimit import reset

    reset()


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """Built ONNX encoder, kept between runs (gitignored) so the suite builds it once per clone."""
    path = Path(os.environ.get("SWITCHBOARD_TEST_CACHE", REPO / ".switchboard" / "test-cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def embedder(model_cache: Path) -> Any:
    from memory.embeddings import get_embedder

    return get_embedder(model_cache)


@pytest.fixture(scope="session")
def seeded_settings(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Settings:
    """A data directory seeded like `make demo` does: shop DB, knowledge base, shop classifier."""
    from graphs.services import seed

    settings = Settings(data_dir=tmp_path_factory.mktemp("switchboard-data"))
    seed(settings, embedder=embedder, prescreen=False)  # articles are screened when retrieved (seconds saved here)
    return settings


@pytest.fixture(scope="session")
def base_services(seeded_settings: Settings, embedder: Any) -> Any:
    from graphs.services import build_services

    return build_services(seeded_settings, embedder=embedder, auto_seed=False)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty Postgres database for this test (dropped afterwards); skips (or fails under CI) without one."""
    from tests.pg import fresh_database, postgres_problem

    if problem := postgres_problem():
        require_service(problem)
    with fresh_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Each store engine: the embedded SQLite default and Postgres (a database of the test's own, `pg_url`)."""
    return request.param


@pytest.fixture
def sql_target(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Where a store lives on this test's `backend`: the SQLite file `name` under tmp_path, or the test's Postgres
    database (every store in the one database, as with SWITCHBOARD_DATABASE_URL)."""
    if backend == "postgres":
        url = request.getfixturevalue("pg_url")
        return lambda name: url
    return lambda name: str(tmp_path / name)


def backend_of(request: pytest.FixtureRequest) -> str:
    """`postgres` when this test runs on the Postgres backend (its `checkpointer` or `backend` parameter)."""
    params = getattr(getattr(request.node, "callspec", None), "params", {})
    return "postgres" if "postgres" in (params.get("checkpointer"), params.get("backend")) else "sqlite"


@pytest.fixture
def services(base_services: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Services with a fresh shop, working memory, audit and decision logs and lesson queue for this test.

    On the Postgres backend (a test parametrised with `checkpointer` or `backend` = postgres) all of them live in the
    test's own Postgres database, beside the checkpoints (as with SWITCHBOARD_DATABASE_URL).
    """
    from auth.audit import SqlAuditLog
    from memory.lessons import LessonQueue
    from memory.working import WorkingMemory
    from observability.decisions import SqlDecisionStore
    from tools.shop import ShopDB

    url = request.getfixturevalue("pg_url") if backend_of(request) == "postgres" else None

    def at(name: str) -> str:
        return url or str(tmp_path / name)

    audit = SqlAuditLog(at("audit.sqlite"))
    shop, working = ShopDB(at("shop.sqlite"), audit=audit), WorkingMemory(at("working.sqlite"))
    decisions, lessons = SqlDecisionStore(at("decisions.sqlite")), LessonQueue(at("lessons.sqlite"))
    shop.seed()
    yield dataclasses.replace(
        base_services,
        shop=shop,
        audit=audit,
        working=working,
        decisions=decisions,
        alerts=None,
        lessons=lessons,
    )
    for store in (shop, working, decisions, lessons, audit):
        store.close()


@pytest.fixture
def make_graph() -> Callable[..., Any]:
    """Compile the supervisor graph for given services and checkpointer."""
    from langgraph.checkpoint.memory import InMemorySaver

    from graphs.supervisor import build_supervisor

    def _make(services: Any, checkpointer: Any = None) -> Any:
        return build_supervisor(services).compile(checkpointer=checkpointer or InMemorySaver())

    return _make


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def checkpointer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Every checkpointer the product supports; Postgres in a database of the test's own (see `pg_url`)."""
    from memory.checkpointer import open_checkpointer

    if request.param == "memory":
        target = "memory"
    elif request.param == "sqlite":
        target = str(tmp_path / "checkpoints.sqlite")
    else:
        target = request.getfixturevalue("pg_url")
    with open_checkpointer(target) as saver:
        yield saver


@dataclasses.dataclass
class FakePrediction:
    intent: str
    confidence: float
    candidates: list[tuple[str, float]]
    oos_score: float = 0.0
    is_oos: bool = False


class StubClassifier:
    """Answers one fixed intent, so routing tests test the routing policy alone."""

    def __init__(self, intent: str, confidence: float = 0.95) -> None:
        self.intent, self.confidence = intent, confidence
        self.candidates: list[tuple[str, float]] = []

    def predict(self, texts: list[str]) -> list[FakePrediction]:
        oos = self.intent == "out_of_scope"
        return [
            FakePrediction(
                self.intent, self.confidence, self.candidates or [(self.intent, self.confidence)], is_oos=oos
            )
            for _ in texts
        ]


@pytest.fixture
def with_intent(services: Any) -> Callable[..., Any]:
    """Services whose classifier always answers `intent` with `confidence`."""

    def _with(intent: str, confidence: float = 0.95) -> Any:
        return dataclasses.replace(services, classifier=StubClassifier(intent, confidence))

    return _with


@pytest.fixture
def cli(seeded_settings: Settings, model_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any):
    """Run app.main in-process on a copy of the seeded data directory, offline; returns (exit code, stdout as
    parsed JSON, else its text, else None when it printed nothing, stderr)."""
    import json
    import shutil

    import app

    data = tmp_path / "data"
    shutil.copytree(seeded_settings.data_dir, data)
    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(data))
    monkeypatch.setenv("SWITCHBOARD_MODEL_CACHE", str(model_cache))
    for var in ("OPENAI_API_KEY", "SWITCHBOARD_LLM_BASE_URL", "SWITCHBOARD_REDIS_URL"):
        monkeypatch.delenv(var, raising=False)

    def _run(*argv: str) -> tuple[int, Any, str]:
        code = app.main(list(argv))
        out, err = capsys.readouterr()
        if out.strip().startswith(("{", "[")):
            return code, json.loads(out), err
        return code, (out if out.strip() else None), err

    return _run
