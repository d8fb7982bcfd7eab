"""Studies: designed comparisons as data (`search_spaces/studies/<name>.yaml`), validated once.

A study names the metric its report compares, a `base` TrainConfig, the resources of one
trial and ordered `stages`. Every stage has a `name`, a `kind` from the stage registry
(orchestration/study/kinds/base.py: train, sweep, grid, confirm, active, mine, distill), optional
`overrides` (dotted TrainConfig keys set on top of the base) and its kind's own keys. A string
`${stage.field}` refers to an earlier stage's output (`best_checkpoint`, `best_config`,
`run_id`, `dataset`, ...; orchestration/study/refs.py lists them) and is resolved when the
stage starts (orchestration/study/refs.py). Loading checks everything that can be checked
before Ray starts; a problem is one line naming the file, the key and what is wrong.

The metric may be a `test/` metric: trials are then still judged (best epoch, Tune's
bookkeeping) by its `val/` twin, and the report reads the test value of the last epoch.
"""

from __future__ import annotations

import copy
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from hmtl.orchestration.study.checks import StudyError, check_overrides
from hmtl.orchestration.study.kinds import KINDS
from hmtl.orchestration.study.refs import check_references
from hmtl.orchestration.sweep.space import (
    ResourcesConfig,
    config_problem,
    shipped_configs,
)
from hmtl.trainables.config import describe_error


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Stage(BaseModel):
    """A validated stage: its kind's options are parsed by the kind (study/kinds/)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    index: int
    name: str
    kind: str
    overrides: dict[str, Any]
    raw: dict[str, Any]
    """The stage's own keys as written (references unresolved)."""
    options: Any


def _custom(message: str) -> PydanticCustomError:
    return PydanticCustomError("study", "{message}", {"message": message})


