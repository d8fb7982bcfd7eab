"""Search spaces: a sweep described as data (`search_spaces/<study>.yaml`), validated once.

A space file names the sweep and its metric(s), the Optuna sampler, the ASHA scheduler, the
resources of one trial, a `base` TrainConfig and `space`: flat dotted TrainConfig keys mapped
to distribution strings such as `loguniform(1e-4, 3e-3)`. Loading checks everything that can
be checked before a cluster starts; a problem is one line naming the file, the key and what is
wrong (`SpaceError`).

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
import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import optuna
import yaml
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
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

from search_spaces import find, shipped
from trainables.config import TrainConfig

FORMS = "uniform(a, b), loguniform(a, b), int(a, b), int(a, b, log), quniform(a, b, q), choice(...)"
SAMPLERS = ("tpe", "random", "cmaes", "gp", "nsga2")
MULTI_OBJECTIVE = ("tpe", "random", "nsga2")


class SpaceError(ValueError):
    """A search-space problem, phrased as one line fit to show a user."""


# ---- distribution strings ------------------------------------------------------------------

_CALL = re.compile(r"([A-Za-z_]\w*)\s*\((.*)\)", re.S)
_INT = re.compile(r"[-+]?\d+")
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def parse_distribution(text: str) -> BaseDistribution:
    """`loguniform(1e-4, 3e-3)` -> FloatDistribution(log=True); a ValueError says what is wrong."""
    match = _CALL.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a distribution (write one of {FORMS})")
    kind, inner = match.groups()
    args = _split(inner)
    if kind == "choice":
        values = [_scalar(arg) for arg in args]
        if len(values) < 2:
            raise ValueError(f"{text}: a choice needs two values or more (fixed values go in base)")
        for i, value in enumerate(values):
            if value in values[:i]:  # Optuna finds a choice by ==, so 1 and 1.0 would collide
                raise ValueError(f"{text}: {value!r} appears twice")
        return CategoricalDistribution(values)
    if kind not in ("uniform", "loguniform", "quniform", "int"):
        raise ValueError(f"{text}: unknown distribution '{kind}' (write one of {FORMS})")

    log = kind == "loguniform" or (kind == "int" and len(args) == 3 and args[2].strip() == "log")
    want = {"uniform": "low, high", "loguniform": "low, high", "quniform": "low, high, q"}
    count = 3 if kind == "quniform" else 2 + (kind == "int" and log)
    if len(args) != count:
        raise ValueError(f"{text}: expected {kind}({want.get(kind, 'low, high[, log]')})")
    numbers = [_number(arg, text, integer=kind == "int") for arg in args[:2]]
    low, high = numbers
    if not low < high:
        raise ValueError(f"{text}: low ({low}) must be smaller than high ({high})")
    if log and low <= 0:
        raise ValueError(f"{text}: a log scale needs low > 0 (got {low})")
    if kind == "int":
        if log and low < 1:
            raise ValueError(f"{text}: a log-int range needs low >= 1")
        return IntDistribution(low, high, log=log)
    if kind == "quniform":
        q = _number(args[2], text, integer=False)
        steps = (high - low) / q if q > 0 else 0.0
        if q <= 0 or abs(steps - round(steps)) > 1e-9 * max(1.0, steps):
            raise ValueError(f"{text}: q must be > 0 and divide high - low")
        return FloatDistribution(float(low), float(high), step=float(q))
    return FloatDistribution(float(low), float(high), log=log)


def format_distribution(dist: BaseDistribution) -> str:
    """The string `parse_distribution` reads back into `dist`."""
    if isinstance(dist, CategoricalDistribution):
        return f"choice({', '.join(_format_scalar(v) for v in dist.choices)})"
    if isinstance(dist, IntDistribution):
        return f"int({dist.low}, {dist.high}{', log' if dist.log else ''})"
    assert isinstance(dist, FloatDistribution)
    if dist.step is not None:
        return f"quniform({dist.low!r}, {dist.high!r}, {dist.step!r})"
    return f"{'log' if dist.log else ''}uniform({dist.low!r}, {dist.high!r})"


def _split(inner: str) -> list[str]:
    """Split arguments on commas outside quotes."""
    if not inner.strip():
        return []
    parts, current, quote = [], "", ""
    for char in inner:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == ",":
            parts.append(current)
            current = ""
            continue
        current += char
    return [*parts, current]


def _scalar(token: str) -> Any:
    """A choice value, read like a YAML 1.2 scalar: null, true/false, numbers, else a string."""
    token = token.strip()
    if not token:
        raise ValueError("an empty value in choice(...)")
    if token[0] in "'\"":
        try:
            value = yaml.safe_load(token)
        except yaml.YAMLError:
            value = None
        if not isinstance(value, str):
            raise ValueError(f"{token}: unbalanced quotes")
        return value
    lowered = token.lower()
    if lowered in ("null", "~"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    if _INT.fullmatch(token):
        return int(token)
    if _FLOAT.fullmatch(token):
        return float(token)
    return token


def _format_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        plain = value == value.strip() and not set(value) & set(",()'\"")
        return value if plain and _scalar(value) == value else json.dumps(value)
    return repr(value)


def _number(token: str, text: str, integer: bool) -> int | float:
    token = token.strip()
    if _INT.fullmatch(token):
        return int(token)
    if not integer and _FLOAT.fullmatch(token):
        return float(token)
    raise ValueError(f"{text}: {token!r} is not {'an integer' if integer else 'a number'}")


def _contains(dist: BaseDistribution, value: Any) -> bool:
    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(dist, IntDistribution) and not isinstance(value, int):
        return False
    if not dist.low <= value <= dist.high:
        return False
    step = getattr(dist, "step", None)
    return step is None or abs((value - dist.low) / step - round((value - dist.low) / step)) < 1e-9


def _probes(dist: BaseDistribution) -> list[Any]:
    """Values a trial may get that are most likely to break a config: the ends, every choice,
    and one off-grid interior value (a float range on an integer key fails there)."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    low, high = dist.low, dist.high
    if isinstance(dist, IntDistribution):
        return [low, high]
    if dist.step is not None:
        return [low, high]
    inside = math.exp(math.log(low) * 0.618 + math.log(high) * 0.382) if dist.log else None
    return [low, high, inside if inside is not None else low + 0.382 * (high - low)]


