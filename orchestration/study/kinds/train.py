"""The `train` stage kind: one run of the study's base with the stage's overrides.

A pre-training run reports no main-task metric, so the stage may name its own `metric`
(e.g. `val/knn_accuracy`): it picks the run's best epoch, hence the `best_checkpoint` a
later stage fine-tunes from.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hmtl.orchestration.study.kinds.base import explicit_space, point_overrides
from hmtl.orchestration.sweep.space import TrialPoint


class TrainOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    seed: int | None = Field(None, ge=0)
    """`runtime.seed` of the run (default: the base's)."""
    metric: str | None = None
    """What judges the run's epochs (default: the study's metric, a test/ one by its val/
    twin), e.g. `val/knn_accuracy` for a pre-training run."""
    mode: Literal["max", "min"] | None = None

    @field_validator("metric")
    @classmethod
    def _reported(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"(train|val)/[\w./-]+", value):
            raise ValueError(
                f"'{value}' is not a metric reported every epoch (train/... or val/..., "
                "e.g. val/knn_accuracy)"
            )
        return value


class TrainStage:
    options = TrainOptions

    def check(self, study, stage) -> None:
        return None

    def space(self, study, stage, options: TrainOptions, overrides: dict):
        tags = {"hmtl.arm": stage.name, "hmtl.cell": stage.name}
        if options.seed is not None:
            tags["hmtl.seed"] = str(options.seed)
        # The overrides go on the trial, not the base: they are the run's `best_config`.
        seed = {} if options.seed is None else {"runtime.seed": options.seed}
        point = TrialPoint(overrides={**overrides, **seed}, tags=tags)
        judge = None
        if options.metric:
            judge = (options.metric, options.mode or study.mode)
        return explicit_space(study, stage, study.base_tree(), [point], 1, judge)

    def outputs(self, study, space, result, sweep) -> dict[str, Any]:
        return {"best_config": point_overrides(space, result.best_params)}

    def design(self, study, stage) -> None:
        return None
