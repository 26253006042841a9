"""Hyper-parameters of the intent classifier (saved in the model manifest)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Combine = Literal["average", "concat", "auto"]


@dataclass(frozen=True)
class ClassifierConfig:
    """Settings for `IntentClassifier.fit`. Grids are searched on the validation split only.

    combine: "average" blends the probabilities of an embedding LR, a TF-IDF LR and a kNN vote with weights
    chosen on validation; "concat" fits one LR on [embedding, TF-IDF]; "auto" tries both and keeps the
    better on validation (costs one more fit).
    """

    combine: Combine = "average"
    c_embedding: float = 30.0
    c_tfidf: float = 30.0
    c_concat: float = 30.0
    concat_embedding_scale: float = 2.0
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 5)
    char_min_df: int = 2
    knn_k: int = 10
    knn_temperature: float = 0.05
    weight_step: float = 0.1
    max_iter: int = 500
    tol: float = 1e-3
    holdout_fraction: float = 0.2
    refit_on_all: bool = True
    target_inscope_accuracy: float = 0.96
    max_inscope_drop: float = 0.01
    min_oos_examples: int = 10
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassifierConfig:
        """Inverse of `to_dict`; unknown keys are ignored so older manifests still load."""
        known = {f for f in cls.__dataclass_fields__}
        kwargs: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in known}
        return cls(**kwargs)
