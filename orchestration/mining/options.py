"""`MineOptions`: what `hmtl mine` and a study's `mine` stage take, declared once.

The selection settings' defaults and bounds are `MiningSettings`'
(trainables/mining/settings.py; every default is ours); this model adds the inputs and the
engine and is what a study file's `mine` stage is validated against
(orchestration/study/kinds/mine.py). `hmtl mine` builds its options from these fields
(orchestration/cli/mine.py), so the two cannot drift.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hmtl.trainables.mining import MiningSettings

SETTINGS = MiningSettings.model_fields
"""The selection settings' fields (default and bounds), reused below, not declared again."""

SELECTION = (
    "per_class",
    "min_similarity",
    "min_confidence",
    "agree",
    "exclude_similarity",
    "prototypes_per_class",
)
"""The options that are MiningSettings fields."""


class MineOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    model: str
    """The primitive model: `${stage.best_checkpoint}`, runs:/<id> or a checkpoint URI."""
    pool: str
    """The unlabelled pool: a prepared dataset URI, or `synthetic[:N]` (the shipped one)."""
    labelled: str | None = None
    """The labelled set whose training split gives the prototypes (default: base data.source)."""
    per_class: int | None = SETTINGS["per_class"]
    min_similarity: float | None = SETTINGS["min_similarity"]
    min_confidence: float | None = SETTINGS["min_confidence"]
    agree: bool = SETTINGS["agree"]
    exclude: list[str] = []
    exclude_similarity: float = SETTINGS["exclude_similarity"]
    prototypes_per_class: int = SETTINGS["prototypes_per_class"]
    engine: Literal["ray", "local"] = "ray"
    """Ray Data actors, or one in-process loop (small pools)."""
    actors: int | None = Field(None, ge=1)
    """Embedding actors (default: one per GPU, else one per CPU but one)."""

    def settings(self) -> MiningSettings:
        """The selection settings."""
        return MiningSettings(**{name: getattr(self, name) for name in SELECTION})
