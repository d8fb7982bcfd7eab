"""Search spaces: a sweep described as data (`search_spaces/<study>.yaml`), validated once.

A space file names the sweep and its metric(s), the Optuna sampler, the ASHA scheduler, the
resources of one trial, a `base` TrainConfig and `space`: flat dotted TrainConfig keys mapped
to distribution strings such as `loguniform(1e-4, 3e-3)`. Loading checks everything that can
be checked before a cluster starts; a problem is one line naming the file, the key and what is
wrong (`SpaceError`). Distribution strings are read by `hmtl.orchestration.sweep.distributions`; the
`--smoke` version of a space is made by `hmtl.orchestration.sweep.smoke`.

Rules worth knowing:
- The extremes of every distribution (low, high, every choice; plus one interior value, which
  catches `uniform` on an integer key) must each give a valid TrainConfig on top of `base`,
  alone and together with the extremes of every other key.
- `scheduler.max_epochs` is the length of the longest trial: `schedule.epochs` of `base`, or the
  top of a searched `schedule.epochs`. Left out, it is filled in. A smaller cap would make ASHA
  stop every trial before its schedule ends (the last epoch, which reports test metrics, never
  runs); a larger one only names rungs no trial reaches. `grace_period < max_epochs`.
- Points to evaluate must lie inside the distributions: Optuna would enqueue an outside value
  with a warning, and TPE's log transform of a 0 weight breaks the model it fits.
- With several metrics, ASHA (one metric by nature) judges trials by the first one.
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import optuna
import yaml
from optuna.distributions import BaseDistribution
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from hmtl.orchestration.sweep.distributions import FORMS, contains, parse_distribution, probes
from hmtl.search_spaces import find, shipped
from hmtl.trainables.config import TrainConfig, describe_error, nested_model

MULTI_OBJECTIVE = ("tpe", "random", "nsga2")


class SpaceError(ValueError):
    """A search-space problem, phrased as one line fit to show a user."""


# ---- TrainConfig keys ----------------------------------------------------------------------


def check_key(key: str) -> None:
    """Raise ValueError unless `key` (dotted) names a value field of TrainConfig."""
    model: type[BaseModel] = TrainConfig
    parts = key.split(".")
    for depth, part in enumerate(parts):
        fields = model.model_fields
        where = ".".join(parts[:depth])
        if part not in fields:
            valid = ", ".join(sorted(fields))
            raise ValueError(
                f"unknown TrainConfig key (valid keys of {where or 'a config'}: {valid})"
            )
        nested = nested_model(fields[part].annotation)
        if depth == len(parts) - 1 and nested is not None:
            keys = ", ".join(f"{key}.{name}" for name in sorted(nested.model_fields))
            raise ValueError(f"'{key}' is a section; search one of its keys: {keys}")
        if depth < len(parts) - 1:
            if nested is None:
                raise ValueError(
                    f"'{where + '.' if where else ''}{part}' is a value, not a section"
                )
            model = nested


def with_values(tree: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of `tree` with dotted keys set; a `null` section on the way becomes a mapping
    (so `tasks.main.head_pose.weight` turns the head-pose task on)."""
    out = copy.deepcopy(tree)
    for key, value in values.items():
        node = out
        *sections, leaf = key.split(".")
        for part in sections:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[leaf] = value
    return out


def config_problem(tree: dict[str, Any]) -> str | None:
    """Why `tree` is not a valid TrainConfig (pydantic's first error, one line), or None."""
    try:
        TrainConfig.model_validate(tree)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "<root>"
        return f"{key}: {first['msg'].removeprefix('Value error, ')}"
    return None


def shipped_configs() -> dict[str, Path]:
    """Training configs that ship with the package (`demo` -> trainables/configs/demo.yaml)."""
    folder = resources.files("hmtl.trainables") / "configs"
    return {Path(f.name).stem: Path(str(f)) for f in folder.iterdir() if f.name.endswith(".yaml")}


