"""Settings: environment variables are read once, at start-up, into a typed object.

Nodes never read the environment; they receive what they need through `Services` (built from these
settings) and the per-run `Context`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

CONFIG_DIR = Path(__file__).resolve().parent
REPO_ROOT = CONFIG_DIR.parent
DEMO_DIR = REPO_ROOT / "demo"


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


class Policy(BaseModel):
    """Everything in config/policy.yaml, validated."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    version: int = 1
    confidence: ConfidencePolicy = ConfidencePolicy()
    limits: Limits = Limits()
    retrieval: RetrievalPolicy = RetrievalPolicy()
    session: SessionPolicy = SessionPolicy()
    working_memory: WorkingMemoryPolicy = WorkingMemoryPolicy()
    llm: LLMPolicy = LLMPolicy()


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


class Settings(BaseModel):
    """Process-wide settings, read from the environment once."""

    model_config = ConfigDict(frozen=True)
    data_dir: Path = Path(".switchboard")
    checkpointer_url: str | None = None  # default: sqlite file in data_dir
    chroma_url: str | None = None  # default: embedded PersistentClient in data_dir
    openai_api_key: str | None = None
    llm_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_fallback_model: str | None = None
    model_cache_dir: Path | None = None  # built ONNX encoder; default: data_dir/models
    config_dir: Path = CONFIG_DIR
    demo_dir: Path = DEMO_DIR
    auth_db: Path | None = None  # API keys (hashed); default: data_dir/auth.sqlite
    auth_allow_studio: bool = False  # accept Studio's keyless requests from loopback (see README, Auth)
    studio_user: str = "demo"  # who such a Studio request acts as (role agent)
    studio_tenant: str = "default"

    @property
    def llm_enabled(self) -> bool:
        return bool(self.openai_api_key or self.llm_base_url)

    @property
    def embedder_cache(self) -> Path:
        return self.model_cache_dir or self.data_dir / "models"

    @property
    def auth_path(self) -> Path:
        return self.auth_db or self.data_dir / "auth.sqlite"

    @property
    def checkpoint_target(self) -> str:
        return self.checkpointer_url or str(self.data_dir / "checkpoints.sqlite")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        return cls(
            data_dir=Path(e.get("SWITCHBOARD_DATA_DIR", ".switchboard")).expanduser(),
            checkpointer_url=e.get("SWITCHBOARD_CHECKPOINTER_URL") or None,
            chroma_url=e.get("SWITCHBOARD_CHROMA_URL") or None,
            openai_api_key=e.get("OPENAI_API_KEY") or None,
            llm_base_url=e.get("SWITCHBOARD_LLM_BASE_URL") or None,
            llm_model=e.get("SWITCHBOARD_LLM_MODEL", "gpt-4o-mini"),
            llm_fallback_model=e.get("SWITCHBOARD_LLM_FALLBACK_MODEL") or None,
            model_cache_dir=Path(e["SWITCHBOARD_MODEL_CACHE"]) if e.get("SWITCHBOARD_MODEL_CACHE") else None,
            auth_db=Path(e["SWITCHBOARD_AUTH_DB"]).expanduser() if e.get("SWITCHBOARD_AUTH_DB") else None,
            auth_allow_studio=e.get("SWITCHBOARD_AUTH_ALLOW_STUDIO") == "1",
            studio_user=e.get("SWITCHBOARD_STUDIO_USER") or "demo",
            studio_tenant=e.get("SWITCHBOARD_STUDIO_TENANT") or "default",
        )

    def policy(self) -> Policy:
        return load_policy(self.config_dir / "policy.yaml")

    def workflows(self) -> dict[str, Workflow]:
        return load_workflows(self.config_dir / "workflows.yaml")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
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
