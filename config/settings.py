"""Settings: environment variables are read once, at start-up, into a typed object.

Nodes never read the environment; they receive what they need through `Services` (built from these
settings) and the per-run `Context`.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

if TYPE_CHECKING:
    from langgraph.types import RetryPolicy

    from config.permissions import Permissions
    from observability.config import Observability

CONFIG_DIR = Path(__file__).resolve().parent
REPO_ROOT = CONFIG_DIR.parent
DEMO_DIR = REPO_ROOT / "demo"
DEFAULT_DATA_DIR = Path(".switchboard")
"""`Settings.data_dir` when SWITCHBOARD_DATA_DIR is unset; library defaults use it, entry points pass settings."""


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level(env: Mapping[str, str] | None = None) -> str | None:
    """`SWITCHBOARD_LOG_LEVEL` (upper-cased), None when unset. Read on its own, before `Settings`, so that logging is
    set up before the rest of the environment is validated."""
    e = os.environ if env is None else env
    value = (e.get("SWITCHBOARD_LOG_LEVEL") or "").strip().upper()
    if not value:
        return None
    if value not in LOG_LEVELS:
        raise ValueError(f"SWITCHBOARD_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {value!r}")
    return value


class ConfidencePolicy(BaseModel):
    """Confidence thresholds: >= auto completes on its own, >= review asks a human, below escalates."""

    model_config = ConfigDict(frozen=True)
    auto: float = Field(0.85, ge=0, le=1)
    review: float = Field(0.5, ge=0, le=1)


class Limits(BaseModel):
    model_config = ConfigDict(frozen=True)
    max_input_chars: int = 4000
    max_hops: int = 8
    max_log_lines: int = 40
    ticket_budget_s: float = Field(120.0, gt=0)
    """Wall-clock seconds per ticket (between supervisor hops) before it is escalated to a human."""
    max_specialist_failures: int = Field(2, ge=1)
    """Consecutive failures of one specialist before the ticket is escalated; below it the specialist runs again."""
    lease_ttl_s: float = Field(300.0, gt=0)
    """Life of a run's per-thread lease (memory.locks); a crashed holder's lease expires after it."""

    @model_validator(mode="after")
    def _lease_outlives_ticket(self) -> Limits:
        if self.lease_ttl_s <= self.ticket_budget_s:
            raise ValueError("limits.lease_ttl_s must exceed limits.ticket_budget_s")
        return self


class RetrievalPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)
    top_k: int = 5
    relevance_weight: float = 0.7
    recency_weight: float = 0.3
    recency_half_life_days: float = 30
    min_relevance: float = 0.25
    lexical_weight: float = 0.4


class SessionPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)
    window_turns: int = 6
    summary_max_tokens: int = 200
    context_token_budget: int = 1200


class WorkingMemoryPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)
    ttl_seconds: int = 86400


class LLMPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)
    timeout_s: float = 30
    max_retries: int = 2
    temperature: float = 0


class GroundingPolicy(BaseModel):
    """How the answer's grounding scales the intent's confidence (config/policy.yaml `grounding`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    article_min_relevance: float = Field(0.45, ge=0, le=1)
    """An article grounds an answer when its relevance reaches this..."""
    intent_article_min_relevance: float = Field(0.25, ge=0, le=1)
    """...or this, when the article is written for the ticket's intent."""
    fact_boost: float = Field(0.7, ge=0, le=1)
    """Share of the intent's doubt that identity-checked facts (an order lookup, a checked precondition, an
    executed action) take away, for tickets in the review band."""
    ungrounded_factor: float = Field(0.6, ge=0, le=1)
    """Confidence multiplier for an answer that no fact, precondition or relevant article supports."""
    strong_article_relevance: float = Field(0.5, ge=0, le=1)
    """An article written for the ticket's intent this relevant to the ticket answers it on its own..."""
    article_boost: float = Field(0.5, ge=0, le=1)
    """...and takes this share of the intent's doubt away, for tickets in the review band."""


class ApprovalPolicy(BaseModel):
    """When a planned write waits for a human (config/policy.yaml `approval`); an assistant may only tighten it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    refund_auto_approve_eur: float = Field(0.0, ge=0)
    """A refund of at most this amount (EUR) is approved by policy, recorded as such; 0: every refund waits."""
    always_human: tuple[str, ...] = ("delete_account",)
    """Write tools that always wait for a human, whatever the amount or an assistant's context."""

    @model_validator(mode="after")
    def _deletion_needs_a_human(self) -> ApprovalPolicy:
        if "delete_account" not in self.always_human:
            raise ValueError("approval.always_human must list delete_account: an account deletion always needs a human")
        return self


class Bucket(BaseModel):
    """One token bucket: up to `capacity` requests at once, refilled at `per_minute` requests a minute."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    capacity: float = Field(ge=1)
    per_minute: float = Field(gt=0)

    @property
    def per_second(self) -> float:
        return self.per_minute / 60


class RateLimitPolicy(BaseModel):
    """Token buckets per user and per tenant for tickets (config/policy.yaml `rate_limits`; auth.ratelimit)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    enabled: bool = True
    user: Bucket = Bucket(capacity=10, per_minute=30)
    tenant: Bucket = Bucket(capacity=100, per_minute=600)


class Policy(BaseModel):
    """Everything in config/policy.yaml, validated."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    version: int = 1
    confidence: ConfidencePolicy = ConfidencePolicy()
    grounding: GroundingPolicy = GroundingPolicy()
    approval: ApprovalPolicy = ApprovalPolicy()
    limits: Limits = Limits()
    retrieval: RetrievalPolicy = RetrievalPolicy()
    session: SessionPolicy = SessionPolicy()
    working_memory: WorkingMemoryPolicy = WorkingMemoryPolicy()
    llm: LLMPolicy = LLMPolicy()
    rate_limits: RateLimitPolicy = RateLimitPolicy()


SPECIALISTS = ("retrieve_knowledge", "analyze_technical", "plan_action", "escalate")


class Workflow(BaseModel):
    """One intent's routing policy (config/workflows.yaml)."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    description: str = ""
    specialists: tuple[str, ...] = ()
    read_tools: tuple[str, ...] = ()
    action: str | None = None
    approval: str = "none"
    requires: tuple[str, ...] = ()
    escalate: bool = False
    done: str = ""
    order: str = "auto"
    """Whether the answer is about one order: `required` (ask which one when it is not clear), `optional`, or
    `auto` (required when the action needs an order_id)."""
    order_statuses: tuple[str, ...] = ()
    """Statuses of the customer's orders to offer when asking which order (empty: all)."""

    @property
    def needs_order(self) -> bool:
        return self.order == "required" or (self.order == "auto" and "order_id" in self.requires)


class Settings(BaseModel):
    """Process-wide settings, read from the environment once."""

    model_config = ConfigDict(frozen=True)
    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str | None = None
    """One Postgres URL for the shared state of several instances: checkpoints (unless `checkpointer_url` says
    otherwise), per-thread leases, the shop database with its idempotency ledger and audit log, working memory,
    the audit and decision logs (unless `audit_url` / `decisions_url` say otherwise), API keys (unless `auth_db`
    does), the lesson queue and the LangGraph store of in-process runs. Default: SQLite files in data_dir."""
    checkpointer_url: str | None = None  # default: database_url, else a sqlite file in data_dir
    chroma_url: str | None = None  # http(s)://host:port of a Chroma server; default: embedded PersistentClient
    openai_api_key: str | None = None
    llm_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_fallback_model: str | None = None
    redis_url: str | None = None  # shared circuit-breaker state across processes; default: in-process only
    model_cache_dir: Path | None = None  # built ONNX encoder; default: data_dir/models
    config_dir: Path = CONFIG_DIR
    demo_dir: Path = DEMO_DIR
    auth_db: Path | None = None  # API keys (hashed); default: database_url, else data_dir/auth.sqlite
    audit_url: str | None = None  # audit log (auth/audit.py): a path or URL; default: database_url, else audit.sqlite
    auth_allow_studio: bool = False  # accept Studio's keyless requests from loopback (see README, Auth)
    studio_user: str = "demo"  # who such a Studio request acts as (role agent)
    studio_tenant: str = "default"
    cli_role: Literal["customer", "agent", "admin"] = "admin"  # the CLI's local operator answering interrupts
    decisions_url: str | None = None  # decision log: a path or URL; default: database_url, else decisions.sqlite
    alert_webhook_url: str | None = None  # alerts are posted here (else config/observability.yaml's webhook_url)
    pii_key: str | None = Field(None, repr=False)  # SWITCHBOARD_PII_KEY (guards/vault.py); default: data_dir/pii.key

    @property
    def llm_enabled(self) -> bool:
        return bool(self.openai_api_key or self.llm_base_url)

    @property
    def embedder_cache(self) -> Path:
        return self.model_cache_dir or self.data_dir / "models"

    @property
    def auth_target(self) -> str:
        """API keys (auth/keys.py): `auth_db`, else database_url, else a SQLite file."""
        return str(self.auth_db) if self.auth_db else self.database_url or str(self.data_dir / "auth.sqlite")

    @property
    def lexical_cache_dir(self) -> Path:
        """Fitted lexical (TF-IDF) indexes of the knowledge base, keyed by the content they were fitted on
        (memory.lexical)."""
        return self.data_dir / "lexical"

    @property
    def intent_model_dir(self) -> Path:
        """The intent classifier: `app.py train-intents` and `seed` write it, `build_services` loads it
        (`IntentClassifier.load`, with the fine-tuned encoder its `encoder.json` names)."""
        return self.data_dir / "models" / "intents"

    def finetuned_encoder_dir(self, name: str) -> Path:
        """Default folder of an encoder fine-tuned on the data set `name` (classifier.finetune)."""
        return self.data_dir / "models" / f"finetuned-{name}"

    @property
    def embedding_cache_dir(self) -> Path:
        """Cached embeddings of whole data sets (memory.embedder.CachedEmbedder, the evals)."""
        return self.data_dir / "cache"

    @property
    def pii_key_path(self) -> Path:
        """Where the embedded default keeps the PII key when SWITCHBOARD_PII_KEY is unset (created on first use)."""
        return self.data_dir / "pii.key"

    @model_validator(mode="after")
    def _valid_urls(self) -> Settings:
        from storage.sql import is_postgres, redact

        if self.database_url is not None and not is_postgres(self.database_url):
            raise ValueError(
                f"SWITCHBOARD_DATABASE_URL must be a postgresql:// URL, not {redact(self.database_url)!r} "
                "(leave it unset for the embedded SQLite files)"
            )
        if self.chroma_url is not None:
            from urllib.parse import urlsplit

            parts = urlsplit(self.chroma_url)
            try:
                port = parts.port
            except ValueError:
                port = None
            if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
                raise ValueError(f"SWITCHBOARD_CHROMA_URL must look like http://HOST:PORT, not {self.chroma_url!r}")
        return self

    @property
    def checkpoint_target(self) -> str:
        return self.checkpointer_url or self.database_url or str(self.data_dir / "checkpoints.sqlite")

    @property
    def shop_target(self) -> str:
        """The shop database (with the idempotency ledger and audit log): database_url, else a SQLite file."""
        return self.database_url or str(self.data_dir / "shop.sqlite")

    @property
    def working_target(self) -> str:
        """Working memory: database_url, else a SQLite file."""
        return self.database_url or str(self.data_dir / "working.sqlite")

    @property
    def audit_target(self) -> str:
        """The audit log (auth/audit.py): `audit_url`, else database_url, else a SQLite file."""
        return self.audit_url or self.database_url or str(self.data_dir / "audit.sqlite")

    @property
    def decisions_target(self) -> str:
        """The decision log and alerts (observability/decisions.py): `decisions_url`, else database_url, else a
        SQLite (FTS5) file."""
        return self.decisions_url or self.database_url or str(self.data_dir / "decisions.sqlite")

    @property
    def lessons_target(self) -> str:
        """The lesson review queue (memory/lessons.py): database_url, else a SQLite file."""
        return self.database_url or str(self.data_dir / "lessons.sqlite")

    @property
    def store_target(self) -> str:
        """The LangGraph store of in-process runs (memory/user_store.py): database_url (PostgresStore), else a
        SQLite file (the served graph uses the server's store)."""
        return self.database_url or str(self.data_dir / "store.sqlite")

    @property
    def knowledge_target(self) -> str:
        """Long-term memory: a Chroma server's URL, else the embedded store's directory."""
        return self.chroma_url or str(self.data_dir / "chroma")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        return cls(
            data_dir=Path(e.get("SWITCHBOARD_DATA_DIR") or DEFAULT_DATA_DIR).expanduser(),
            database_url=e.get("SWITCHBOARD_DATABASE_URL") or None,
            checkpointer_url=e.get("SWITCHBOARD_CHECKPOINTER_URL") or None,
            chroma_url=e.get("SWITCHBOARD_CHROMA_URL") or None,
            openai_api_key=e.get("OPENAI_API_KEY") or None,
            llm_base_url=e.get("SWITCHBOARD_LLM_BASE_URL") or None,
            llm_model=e.get("SWITCHBOARD_LLM_MODEL", "gpt-4o-mini"),
            llm_fallback_model=e.get("SWITCHBOARD_LLM_FALLBACK_MODEL") or None,
            redis_url=e.get("SWITCHBOARD_REDIS_URL") or None,
            model_cache_dir=Path(e["SWITCHBOARD_MODEL_CACHE"]) if e.get("SWITCHBOARD_MODEL_CACHE") else None,
            auth_db=Path(e["SWITCHBOARD_AUTH_DB"]).expanduser() if e.get("SWITCHBOARD_AUTH_DB") else None,
            audit_url=e.get("SWITCHBOARD_AUDIT_URL") or None,
            auth_allow_studio=e.get("SWITCHBOARD_AUTH_ALLOW_STUDIO") == "1",
            studio_user=e.get("SWITCHBOARD_STUDIO_USER") or "demo",
            studio_tenant=e.get("SWITCHBOARD_STUDIO_TENANT") or "default",
            cli_role=e.get("SWITCHBOARD_CLI_ROLE") or "admin",  # validated by pydantic
            config_dir=Path(e.get("SWITCHBOARD_CONFIG_DIR") or CONFIG_DIR).expanduser(),
            decisions_url=e.get("SWITCHBOARD_DECISIONS_URL") or None,
            alert_webhook_url=e.get("SWITCHBOARD_ALERT_WEBHOOK_URL") or None,
            pii_key=e.get("SWITCHBOARD_PII_KEY") or None,
        )

    def policy(self) -> Policy:
        return load_policy(self.config_dir / "policy.yaml")

    def workflows(self) -> dict[str, Workflow]:
        return load_workflows(self.config_dir / "workflows.yaml")

    def error_policies(self) -> ErrorPolicies:
        return load_error_policies(self.config_dir / "error-policies.yaml")

    def permissions(self) -> Permissions:
        """config/permissions.yaml validated against the registered tools and the workflows that use them."""
        from config.permissions import check_workflows, load_permissions
        from tools.shop import TOOLS

        path = self.config_dir / "permissions.yaml"
        reads = tuple(sorted(n for n, s in TOOLS.items() if not s.is_write))
        permissions = load_permissions(path, tuple(sorted(TOOLS)), reads)
        check_workflows(permissions, self.workflows(), path)
        return permissions

    def observability(self) -> Observability:
        """config/observability.yaml (prices, alerts, semantic health, caching), validated."""
        from observability.config import load_observability

        return load_observability(self.config_dir / "observability.yaml")


SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""PyYAML's safe loader, on libyaml when PyYAML was built with it (the same documents, several times faster: the
config files are read on every cold start)."""


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    except FileNotFoundError as exc:
        raise ValueError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping")
    return data


@lru_cache(maxsize=8)
def load_policy(path: Path) -> Policy:
    """Load and validate config/policy.yaml."""
    policy = Policy.model_validate(_read_yaml(path))
    if policy.confidence.review > policy.confidence.auto:
        raise ValueError(f"{path}: confidence.review must not exceed confidence.auto")
    return policy


@lru_cache(maxsize=8)
def load_workflows(path: Path) -> dict[str, Workflow]:
    """Load config/workflows.yaml and validate every specialist name."""
    raw = _read_yaml(path).get("intents") or {}
    flows: dict[str, Workflow] = {}
    for intent, spec in raw.items():
        flow = Workflow.model_validate(spec or {})
        unknown = [s for s in flow.specialists if s not in SPECIALISTS]
        if unknown:
            raise ValueError(f"{path}: intent {intent!r} names unknown specialists {unknown}")
        if flow.approval not in ("required", "none"):
            raise ValueError(f"{path}: intent {intent!r} has approval {flow.approval!r} (required | none)")
        flows[intent] = flow
    if "out_of_scope" not in flows:
        flows["out_of_scope"] = Workflow(description="Not something the shop desk handles.")
    return flows


# --- config/error-policies.yaml ---------------------------------------------------------------------------

ModelErrorKind = Literal["timeout", "connection", "rate_limit", "server_error", "malformed", "truncated"]
NodeErrorKind = Literal["sqlite_busy", "connection", "timeout"]
Task = Literal["default", "classify", "summarise", "answer"]
Complexity = Literal["simple", "hard"]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelRetry(_Strict):
    """Retries on one model endpoint (tenacity): exponential backoff with jitter, Retry-After honoured."""

    attempts: int = Field(3, ge=1, le=10)
    initial_s: float = Field(0.5, ge=0)
    factor: float = Field(2.0, ge=1)
    max_s: float = Field(8.0, ge=0)
    jitter_s: float = Field(0.5, ge=0)
    retry_on: tuple[ModelErrorKind, ...] = ("timeout", "connection", "rate_limit", "server_error")
    max_retry_after_s: float = Field(20.0, ge=0)


class BreakerPolicy(_Strict):
    failure_threshold: int = Field(3, ge=1)
    cooldown_s: float = Field(30.0, gt=0)
    trial_timeout_s: float | None = Field(None, gt=0)


class RateLimit(_Strict):
    requests_per_second: float = Field(gt=0)
    max_bucket_size: float = Field(1.0, ge=1)


class ModelEndpoint(_Strict):
    """One model endpoint: its model id, the client's timeout, retries, breaker and optional rate limit."""

    model: str | None = None
    timeout_s: float = Field(30.0, gt=0)
    stream: bool = False
    retry: ModelRetry = ModelRetry()
    breaker: BreakerPolicy = BreakerPolicy()
    rate_limit: RateLimit | None = None