# ---- TrainConfig keys ----------------------------------------------------------------------


def _nested(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


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
        nested = _nested(fields[part].annotation)
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
    folder = resources.files("trainables") / "configs"
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
    base: str | dict[str, Any]
    """A TrainConfig mapping, a YAML path relative to the space file, or a shipped config name."""
    space: dict[str, Any]
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
        """Base plus a trial's sampled values (dotted keys) -> a validated TrainConfig."""
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
            for value in _probes(dists[key]):
                problem = config_problem(with_values(self._base, {key: value}))
                if problem:
                    raise ValueError(
                        f"space.{key}: {text} can give {value!r}, which makes an invalid "
                        f"config: {problem}"
                    )
        # Pairs of extremes catch interactions such as warmup_epochs against epochs.
        for (k1, d1), (k2, d2) in itertools.combinations(dists.items(), 2):
            for v1, v2 in itertools.product(_probes(d1), _probes(d2)):
                problem = config_problem(with_values(self._base, {k1: v1, k2: v2}))
                if problem:
                    raise ValueError(
                        f"space: {k1}={v1!r} together with {k2}={v2!r} makes an invalid "
                        f"config: {problem}"
                    )
        self._dists = dists

    def _longest_trial(self) -> int:
        """The largest `schedule.epochs` a trial can have."""
        dist = self._dists.get("schedule.epochs")
        if dist is None:
            return TrainConfig.model_validate(self._base).schedule.epochs
        return int(max(_probes(dist)))

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
                if not _contains(self._dists[key], value):
                    raise ValueError(
                        f"{where}: {key}={value!r} lies outside {self.space[key]} "
                        "(Optuna can only enqueue values inside the distribution)"
                    )
            problem = config_problem(with_values(self._base, point))
            if problem:
                raise ValueError(f"{where}: makes an invalid config: {problem}")

    def _check_resources(self) -> None:
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
        if device == "cpu" and gpus > 0:
            raise ValueError(
                f"resources.gpus_per_worker: {gpus}, but base runtime.device is cpu, so the "
                "GPUs would sit reserved and idle"
            )


# ---- loading -------------------------------------------------------------------------------


def _describe(err: ValidationError, label: str) -> str:
    """pydantic's first error as one line naming the file and the key (as describe_error)."""
    first = err.errors()[0]
    loc = [str(part) for part in first["loc"]]
    key = ".".join(loc)
    if first["type"] == "extra_forbidden":
        model: type[BaseModel] | None = SearchSpace
        for part in loc[:-1]:
            field = model.model_fields.get(part) if model else None
            model = _nested(field.annotation) if field else None
        valid = ", ".join(sorted(k for k in model.model_fields if k != "source")) if model else "?"
        return f"{label}: unknown key '{key}' (valid keys here: {valid})"
    if first["type"] == "search_space":
        return f"{label}: {key + ': ' if key else ''}{first['msg']}"
    return f"{label}: {key or '<root>'}: {first['msg']} (got {first.get('input')!r})"


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


# ---- smoke ---------------------------------------------------------------------------------

# Keys the smoke version sets itself, so searching them would undo the trim.
SMOKE_PINNED = (
    "data.source",
    "data.cache_dir",
    "data.synthetic.",
    "data.image_size",
    "model.backbone",
    "model.width",
    "runtime.device",
    "runtime.precision",
    "runtime.num_threads",
    "schedule.epochs",
)
# Keys whose searched values are capped (the smoke base caps its own value too).
SMOKE_CAPS = {"data.batch_size": 64, "data.eval_batch_size": 256, "schedule.warmup_epochs": 0.5}


def smoke(space: SearchSpace, scratch: Path) -> SearchSpace:
    """A trimmed copy that runs end to end on a 2-core CPU in about a minute: 600 synthetic
    faces at 48 px (channels and classes kept), small_cnn of width 8, 2 epochs, 2 trials of one
    CPU each. Searched keys the trim pins are dropped, capped ones narrowed, and a pre-trained
    start is swapped for a stand-in state dict (written under `scratch`) that really loads."""
    scratch = Path(scratch).absolute()
    full = TrainConfig.model_validate(space.base_tree()).model_dump()
    pinned = {
        "data.source": "synthetic",
        "data.cache_dir": str(scratch / "datasets"),
        "data.synthetic.num_samples": 600,
        "data.image_size": 48,
        "model.backbone": "small_cnn",
        "model.width": 8,
        "runtime.device": "cpu",
        "runtime.precision": "fp32",
        "runtime.num_threads": 1,
        "runtime.checkpoint_every": 1,
        "schedule.epochs": 2,
    }
    for key, cap in SMOKE_CAPS.items():
        section, leaf = key.split(".")
        pinned[key] = min(full[section][leaf], cap)
    standin = str(scratch / "pretrained-standin.pt")
    if full["model"]["pretrained"] is not None:
        pinned["model.pretrained"] = standin

    dists: dict[str, BaseDistribution] = {}
    for key, dist in space.distributions().items():
        if key.startswith(SMOKE_PINNED):
            continue
        if key == "model.pretrained" and isinstance(dist, CategoricalDistribution):
            choices = list(dict.fromkeys(None if c is None else standin for c in dist.choices))
            dist = CategoricalDistribution(choices) if len(choices) > 1 else choices[0]
        elif key in SMOKE_CAPS:
            dist = _cap(dist, SMOKE_CAPS[key])
        if isinstance(dist, BaseDistribution):
            dists[key] = dist
        else:  # narrowed to one value
            pinned[key] = dist

    # Trial 1 is the top corner (each range's high end, each choice's last value: files list
    # choices from off to on), so every searched task and the stand-in weights really run;
    # trial 2 is the file's first point, trimmed, or else a sampled one.
    corner = {k: d.choices[-1] if _choices(d) else d.high for k, d in dists.items()}
    points = [corner] if corner else []
    for point in space.search.points_to_evaluate[:1]:
        if point.get("model.pretrained") is not None:
            point = {**point, "model.pretrained": standin}
        kept = {k: v for k, v in point.items() if k in dists and _contains(dists[k], v)}
        if kept and kept not in points:
            points.append(kept)

    if standin in (pinned.get("model.pretrained"), *_choices(dists.get("model.pretrained"))):
        _write_standin(Path(standin), full["data"]["channels"])

    asha = space.scheduler
    raw = space.model_dump(exclude={"source"})
    raw.update(
        name=f"{space.name}-smoke",
        description=f"Smoke version of {space.name}: synthetic faces, tiny model, CPU.",
        num_samples=2,
        max_concurrent_trials=None,
        scheduler=None
        if asha is None
        else {"max_epochs": 2, "grace_period": 1, "reduction_factor": asha.reduction_factor},
        search={**raw["search"], "points_to_evaluate": points},
        resources={"workers_per_trial": 1, "cpus_per_worker": 1.0, "gpus_per_worker": 0.0},
        base=with_values(full, pinned),
        space={key: format_distribution(dist) for key, dist in dists.items()},
    )
    return validate_space(raw, space.source)


def _cap(dist: BaseDistribution, cap: float) -> BaseDistribution | Any:
    """`dist` with values above `cap` removed; a single remaining value is returned as is."""
    if isinstance(dist, CategoricalDistribution):
        kept = [c for c in dist.choices if c is None or c <= cap]
        return CategoricalDistribution(kept) if len(kept) > 1 else (kept or [cap])[0]
    if dist.low >= cap:
        return type(dist.low)(cap)
    if isinstance(dist, IntDistribution):
        return IntDistribution(dist.low, min(dist.high, int(cap)), log=dist.log)
    step, high = dist.step, min(dist.high, cap)
    if step is not None:
        high = dist.low + step * math.floor((high - dist.low) / step + 1e-9)
        if high <= dist.low:
            return dist.low
    return FloatDistribution(dist.low, high, log=dist.log, step=step)


def _choices(dist: BaseDistribution | None) -> tuple[Any, ...]:
    return tuple(dist.choices) if isinstance(dist, CategoricalDistribution) else ()


def _write_standin(path: Path, channels: int) -> None:
    """A small_cnn state dict in the smoke shape, so loading pre-trained weights really runs."""
    import torch

    from trainables.models import build_backbone

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(build_backbone("small_cnn", channels, width=8).state_dict(), path)
