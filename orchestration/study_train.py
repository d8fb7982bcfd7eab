"""The `train` stage kind: one run of the study's base with the stage's overrides."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestration.space import TrialPoint
from orchestration.study_kinds import explicit_space, point_overrides, register_stage


class TrainOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    seed: int | None = Field(None, ge=0)
    """`runtime.seed` of the run (default: the base's)."""


@register_stage("train")
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
        return explicit_space(study, stage, study.base_tree(), [point], 1)

    def outputs(self, study, space, result, sweep) -> dict[str, Any]:
        return {"best_config": point_overrides(space, result.best_params)}

    def design(self, study, stage) -> None:
        return None