class NodeRetry(_Strict):
    """A LangGraph RetryPolicy for an I/O node or a tool, with `retry_on` named, not imported."""

    attempts: int = Field(3, ge=1, le=10)
    initial_s: float = Field(0.5, ge=0)
    factor: float = Field(2.0, ge=1)
    max_s: float = Field(8.0, ge=0)
    jitter: bool = True
    retry_on: tuple[NodeErrorKind, ...] = Field(("sqlite_busy",), min_length=1)

    def retry_policy(self) -> RetryPolicy:
        import sqlite3

        from langgraph.types import RetryPolicy

        errors: dict[str, type[Exception]] = {
            "sqlite_busy": sqlite3.OperationalError,
            "connection": ConnectionError,
            "timeout": TimeoutError,
        }
        return RetryPolicy(
            initial_interval=self.initial_s,
            backoff_factor=self.factor,
            max_interval=self.max_s,
            max_attempts=self.attempts,
            jitter=self.jitter,
            retry_on=tuple(errors[kind] for kind in self.retry_on),
        )


class ToolPolicy(_Strict):
    """The boundary around one tool (tools.boundary): retries (tenacity, exponential + jitter) on the kinds in
    `retry_on`, and a circuit breaker counting calls that raised or returned malformed data."""

    attempts: int = Field(2, ge=1, le=10)
    initial_s: float = Field(0.1, ge=0)
    factor: float = Field(2.0, ge=1)
    max_s: float = Field(1.0, ge=0)
    jitter_s: float = Field(0.1, ge=0)
    retry_on: tuple[NodeErrorKind, ...] = ("sqlite_busy",)
    breaker: BreakerPolicy = BreakerPolicy(failure_threshold=5, cooldown_s=30.0)


