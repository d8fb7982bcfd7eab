"""The `grid` stage kind: named arms x factor levels x seeds, one Tune trial each.

Arms are sets of dotted TrainConfig overrides; one is the baseline. `factorial: [a, b, c]`
adds the 2^k on/off arms of those auxiliaries (`none`, `a`, `b`, `a+b`, ...; "on" is the
base's weight, so the base must give each one) and `leave_one_out: [a, b, c]` adds `all`,
`all-a`, `all-b`, `all-c`. Factors cross every arm with every listed value of a key. Repeats vary
`runtime.seed` (and, with `repeats: {vary: [runtime.seed, data.split_seed]}`, the labelled
subset), the same for every arm, so repeats are paired across arms. `repeats` with `decide`
runs the seeds in rounds (orchestration/study/sequential.py): `space` then builds one round,
given its repeats and the cells still undecided. Trials go seed by seed, so a study stopped
early holds complete pairs.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hmtl.orchestration.study.checks import check_overrides
from hmtl.orchestration.study.decide.options import (
    SUBSET_KEY,
    RepeatsOptions,
    as_mapping,
    repeat_keys,
)
from hmtl.orchestration.study.kinds.base import explicit_space
from hmtl.orchestration.study.refs import has_reference
from hmtl.orchestration.study.report.build import Design
from hmtl.orchestration.study.report.stats import cell_id
from hmtl.orchestration.study.results import best_cell, grid_rows
from hmtl.orchestration.sweep.space import TrialPoint, with_values
from hmtl.trainables.config import LossWeightsConfig

AUX_KEY = "tasks.loss_weights."


class GridOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    arms: dict[str, dict[str, Any] | str] = {}
    """Arm name -> dotted overrides (or a `${stage.best_config}` reference)."""
    factorial: list[str] = []
    leave_one_out: list[str] = []
    baseline: str | None = None
    factors: dict[str, list[Any]] = {}
    repeats: RepeatsOptions = RepeatsOptions(max=3)
    """A number of seeds, or seeds in rounds (orchestration/study/decide/options.py)."""
    first_seed: int = Field(0, ge=0)
    max_concurrent_trials: int | None = Field(None, ge=1)

    _count = field_validator("repeats", mode="before")(as_mapping)


def aux_arms(options: GridOptions, base: dict) -> tuple[dict[str, dict], dict[str, dict]]:
    """The shorthand arms: name -> overrides, and name -> {aux: on?}."""
    weights = base.get("tasks", {}).get("loss_weights", {})
    arms, on = {}, {}
    if options.factorial:
        names = options.factorial
        for mask in range(2 ** len(names)):
            flags = {a: bool(mask >> i & 1) for i, a in enumerate(names)}
            name = "+".join(a for a in names if flags[a]) or "none"
            arms[name] = {AUX_KEY + a: weights.get(a, 0.0) if flags[a] else 0.0 for a in names}
            on[name] = flags
    if options.leave_one_out:
        names = options.leave_one_out
        for out in [None, *names]:
            flags = {a: a != out for a in names}
            name = "all" if out is None else f"all-{out}"
            arms[name] = {AUX_KEY + a: weights.get(a, 0.0) if flags[a] else 0.0 for a in names}
            on[name] = flags
    return arms, on


class GridStage:
    options = GridOptions

    def check(self, study, stage) -> None:
        o: GridOptions = stage.options
        where = f"stages[{stage.index}] ({stage.name})"
        if o.factorial and o.leave_one_out:
            raise ValueError(f"{where}: factorial and leave_one_out are two designs; pick one")
        base = with_values(study.base_tree(), _known(stage.overrides))
        weights = base.get("tasks", {}).get("loss_weights", {})
        for key in ("factorial", "leave_one_out"):
            for aux in getattr(o, key):
                if aux not in _aux_names():
                    raise ValueError(
                        f"{where}.{key}: '{aux}' is not an auxiliary "
                        f"(auxiliaries: {', '.join(_aux_names())})"
                    )
                if not weights.get(aux):
                    raise ValueError(
                        f"{where}.{key}: {aux} has weight 0 in the base; set "
                        f"tasks.loss_weights.{aux} to the weight it has when on"
                    )
        shorthand, _ = aux_arms(o, base)
        arms = {**o.arms, **shorthand}
        if not arms:
            raise ValueError(f"{where}: no arms (give arms, factorial or leave_one_out)")
        clash = sorted(set(o.arms) & set(shorthand))
        if clash:
            raise ValueError(f"{where}.arms: '{clash[0]}' is also a {_design(o)} arm's name")
        if self.baseline(o) not in arms:
            raise ValueError(
                f"{where}.baseline: no arm named '{self.baseline(o)}' (arms: {', '.join(arms)})"
            )
        varied = [*o.factors, *(k for a in o.arms.values() if isinstance(a, dict) for k in a)]
        if "data.split_seed" in varied:
            raise ValueError(
                f"{where}: data.split_seed stays fixed in a grid (trials are paired on one "
                "split and one labelled subset); repeats vary runtime.seed"
            )
        for key, values in o.factors.items():
            if not values:
                raise ValueError(f"{where}.factors.{key}: give at least one value")

        for arm, overrides in arms.items():
            if isinstance(overrides, str):
                if not has_reference(overrides):
                    raise ValueError(f"{where}.arms.{arm}: expected overrides or a reference")
                continue
            for levels in self.levels(o):
                tree = {**overrides, **levels, "runtime.seed": o.first_seed}
                check_overrides(base, tree, f"{where}.arms.{arm}")

    def baseline(self, o: GridOptions) -> str:
        if o.baseline:
            return o.baseline
        if "baseline" in o.arms or not (o.factorial or o.leave_one_out):
            return "baseline"
        return "none" if o.factorial else "all"

    def levels(self, o: GridOptions) -> list[dict[str, Any]]:
        keys = list(o.factors)
        return [
            dict(zip(keys, combo, strict=True)) for combo in itertools.product(*o.factors.values())
        ]

    def space(
        self,
        study,
        stage,
        options: GridOptions,
        overrides: dict,
        repeats: range | None = None,
        cells: set[str] | None = None,
        name: str | None = None,
    ):
        """Every trial of the stage, or one round: `repeats` (0-based; default all of
        `max`), the `cells` still running (default all), the round's sweep `name`."""
        base = with_values(study.base_tree(), overrides)
        shorthand, _ = aux_arms(options, base)
        arms = {**options.arms, **shorthand}
        subset = int(base.get("data", {}).get("split_seed", 0))
        points = []
        for r in repeats if repeats is not None else range(options.repeats.max):
            keys = repeat_keys(options.repeats, options.first_seed, subset, r)
            for arm, arm_overrides in arms.items():
                for levels in self.levels(options):
                    cell = cell_id(arm, levels)
                    if cells is not None and cell not in cells:
                        continue
                    points.append(
                        TrialPoint(
                            overrides={**arm_overrides, **levels, **keys},
                            tags={
                                "hmtl.arm": arm,
                                "hmtl.cell": cell,
                                "hmtl.seed": str(keys["runtime.seed"]),
                            },
                        )
                    )
        return explicit_space(study, stage, base, points, options.max_concurrent_trials, name=name)

    def cells(self, study, stage) -> tuple[list[str], dict[str, str]]:
        """Every cell id, and each non-baseline cell's baseline cell (its comparison)."""
        o: GridOptions = stage.options
        base = with_values(study.base_tree(), _known(stage.overrides))
        arms = [*o.arms, *aux_arms(o, base)[0]]
        every, against = [], {}
        for levels in self.levels(o):
            for arm in arms:
                every.append(cell_id(arm, levels))
                if arm != self.baseline(o):
                    against[cell_id(arm, levels)] = cell_id(self.baseline(o), levels)
        return every, against

    def cell_values(self, study, stage, sweep, runs=None) -> dict[str, dict[int, float]]:
        """Cell -> seed -> the metric, over the finished trials of every round so far."""
        factors = list(stage.options.factors)
        out: dict[str, dict[int, float]] = {}
        for row in grid_rows(study, sweep, factors, runs):
            if row["value"] is not None and math.isfinite(row["value"]):
                out.setdefault(row["cell"], {})[row["seed"]] = float(row["value"])
        return out

    def outputs(self, study, space, result, sweep) -> dict[str, Any]:

        return best_cell(study, space, sweep)

    def design(self, study, stage) -> Design:
        o: GridOptions = stage.options
        base = with_values(study.base_tree(), _known(stage.overrides))
        shorthand, on = aux_arms(o, base)
        return Design(
            metric=study.metric,
            mode=study.mode,
            baseline=self.baseline(o),
            factors=list(o.factors),
            arms=[*o.arms, *shorthand],
            aux_tasks=list(o.factorial or o.leave_one_out),
            arm_aux=on,
            per_subset=o.repeats.inits_per_subset if SUBSET_KEY in o.repeats.vary else 0,
            first_seed=o.first_seed,
        )


def _known(overrides: dict) -> dict:
    return {k: v for k, v in overrides.items() if not has_reference(v)}


def _aux_names() -> list[str]:

    return list(LossWeightsConfig.model_fields)


def _design(o: GridOptions) -> str:
    return "factorial" if o.factorial else "leave_one_out"