class Study(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    """The study's name: its storage folder and its MLflow experiment."""
    description: str | None = None
    metric: str = "test/balanced_accuracy"
    mode: Literal["max", "min"] = "max"
    multiplicity: Literal["holm", "bh"] = "holm"
    """How every report table of several comparisons adjusts its p-values and intervals:
    Holm (family-wise error) or Benjamini-Hochberg (false discovery rate)."""
    base: str | dict[str, Any]
    """A TrainConfig mapping, a YAML path relative to the study file, or a shipped config name."""
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    max_concurrent_trials: int | None = Field(None, ge=1)
    smoke: bool = False
    """Set by `hmtl study --smoke` (orchestration/study/smoke.py), kept for `hmtl resume`."""
    stages: list[dict[str, Any]] = Field(min_length=1)
    source: Path | None = Field(None, exclude=True)

    _base: dict[str, Any] = PrivateAttr(default_factory=dict)
    _stages: list[Stage] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Study:
        try:
            if not re.fullmatch(r"(train|val|test)/[\w./-]+", self.metric):
                raise ValueError(
                    f"metric: '{self.metric}' is not a reported metric key (train/, val/ or "
                    "test/..., e.g. test/balanced_accuracy)"
                )
            self._base = resolve_base(self.base, self.source)

            self._stages = []
            for i, raw in enumerate(self.stages):
                self._stages.append(self._stage(i, raw))
                # A kind may add stages after its own (a sweep's confirmation).
                implied = getattr(KINDS[raw["kind"]], "implied", None)
                for extra in implied(self._stages[-1]) if implied else []:
                    self._stages.append(self._stage(i, extra))
        except ValueError as err:
            raise _custom(str(err)) from None
        return self

    def _stage(self, index: int, raw: Any) -> Stage:

        where = f"stages[{index}]"
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: expected a mapping with name and kind, got {raw!r}")
        name = raw.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            raise ValueError(f"{where}.name: {name!r}: use letters, digits, '_' and '-' only")
        where = f"stages[{index}] ({name})"
        earlier = [s.name for s in self._stages]
        if name in earlier:
            raise ValueError(f"{where}: name '{name}' is used by an earlier stage")
        kind = KINDS.get(raw.get("kind"))
        if kind is None:
            raise ValueError(
                f"{where}.kind: {raw.get('kind')!r} is not a stage kind "
                f"(kinds: {', '.join(sorted(KINDS))})"
            )
        check_references(raw, earlier, where)
        overrides = raw.get("overrides") or {}
        if not isinstance(overrides, dict):
            raise ValueError(f"{where}.overrides: expected dotted TrainConfig keys -> values")
        check_overrides(self._base, overrides, f"{where}.overrides")
        rest = {k: v for k, v in raw.items() if k not in ("name", "kind", "overrides")}
        try:
            options = kind.options.model_validate(rest)
        except ValidationError as err:
            first = err.errors()[0]
            key = ".".join(str(p) for p in first["loc"])
            message = first["msg"].removeprefix("Value error, ")
            if first["type"] == "extra_forbidden" and len(first["loc"]) == 1:
                valid = ", ".join(sorted({"name", "kind", "overrides", *kind.options.model_fields}))
                message = f"unknown key (valid keys of a {raw['kind']} stage: {valid})"
            elif first["type"] == "extra_forbidden":
                inner = _inner_model(kind.options, first["loc"][:-1])
                valid = ", ".join(sorted(inner.model_fields)) if inner else ""
                message = f"unknown key (valid keys here: {valid})" if valid else "unknown key"
            raise ValueError(f"{where}.{key}: {message}") from None
        stage = Stage(
            index=index, name=name, kind=raw["kind"], overrides=overrides, raw=raw, options=options
        )
        kind.check(self, stage)
        return stage

    @property
    def stage_list(self) -> list[Stage]:
        return list(self._stages)

    def base_tree(self) -> dict[str, Any]:
        return copy.deepcopy(self._base)

    @property
    def tune_metric(self) -> str:
        """The metric trials are judged by epoch to epoch: a test/ metric's val/ twin."""
        return "val/" + self.metric[5:] if self.metric.startswith("test/") else self.metric

    def label(self) -> str:
        return str(self.source) if self.source else f"study '{self.name}'"


def _inner_model(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The nested options model at `loc` (e.g. a stage's `repeats.decide`), if there is one."""
    for name in loc:
        field = model.model_fields.get(str(name))
        if field is None:
            return None
        found = [a for a in (field.annotation, *get_args(field.annotation)) if _is_model(a)]
        if not found:
            return None
        model = found[0]
    return model


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def resolve_base(base: str | dict[str, Any], source: Path | None) -> dict[str, Any]:
    """The base TrainConfig as a nested dict: inline, a file beside the study, or shipped."""
    if isinstance(base, dict):
        tree, where = base, "base"
    else:
        folder = source.parent if source else Path.cwd()
        path = folder / base if (folder / base).is_file() else shipped_configs().get(base)
        if path is None:
            names = ", ".join(sorted(shipped_configs()))
            raise ValueError(
                f"base: '{base}' is neither a file next to the study nor a shipped config "
                f"(shipped: {names})"
            )
        tree, where = yaml.safe_load(path.read_text()) or {}, f"base ({path})"
        if not isinstance(tree, dict):
            raise ValueError(f"{where}: not a mapping of TrainConfig sections")
    problem = config_problem(tree)
    if problem:
        raise ValueError(f"{where}: {problem}")
    return copy.deepcopy(tree)


# ---- loading -------------------------------------------------------------------------------


def shipped_studies() -> dict[str, Path]:
    """Every shipped study (`search_spaces/studies/<name>.yaml`), by name."""
    folder = resources.files("hmtl.search_spaces") / "studies"
    return {Path(f.name).stem: Path(str(f)) for f in folder.iterdir() if f.name.endswith(".yaml")}


def validate_study(raw: dict[str, Any], source: Path | None = None) -> Study:
    """A mapping (as read from YAML) -> a validated Study, or StudyError."""
    label = str(source) if source else f"study '{raw.get('name', '?')}'"
    if "source" in raw:
        raise StudyError(f"{label}: unknown key 'source'")
    try:
        return Study.model_validate({**raw, "source": source})
    except ValidationError as err:
        first = err.errors()[0]
        if first["type"] == "study":
            raise StudyError(f"{label}: {first['msg']}") from None
        raise StudyError(describe_error(err, label, root=Study, hidden=("source",))) from None


def load_study(name_or_path: str | Path) -> Study:
    """Read a study file, given as a path or as the name of a shipped study."""
    path = Path(name_or_path)
    if not path.is_file():
        path = shipped_studies().get(str(name_or_path))
    if path is None:
        names = ", ".join(sorted(shipped_studies())) or "none"
        raise StudyError(f"{name_or_path}: no such study file or shipped study (shipped: {names})")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise StudyError(
            f"{path}:{f' line {mark.line + 1}' if mark else ''} not valid YAML"
        ) from None
    if not isinstance(raw, dict):
        raise StudyError(f"{path}: expected a mapping of keys, got {type(raw).__name__}")
    return validate_study(raw, path)