class ComplexityRules(_Strict):
    """When an answer is hard (llm.complexity): 0 switches a rule off."""

    technical: bool = True
    min_questions: int = Field(2, ge=0)
    min_orders: int = Field(2, ge=0)


class ErrorDefaults(_Strict):
    model: ModelEndpoint = ModelEndpoint()
    tool: ToolPolicy = ToolPolicy()


class ErrorPolicies(_Strict):
    """Everything in config/error-policies.yaml, validated; `defaults.model` is merged into each endpoint."""

    version: Literal[1] = 1
    defaults: ErrorDefaults = ErrorDefaults()
    models: dict[str, ModelEndpoint] = Field(default_factory=dict)
    routes: dict[Task, dict[Complexity, list[str]]] = Field(default_factory=dict)
    complexity: ComplexityRules = ComplexityRules()
    nodes: dict[str, NodeRetry] = Field(default_factory=dict)
    tools: dict[str, ToolPolicy] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _merge_defaults(cls, data: Any) -> Any:
        """Merge `defaults.model` into each endpoint and `defaults.tool` into each tool; anything malformed is
        left for validation to name."""
        for section, kind in (("models", "model"), ("tools", "tool")):
            try:
                base, specs = data["defaults"][kind], data[section]
                data = {**data, section: {name: _deep_merge(base, spec or {}) for name, spec in specs.items()}}
            except (KeyError, TypeError, AttributeError, ValueError):
                continue
        return data

    def tool(self, name: str) -> ToolPolicy:
        """The policy of tool `name`: its own entry, else `defaults.tool`."""
        return self.tools.get(name) or self.defaults.tool

    def check_tools(self, tool_names: Collection[str]) -> None:
        """A tool name the registry does not have is an error (a typo would silently get the defaults)."""
        unknown = sorted(set(self.tools) - set(tool_names))
        if unknown:
            known = ", ".join(sorted(tool_names))
            raise ValueError(f"error-policies tools: unknown tool(s) {unknown} (tools: {known})")

    def route(self, task: str, complexity: str) -> list[str]:
        """Endpoint names for a task and complexity: the task's entry, else `default`'s, else every endpoint."""
        for key in (task, "default"):
            # Any name may be asked (keys are Literals); one without an entry falls through to the next.
            tiers = self.routes.get(key, {}).get(complexity)  # type: ignore[call-overload]
            if tiers:
                return list(tiers)
        return list(self.models)

    def node_retry_policies(self, node_names: tuple[str, ...]) -> dict[str, RetryPolicy]:
        """RetryPolicy per configured node; a node name the graph does not have is an error."""
        unknown = sorted(set(self.nodes) - set(node_names))
        if unknown:
            raise ValueError(f"error-policies nodes: unknown node(s) {unknown} (graph nodes: {', '.join(node_names)})")
        return {name: spec.retry_policy() for name, spec in self.nodes.items()}


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        merged[key] = (
            _deep_merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        )
    return merged


