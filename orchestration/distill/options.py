"""`DistillOptions`: what `hmtl distill` and a study's `distill` stage take, declared once.

The distillation settings' defaults and bounds are `DistillSettings`'
(trainables/distill/settings.py); this model adds the source and is what a study file's
`distill` stage is validated against (orchestration/study/kinds/distill.py). `hmtl distill`
builds its options from these fields (orchestration/cli/distill.py), so the two cannot drift.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hmtl.trainables.distill.settings import AUGMENT_OPS, DistillSettings

SETTINGS = DistillSettings.__pydantic_fields__
"""The settings' fields (default and bounds), reused below rather than declared again."""


class DistillOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    source: str
    """The labelled dataset to distil (its train rows): `${mine.dataset}` or a URI."""
    images_per_class: int = SETTINGS["images_per_class"]
    iterations: int = SETTINGS["iterations"]
    lr: float = SETTINGS["lr"]
    momentum: float = SETTINGS["momentum"]
    real_batch: int = SETTINGS["real_batch"]
    width: int = SETTINGS["width"]
    depth: int = SETTINGS["depth"]
    augment: list[str] = Field(default_factory=lambda: list(SETTINGS["augment"].default))
    """Siamese augmentation ops ([] for none); a list, as a study file writes it."""
    seed: int = SETTINGS["seed"]

    @field_validator("augment")
    @classmethod
    def _known_ops(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(AUGMENT_OPS))
        if unknown:
            raise ValueError(f"unknown ops {unknown}; choose from {', '.join(AUGMENT_OPS)}")
        return value

    def settings(self) -> DistillSettings:
        """The distillation settings (all but the source)."""
        return DistillSettings(**self.model_dump(exclude={"source"}))
