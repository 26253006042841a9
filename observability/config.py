"""config/observability.yaml, validated: prices, alert thresholds, the semantic health check, caching.

    cfg = load_observability(CONFIG_DIR / "observability.yaml")   # ValueError naming the bad key
    cfg.prices["gpt-4o-mini"]                                      # (input, output) USD per million tokens
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

CONFIG_FILE = Path(__file__).resolve().parents[1] / "config" / "observability.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Alerts(_Strict):
    window_s: float = Field(900, gt=0)
    min_tickets: int = Field(5, ge=1)
    p95_latency_ms: float | None = Field(5000, gt=0)
    error_rate: float | None = Field(0.2, ge=0, le=1)
    escalation_rate: float | None = Field(0.5, ge=0, le=1)
    cost_per_hour_usd: float | None = Field(5.0, ge=0)
    webhook_url: str | None = None
    webhook_timeout_s: float = Field(3.0, gt=0)

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


class SemanticCase(_Strict):
    text: str = Field(min_length=1)
    intent: str
    route: Literal["retrieve_knowledge", "analyze_technical", "plan_action", "escalate", "generate_response"]


class SemanticHealth(_Strict):
    timeout_s: float = Field(2.0, gt=0)
    startup_timeout_s: float = Field(120, gt=0)
    cases: tuple[SemanticCase, ...] = Field(min_length=1)


class Cache(_Strict):
    enabled: bool = True
    ttl_s: int | None = Field(300, gt=0)


class Observability(_Strict):
    version: Literal[1] = 1
    prices: dict[str, tuple[float, float]] = Field(default_factory=dict)
    alerts: Alerts = Alerts()
    semantic_health: SemanticHealth
    cache: Cache = Cache()

    @field_validator("prices")
    @classmethod
    def _non_negative(cls, value: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for model, pair in value.items():
            if min(pair) < 0:
                raise ValueError(f"{model}: prices must not be negative")
        return value


@lru_cache(maxsize=8)
def load_observability(path: Path = CONFIG_FILE) -> Observability:
    """Load and validate the file; every problem is reported on one line naming its key."""
    from config.settings import _read_yaml  # the one YAML reader (config.permissions uses it too)

    data = _read_yaml(Path(path))
    try:
        return Observability.model_validate(data)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            got = "" if err["type"] in ("missing", "extra_forbidden") else f" (got {err.get('input')!r})"
            parts.append(f"{loc}: {err['msg']}{got}")
        raise ValueError(f"{path}: " + "; ".join(parts)) from None