def _one_line(path: Path, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"] if p != "[key]")
        loc = loc.lstrip(".") or "(top level)"
        got = "" if err["type"] in ("missing", "extra_forbidden") else f" (got {err.get('input')!r})"
        parts.append(f"{loc}: {err['msg']}{got}")
    return f"{path}: " + "; ".join(parts)


@lru_cache(maxsize=8)
def load_error_policies(path: Path) -> ErrorPolicies:
    """Load and validate config/error-policies.yaml; every problem is reported on one line naming its key."""
    try:
        policies = ErrorPolicies.model_validate(_read_yaml(path))
    except ValidationError as exc:
        raise ValueError(_one_line(path, exc)) from None
    for task, by_complexity in policies.routes.items():
        for complexity, tiers in by_complexity.items():
            for i, name in enumerate(tiers):
                if name not in policies.models:
                    known = ", ".join(policies.models) or "none"
                    raise ValueError(
                        f"{path}: routes.{task}.{complexity}[{i}]: unknown model endpoint {name!r} (models: {known})"
                    )
    for name, endpoint in policies.models.items():
        if endpoint.model is None and name not in ("primary", "secondary"):
            raise ValueError(
                f"{path}: models.{name}.model: required (only primary and secondary take theirs "
                "from SWITCHBOARD_LLM_MODEL / SWITCHBOARD_LLM_FALLBACK_MODEL)"
            )
    return policies