# ---- the schema ----------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SchedulerConfig(_Strict):
    """ASHA early stopping, with `epoch` as the time attribute."""

    type: Literal["asha"] = "asha"
    max_epochs: int | None = Field(None, ge=1)
    """The longest trial's `schedule.epochs`; filled in when left out."""
    grace_period: int = Field(1, ge=1)
    reduction_factor: int = Field(2, ge=2)


class SearchConfig(_Strict):
    sampler: Literal["tpe", "random", "cmaes", "gp", "nsga2"] = "tpe"
    seed: int | None = Field(0, ge=0)
    points_to_evaluate: list[dict[str, Any]] = []
    """Known configurations tried first: {dotted key: value}, keys among the searched ones."""


class ResourcesConfig(_Strict):
    workers_per_trial: int = Field(1, ge=1)
    cpus_per_worker: float = Field(1.0, gt=0.0)
    gpus_per_worker: float = Field(0.0, ge=0.0)
    """Fractions below 1 share a GPU; above 1 it must be a whole number (Ray's rule)."""


class TrialPoint(_Strict):
    """One trial of an explicit list (a study's grid cell x seed): dotted TrainConfig values
    set on top of `base`, and labels that become the trial's MLflow tags."""

    overrides: dict[str, Any] = {}
    tags: dict[str, str] = {}
    loop: dict[str, Any] = {}
    """The keys of the program this trial runs besides its TrainConfig (an active-learning
    run's ActiveConfig keys: strategy, seed, cycles, ...); empty for a training run."""


TRIAL_KEY = "trial"
"""The one Tune parameter of a space with explicit `trials`: the index of a trial's point."""


def _custom(message: str) -> PydanticCustomError:
    return PydanticCustomError("search_space", "{message}", {"message": message})


