"""The `active` stage kind: active-learning runs, strategies x starts x seeds, one Tune trial
each, every trial running `run_active` (orchestration/sweep/active_trial.py) rather than `train`.

- `strategies`: the arms, query strategies of trainables/active/ (`baseline`, default
  `random`, is what the report's paired differences are taken against);
- `starts`: name -> dotted ActiveConfig keys of where each run starts from, e.g.
  `{scratch: {reset: random}, simclr: {train.model.pretrained: ${pretrain.best_checkpoint}}}`;
  every strategy runs from every start;
- `loop`: the loop's keys every trial shares (initial_fraction, budget_fraction, cycles,
  reset, epochs, strategies, ...); the training config of every cycle is the study's base with
  the stage's and the start's `train.` overrides;
- `repeats`: seeds `first_seed`, ... set the loop's `seed` (the initial draw, the strategies'
  random choices and each cycle's training), so strategies are paired by seed: with the same
  seed they start from the same labelled rows. Trials go seed by seed, so a study stopped
  early holds complete pairs. `repeats: {min, max, step, decide}` runs the seeds in rounds
  until each strategy's area against the baseline's is decided
  (orchestration/study/sequential.py); `vary: [runtime.seed, data.split_seed]` also draws
  the data split per repeat.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hmtl.orchestration.study.checks import check_overrides
from hmtl.orchestration.study.decide.options import (
    RepeatsOptions,
    as_mapping,
    repeat_keys,
    smoke_repeats,
)
from hmtl.orchestration.study.kinds.base import explicit_space, point_overrides
from hmtl.orchestration.study.refs import has_reference
from hmtl.orchestration.study.report.active import active_report, active_rows, build_lines
from hmtl.orchestration.study.report.build import Design
from hmtl.orchestration.study.report.stats import cell_id
from hmtl.orchestration.sweep.smoke import SMOKE_PINNED
from hmtl.orchestration.sweep.space import TrialPoint, with_values
from hmtl.trainables.active.config import build_active_config
from hmtl.trainables.active.loop import REPORTED
from hmtl.trainables.active.registry import strategies
from hmtl.trainables.config import ConfigError

OWN = ("strategy", "seed", "train")
"""ActiveConfig keys the stage sets itself (arms, repeats, the study's base)."""


class ActiveOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    strategies: list[str] = Field(min_length=1)
    starts: dict[str, dict[str, Any]] = {"scratch": {}}
    loop: dict[str, Any] = {}
    baseline: str = "random"
    repeats: RepeatsOptions = RepeatsOptions(max=3)
    first_seed: int = Field(0, ge=0)
    max_concurrent_trials: int | None = Field(None, ge=1)

    _count = field_validator("repeats", mode="before")(as_mapping)


def split_start(keys: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A start's dotted keys -> (TrainConfig overrides without `train.`, loop keys)."""
    train = {k.removeprefix("train."): v for k, v in keys.items() if k.startswith("train.")}
    loop = {k: v for k, v in keys.items() if not k.startswith("train.")}
    return train, loop


def loop_keys(options: ActiveOptions, start: str, strategy: str, seed: int) -> dict[str, Any]:
    """The ActiveConfig keys (all but `train`) of one trial."""
    _, loop = split_start(options.starts[start])
    return {**with_values(with_values({}, options.loop), loop), "strategy": strategy, "seed": seed}


class ActiveStage:
    options = ActiveOptions

    def check(self, study, stage) -> None:

        o: ActiveOptions = stage.options
        where = f"stages[{stage.index}] ({stage.name})"
        if study.resources.workers_per_trial != 1:
            raise ValueError(
                f"{where}: an active-learning run trains on one worker; set "
                "resources.workers_per_trial: 1"
            )
        split, name = study.metric.split("/", 1)
        if split not in ("val", "test") or name not in REPORTED:
            choices = ", ".join(f"test/{m}" for m in REPORTED)
            raise ValueError(
                f"{where}: the study's metric {study.metric} is not reported per cycle "
                f"(choose one of {choices}, or its val/ twin)"
            )
        known = strategies()
        for strategy in o.strategies:
            if strategy not in known:
                raise ValueError(
                    f"{where}.strategies: unknown strategy '{strategy}' "
                    f"(known: {', '.join(sorted(known))})"
                )
        if len(set(o.strategies)) != len(o.strategies):
            raise ValueError(f"{where}.strategies: a strategy is listed twice")
        if o.baseline not in o.strategies:
            raise ValueError(f"{where}.baseline: '{o.baseline}' is not among the strategies")
        if not o.starts:
            raise ValueError(f"{where}.starts: give at least one start")
        for key in (*o.loop, *(k for keys in o.starts.values() for k in keys)):
            if key.split(".")[0] in OWN and not (key.startswith("train.") and key not in o.loop):
                raise ValueError(
                    f"{where}: '{key}' is set by the stage (strategies, repeats, the study's "
                    "base; a start may set train.<key>)"
                )
        base = with_values(study.base_tree(), _known(stage.overrides))
        for start, keys in o.starts.items():
            train, _ = split_start(keys)
            check_overrides(base, train, f"{where}.starts.{start}")
            tree = {
                **loop_keys(o, start, o.strategies[0], o.first_seed),
                "train": with_values(base, _known(train)),
            }
            try:
                build_active_config(tree, source=where)
            except ConfigError as err:
                raise ValueError(f"{where}.starts.{start}: {err}") from None

    def space(
        self,
        study,
        stage,
        options: ActiveOptions,
        overrides: dict,
        repeats: range | None = None,
        cells: set[str] | None = None,
        name: str | None = None,
    ):
        """Every run of the stage, or one round of them (grid.py's `space` says how)."""
        base = with_values(study.base_tree(), overrides)
        subset = int(base.get("data", {}).get("split_seed", 0))
        points = []
        for r in repeats if repeats is not None else range(options.repeats.max):
            keys = repeat_keys(options.repeats, options.first_seed, subset, r)
            seed = keys.pop("runtime.seed")  # the loop's seed; a subset is a train key
            for start, start_keys in options.starts.items():
                train, _ = split_start(start_keys)
                for strategy in options.strategies:
                    cell = cell_id(strategy, {"start": start})
                    if cells is not None and cell not in cells:
                        continue
                    tags = {
                        "hmtl.arm": strategy,
                        "hmtl.start": start,
                        "hmtl.cell": cell,
                        "hmtl.seed": str(seed),
                    }
                    loop = loop_keys(options, start, strategy, seed)
                    points.append(TrialPoint(overrides={**train, **keys}, tags=tags, loop=loop))
        return explicit_space(
            study, stage, base, points, options.max_concurrent_trials, name=name, runs="active"
        )

    def cells(self, study, stage) -> tuple[list[str], dict[str, str]]:
        """Every (strategy, start) cell id, and each strategy's baseline cell."""
        o: ActiveOptions = stage.options
        every, against = [], {}
        for start in o.starts:
            for strategy in o.strategies:
                every.append(cell_id(strategy, {"start": start}))
                if strategy != o.baseline:
                    against[every[-1]] = cell_id(o.baseline, {"start": start})
        return every, against

    def cell_values(self, study, stage, sweep, runs=None) -> dict[str, dict[int, float]]:
        """Cell -> seed -> the run's area under its curve, over every round so far."""
        lines = build_lines(active_rows(sweep, study.metric, runs), stage.options.baseline)
        return {cell_id(ln.strategy, {"start": ln.start}): dict(ln.auc_by_seed) for ln in lines}

    def outputs(self, study, space, result, sweep) -> dict[str, Any]:
        return {"best_config": point_overrides(space, result.best_params)}

    def design(self, study, stage) -> None:
        return None

    def report(self, study, stage, sweep, out, runs, **record) -> tuple | None:
        """The stage's report; `record`: the study's multiplicity and, for seeds in rounds,
        the `effect` and `sequential` record (orchestration/study/reporting.py)."""
        o: ActiveOptions = stage.options
        design = Design(study.metric, study.mode, o.baseline, ["start"], o.strategies, **record)
        return active_report(study, stage, sweep, out, runs, design)

    def smoke(self, raw: dict[str, Any]) -> dict[str, Any]:
        """At most 2 seeds and 2 cycles; every strategy and start is kept."""

        loop = dict(raw.get("loop") or {})
        loop["cycles"] = min(loop.get("cycles", 7), 2)
        starts = {
            name: {
                k: v
                for k, v in keys.items()
                if not k.startswith(tuple("train." + p for p in SMOKE_PINNED))
            }
            for name, keys in (raw.get("starts") or {}).items()
        }
        out = {**raw, "loop": loop, "repeats": smoke_repeats(raw.get("repeats", 3))}
        return {**out, "starts": starts} if "starts" in raw else out


def _known(overrides: dict) -> dict:
    return {k: v for k, v in overrides.items() if not has_reference(v)}
