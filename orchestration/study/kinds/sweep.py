"""The `sweep` stage kind: a search space (shipped name, path or inline) run as a stage.

The space keeps its own searcher, scheduler, metric and resources; the stage's name replaces
the space's (it names the stage's folder and MLflow run), and the stage's overrides are set
on top of the space's base. An inline space without `base` takes the study's.

`confirm: {top_k, repeats}` adds a stage `<name>-confirm` right after this one (kind
`confirm`, orchestration/study/kinds/confirm.py) that runs the `top_k` best configurations again
over fresh seeds, so the study's answer is not one lucky seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hmtl.orchestration.study.kinds.base import point_overrides
from hmtl.orchestration.study.results import top_configs
from hmtl.orchestration.sweep.smoke import smoke
from hmtl.orchestration.sweep.space import (
    SearchSpace,
    SpaceError,
    load_space,
    validate_space,
    with_values,
)


class Confirm(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    top_k: int = Field(3, ge=1)
    repeats: int = Field(3, ge=1)
    first_seed: int = Field(1000, ge=0)
    """Seeds `first_seed`, `first_seed + 1`, ...: fresh, unlike the sweep's."""


class SweepOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    space: str | dict[str, Any]
    """A shipped search space's name, a path (relative to the study file) or a mapping."""
    num_samples: int | None = Field(None, ge=1)
    confirm: Confirm | None = None


TOP = 10
"""How many of a sweep's best configurations are recorded (`${stage.top_configs}`)."""


class SweepStage:
    options = SweepOptions

    def _load(self, study, stage, options: SweepOptions) -> SearchSpace:
        spec = options.space
        if isinstance(spec, dict):
            raw = {"name": stage.name, "base": study.base_tree(), **spec}
            return validate_space(raw, study.source)
        folder = study.source.parent if study.source else None
        if folder is not None and (folder / spec).is_file():
            spec = str(folder / spec)
        return load_space(spec)

    def check(self, study, stage) -> None:
        where = f"stages[{stage.index}] ({stage.name})"
        try:
            space = self._load(study, stage, stage.options)
        except SpaceError as err:
            raise ValueError(f"{where}.space: {err}") from None
        confirm, trials = stage.options.confirm, stage.options.num_samples or space.num_samples
        if confirm and not confirm.top_k <= min(trials, TOP):
            raise ValueError(
                f"{where}.confirm.top_k: {confirm.top_k}, but the sweep runs {trials} trials "
                f"(at most {min(trials, TOP)})"
            )

    def implied(self, stage) -> list[dict[str, Any]]:
        """The confirmation stage that follows a sweep stage with `confirm`."""
        confirm = stage.options.confirm
        if confirm is None:
            return []
        return [
            {
                "name": f"{stage.name}-confirm",
                "kind": "confirm",
                "configs": f"${{{stage.name}.top_configs}}",
                **confirm.model_dump(),
            }
        ]

    def space(self, study, stage, options: SweepOptions, overrides: dict) -> SearchSpace:

        space = self._load(study, stage, options)
        raw = space.model_dump(mode="json", exclude={"source"})
        raw.update(name=stage.name, base=with_values(space.base_tree(), overrides))
        if options.num_samples:
            raw["num_samples"] = options.num_samples
        space = validate_space(raw, space.source)
        if study.smoke:
            scratch = study.base_tree()["data"]["cache_dir"]  # study/smoke.py sets it
            space = smoke(space, _parent(scratch))
            space = space.model_copy(update={"name": stage.name})
        return space

    def outputs(self, study, space, result, sweep) -> dict[str, Any]:

        return {
            "best_config": point_overrides(space, result.best_params),
            "top_configs": top_configs(study, space, sweep, TOP),
        }

    def design(self, study, stage) -> None:
        return None


def _parent(path: str):

    return Path(path).parent