class SearchSpace(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    """Sweep name, also the MLflow experiment name."""
    description: str | None = None
    metric: str | list[str] = "val/balanced_accuracy"
    mode: str | list[str] = "max"
    num_samples: int = Field(ge=1)
    max_concurrent_trials: int | None = Field(None, ge=1)
    scheduler: SchedulerConfig | None = Field(default_factory=SchedulerConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    register_model: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")
    """Register the sweep's best model in MLflow's model registry under this name."""
    base: str | dict[str, Any]
    """A TrainConfig mapping, a YAML path relative to the space file, or a shipped config name."""
    space: dict[str, Any]
    trials: list[TrialPoint] = []
    """Explicit trials instead of a searched `space` (study grids): one Tune trial each, in
    order, with no searcher; `num_samples` is their number."""
    runs: Literal["train", "active"] = "train"
    """What each trial runs (orchestration/sweep/trial.py's RUNNERS): one training run, or an
    active-learning loop whose cycles train `base` (a study's `active` stage)."""
    source: Path | None = Field(None, exclude=True)
    """The file this space was read from (not a user key)."""

    _base: dict[str, Any] = PrivateAttr(default_factory=dict)
    _dists: dict[str, BaseDistribution] = PrivateAttr(default_factory=dict)

    @field_validator("metric", "mode", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(item, str) for item in items):
            raise _custom(f"expected a name or a list of names (got {value!r})")
        return value

    @field_validator("base", mode="before")
    @classmethod
    def _base_kind(cls, value: Any) -> Any:
        if not isinstance(value, str | dict):
            raise _custom(
                f"expected a TrainConfig mapping, a YAML path or a config name ({value!r})"
            )
        return value

    @field_validator("scheduler", mode="before")
    @classmethod
    def _none_type(cls, value: Any) -> Any:
        if isinstance(value, dict) and value.get("type") == "none":
            if len(value) > 1:
                raise _custom("'type: none' turns early stopping off and takes no other keys")
            return None
        return value

    @model_validator(mode="after")
    def _check(self) -> SearchSpace:
        try:
            self._check_objectives()
            self._resolve_base()
            self._check_space()
            self._check_trials()
            self._check_scheduler()
            self._check_points()
            self._check_resources()
        except ValueError as err:
            raise _custom(str(err)) from None
        return self

    @property
    def metrics(self) -> list[str]:
        return self.metric if isinstance(self.metric, list) else [self.metric]

    @property
    def modes(self) -> list[str]:
        return self.mode if isinstance(self.mode, list) else [self.mode]

    def base_tree(self) -> dict[str, Any]:
        """The resolved base as a nested dict (a copy)."""
        return copy.deepcopy(self._base)

    def distributions(self) -> dict[str, BaseDistribution]:
        """Optuna distributions keyed by dotted TrainConfig key."""
        return dict(self._dists)

    def trial_config(self, params: dict[str, Any]) -> TrainConfig:
        """Base plus a trial's sampled values (dotted keys) -> a validated TrainConfig. With
        explicit `trials`, `params` is `{"trial": index}` and names the trial's point."""
        if self.trials and TRIAL_KEY in params:
            params = self.trials[int(params[TRIAL_KEY])].overrides
            return TrainConfig.model_validate(with_values(self._base, params))
        unknown = sorted(set(params) - set(self.space))
        if unknown:
            raise SpaceError(f"{self._label()}: not searched keys {', '.join(unknown)}")
        tree = with_values(self._base, params)
        problem = config_problem(tree)
        if problem:
            raise SpaceError(
                f"{self._label()}: trial values {params} give no valid config: {problem}"
            )
        return TrainConfig.model_validate(tree)

    def trial_loop(self, params: dict[str, Any]) -> dict[str, Any]:
        """A trial's program keys besides its TrainConfig (its explicit point's `loop`)."""
        if self.trials and TRIAL_KEY in params:
            return copy.deepcopy(self.trials[int(params[TRIAL_KEY])].loop)
        return {}

    def sampler(self) -> optuna.samplers.BaseSampler:
        """The seeded Optuna sampler named by `search.sampler`. Startup (random) trials scale
        with the budget, so an 8-trial TPE sweep is not random search throughout."""
        seed, startup = self.search.seed, max(2, min(10, self.num_samples // 4))
        samplers = optuna.samplers
        match self.search.sampler:
            case "tpe":
                return samplers.TPESampler(seed=seed, n_startup_trials=startup)
            case "random":
                return samplers.RandomSampler(seed=seed)
            case "cmaes":
                return samplers.CmaEsSampler(seed=seed, n_startup_trials=startup)
            case "gp":
                return samplers.GPSampler(seed=seed, n_startup_trials=startup)
            case _:
                population = max(4, min(50, self.num_samples // 4))
                return samplers.NSGAIISampler(seed=seed, population_size=population)

    # -- checks, in the order a reader would want them reported --

    def _label(self) -> str:
        return str(self.source) if self.source else f"search space '{self.name}'"

    def _check_objectives(self) -> None:
        metrics, modes = self.metrics, self.modes
        shapes_differ = isinstance(self.metric, list) != isinstance(self.mode, list)
        if shapes_differ or len(metrics) != len(modes):
            raise ValueError(
                f"mode: {self.mode!r} does not match metric {self.metric!r} "
                "(one mode per metric; a list of metrics takes a list of modes)"
            )
        for metric in metrics:
            if metric.startswith("test/"):
                raise ValueError(
                    f"metric: '{metric}' is reported only after the last epoch, so neither ASHA "
                    "nor the searcher can use it; use a val/ metric"
                )
            if not re.fullmatch(r"(train|val)/[\w./-]+", metric):
                raise ValueError(
                    f"metric: '{metric}' is not a reported metric key (train/... or val/..., "
                    "e.g. val/balanced_accuracy)"
                )
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"metric: {metrics} names a metric twice")
        bad = [mode for mode in modes if mode not in ("min", "max")]
        if bad:
            raise ValueError(f"mode: {bad[0]!r} is not min or max")
        sampler = self.search.sampler
        if len(metrics) > 1 and sampler not in MULTI_OBJECTIVE:
            raise ValueError(
                f"search.sampler: {sampler} optimises one metric, and {len(metrics)} are given "
                f"(for several use {', '.join(MULTI_OBJECTIVE)})"
            )
        if len(metrics) == 1 and sampler == "nsga2":
            raise ValueError("search.sampler: nsga2 needs two metrics or more (a list)")
        if sampler == "cmaes" and importlib.util.find_spec("cmaes") is None:
            raise ValueError("search.sampler: cmaes needs the cmaes package (pip install cmaes)")

    def _resolve_base(self) -> None:
        if isinstance(self.base, dict):
            tree, where = self.base, "base"
        else:
            folder = self.source.parent if self.source else Path.cwd()
            path = folder / self.base
            if not path.is_file():
                path = shipped_configs().get(self.base)
            if path is None:
                names = ", ".join(sorted(shipped_configs()))
                raise ValueError(
                    f"base: '{self.base}' is neither a file next to the space nor a shipped "
                    f"config (shipped: {names})"
                )
            try:
                tree = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError:
                raise ValueError(f"base: {path} is not valid YAML") from None
            if not isinstance(tree, dict):
                raise ValueError(f"base: {path} is not a mapping of TrainConfig sections")
            where = f"base ({path})"
        problem = config_problem(tree)
        if problem:
            raise ValueError(f"{where}: {problem}")
        self._base = copy.deepcopy(tree)

    def _check_space(self) -> None:
        dists: dict[str, BaseDistribution] = {}
        for key, text in self.space.items():
            if not isinstance(text, str):
                raise ValueError(
                    f"space.{key}: {text!r} is a fixed value, not a distribution; put fixed "
                    f"values in base (or write one of {FORMS})"
                )
            try:
                check_key(key)
                dists[key] = parse_distribution(text)
            except ValueError as err:
                raise ValueError(f"space.{key}: {err}") from None
            for value in probes(dists[key]):
                problem = config_problem(with_values(self._base, {key: value}))
                if problem:
                    raise ValueError(
                        f"space.{key}: {text} can give {value!r}, which makes an invalid "
                        f"config: {problem}"
                    )
        # Pairs of extremes catch interactions such as warmup_epochs against epochs.
        for (k1, d1), (k2, d2) in itertools.combinations(dists.items(), 2):
            for v1, v2 in itertools.product(probes(d1), probes(d2)):
                problem = config_problem(with_values(self._base, {k1: v1, k2: v2}))
                if problem:
                    raise ValueError(
                        f"space: {k1}={v1!r} together with {k2}={v2!r} makes an invalid "
                        f"config: {problem}"
                    )
        self._dists = dists

    def _check_trials(self) -> None:
        if not self.trials:
            return
        if self.space:
            raise ValueError("space: a space with explicit trials searches nothing; leave it {}")
        if self.num_samples != len(self.trials):
            raise ValueError(
                f"num_samples: {self.num_samples}, but {len(self.trials)} trials are listed"
            )
        if self.scheduler is not None or self.search.points_to_evaluate:
            raise ValueError("explicit trials run to the end: write scheduler: null, no points")
        for i, point in enumerate(self.trials):
            for key in point.overrides:
                try:
                    check_key(key)
                except ValueError as err:
                    raise ValueError(f"trials[{i}].{key}: {err}") from None
            problem = config_problem(with_values(self._base, point.overrides))
            if problem:
                raise ValueError(f"trials[{i}]: makes an invalid config: {problem}")

    def _longest_trial(self) -> int:
        """The largest `schedule.epochs` a trial can have."""
        dist = self._dists.get("schedule.epochs")
        if dist is None:
            return TrainConfig.model_validate(self._base).schedule.epochs
        return int(max(probes(dist)))

    def _check_scheduler(self) -> None:
        if self.scheduler is None:
            return
        longest = self._longest_trial()
        where = "the top of space schedule.epochs" if "schedule.epochs" in self.space else "base"
        asha = self.scheduler
        if asha.max_epochs is None:
            asha.max_epochs = longest
        elif asha.max_epochs != longest:
            raise ValueError(
                f"scheduler.max_epochs: {asha.max_epochs}, but the longest trial runs {longest} "
                f"epochs (schedule.epochs in {where}); ASHA stops every trial at max_epochs, so "
                f"set it to {longest} or leave it out"
            )
        if asha.grace_period >= asha.max_epochs:
            raise ValueError(
                f"scheduler.grace_period: {asha.grace_period} is not below max_epochs "
                f"({asha.max_epochs}), so ASHA could never stop a trial early "
                "(write scheduler: null to turn early stopping off)"
            )

    def _check_points(self) -> None:
        for i, point in enumerate(self.search.points_to_evaluate):
            where = f"search.points_to_evaluate[{i}]"
            for key, value in point.items():
                if key not in self._dists:
                    searched = ", ".join(self.space) or "none"
                    raise ValueError(f"{where}: '{key}' is not searched (space keys: {searched})")
                if not contains(self._dists[key], value):
                    raise ValueError(
                        f"{where}: {key}={value!r} lies outside {self.space[key]} "
                        "(Optuna can only enqueue values inside the distribution)"
                    )
            problem = config_problem(with_values(self._base, point))
            if problem:
                raise ValueError(f"{where}: makes an invalid config: {problem}")

    def _check_resources(self) -> None:
        if self.runs != "train" and self.resources.workers_per_trial != 1:
            raise ValueError(
                f"resources.workers_per_trial: an {self.runs} trial runs on one worker (set 1)"
            )
        gpus = self.resources.gpus_per_worker
        if gpus > 1 and gpus != int(gpus):
            raise ValueError(
                f"resources.gpus_per_worker: {gpus}: above 1 it must be a whole number"
            )
        device = TrainConfig.model_validate(self._base).runtime.device
        if device == "cuda" and gpus == 0:
            raise ValueError(
                "resources.gpus_per_worker: 0, but base runtime.device is cuda; give each "
                "worker a GPU or set runtime.device: auto"
            )
        # device cpu with GPUs held is allowed: it is written out (the default is auto), so
        # training on the CPUs of a GPU node is asked for, not a broken node gone unnoticed
        # (trainables/runtime/device.py: held_gpu_refusal).


# ---- loading -------------------------------------------------------------------------------


def _describe(err: ValidationError, label: str) -> str:
    """pydantic's first error as one line naming the file and the key."""
    first = err.errors()[0]
    if first["type"] == "search_space":
        key = ".".join(str(part) for part in first["loc"])
        return f"{label}: {key + ': ' if key else ''}{first['msg']}"
    return describe_error(err, label, root=SearchSpace, hidden=("source",))


def validate_space(raw: dict[str, Any], source: Path | None = None) -> SearchSpace:
    """A mapping (as read from YAML) -> a validated SearchSpace, or SpaceError."""
    label = str(source) if source else f"search space '{raw.get('name', '?')}'"
    if "source" in raw:
        valid = ", ".join(sorted(k for k in SearchSpace.model_fields if k != "source"))
        raise SpaceError(f"{label}: unknown key 'source' (valid keys here: {valid})")
    try:
        return SearchSpace.model_validate({**raw, "source": source})
    except ValidationError as err:
        raise SpaceError(_describe(err, label)) from None


def load_space(name_or_path: str | Path) -> SearchSpace:
    """Read a search-space file, given as a path or as the name of a shipped one."""
    path = find(str(name_or_path))
    if path is None:
        names = ", ".join(sorted(shipped())) or "none"
        raise SpaceError(
            f"{name_or_path}: no such search-space file or shipped space (shipped: {names})"
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise SpaceError(f"{path}:{where} not valid YAML") from None
    if not isinstance(raw, dict):
        raise SpaceError(f"{path}: expected a mapping of keys, got {type(raw).__name__}")
    return validate_space(raw, path)
