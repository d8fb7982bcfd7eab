"""The `sweep` stage kind: a search space (shipped name, path or inline) run as a stage.

The space keeps its own searcher, scheduler, metric and resources; the stage's name replaces
the space's (it names the stage's folder and MLflow run), and the stage's overrides are set
on top of the space's base. An inline space without `base` takes the study's.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from orchestration.space import SearchSpace, SpaceError, load_space, validate_space, with_values
from orchestration.study_kinds import point_overrides, register_stage


class SweepOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    space: str | dict[str, Any]
    """A shipped search space's name, a path (relative to the study file) or a mapping."""
    num_samples: int | None = Field(None, ge=1)


@register_stage("sweep")
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
        try:
            self._load(study, stage, stage.options)
        except SpaceError as err:
            raise ValueError(f"stages[{stage.index}] ({stage.name}).space: {err}") from None

    def space(self, study, stage, options: SweepOptions, overrides: dict) -> SearchSpace:
        from orchestration.smoke import smoke

        space = self._load(study, stage, options)
        raw = space.model_dump(mode="json", exclude={"source"})
        raw.update(name=stage.name, base=with_values(space.base_tree(), overrides))
        if options.num_samples:
            raw["num_samples"] = options.num_samples
        space = validate_space(raw, space.source)
        if study.smoke:
            scratch = study.base_tree()["data"]["cache_dir"]  # study_smoke.py sets it
            space = smoke(space, _parent(scratch))
            space = space.model_copy(update={"name": stage.name})
        return space

    def best_config(self, space, result) -> dict[str, Any]:
        return point_overrides(space, result.best_params)

    def design(self, study, stage) -> None:
        return None


def _parent(path: str):
    from pathlib import Path

    return Path(path).parent
