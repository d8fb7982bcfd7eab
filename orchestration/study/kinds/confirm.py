"""The `confirm` stage kind: a sweep's best configurations run again over fresh seeds.

Added after a sweep stage that says `confirm: {top_k, repeats}` (orchestration/
study/kinds/sweep.py), or written out: `configs` is a list of dotted overrides or a reference such
as `${search.top_configs}`. Arms `top1` .. `topK` (the sweep's order, `top1` the baseline)
x seeds, one trial each, like a grid; the stage's `best_config` is the arm with the best
mean, not the single best trial.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hmtl.orchestration.study.kinds.base import explicit_space
from hmtl.orchestration.study.refs import has_reference
from hmtl.orchestration.study.report.build import Design
from hmtl.orchestration.study.results import best_cell
from hmtl.orchestration.sweep.space import TrialPoint, with_values


class ConfirmOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    configs: list[dict[str, Any]] | str
    top_k: int = Field(3, ge=1)
    repeats: int = Field(3, ge=1)
    first_seed: int = Field(1000, ge=0)
    max_concurrent_trials: int | None = Field(None, ge=1)


def arm_names(options: ConfirmOptions) -> list[str]:
    return [f"top{i + 1}" for i in range(options.top_k)]


class ConfirmStage:
    options = ConfirmOptions

    def check(self, study, stage) -> None:
        configs = stage.options.configs
        if isinstance(configs, str) and not has_reference(configs):
            where = f"stages[{stage.index}] ({stage.name}).configs"
            raise ValueError(f"{where}: expected a list of overrides or a reference")

    def space(self, study, stage, options: ConfirmOptions, overrides: dict):
        base = with_values(study.base_tree(), overrides)
        configs = list(options.configs)[: options.top_k]
        seeds = range(options.first_seed, options.first_seed + options.repeats)
        points = [
            TrialPoint(
                overrides={**config, "runtime.seed": seed},
                tags={"hmtl.arm": arm, "hmtl.cell": arm, "hmtl.seed": str(seed)},
            )
            for seed in seeds
            for arm, config in zip(arm_names(options), configs, strict=False)
        ]
        return explicit_space(study, stage, base, points, options.max_concurrent_trials)

    def outputs(self, study, space, result, sweep) -> dict[str, Any]:

        return best_cell(study, space, sweep)

    def design(self, study, stage) -> Design:
        arms = arm_names(stage.options)
        return Design(
            metric=study.metric,
            mode=study.mode,
            baseline=arms[0],
            factors=[],
            arms=arms,
            aux_tasks=[],
            arm_aux={},
        )
