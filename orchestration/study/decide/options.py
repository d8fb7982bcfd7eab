"""`repeats:` of a grid or active stage as a mapping: seeds in rounds, decided as they come.

    repeats: {min: 3, max: 9, step: 3, decide: {effect: 0.01, alpha: 0.05}}
    repeats: {max: 8, vary: [runtime.seed, data.split_seed], inits_per_subset: 2}

`min`, `min + step`, ... `max` are the looks (orchestration/study/sequential.py runs a round
of seeds before each); without `decide` every seed runs in one round. `vary` names what a
repeat changes: the initialisation (`runtime.seed`, always) and, on request, the labelled
subset (`data.split_seed`), the same for every arm within a repeat so pairing holds;
`inits_per_subset` repeats share one subset (a two-level design: decide/variance.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hmtl.orchestration.study.decide.spending import SPENDING

SEED_KEY = "runtime.seed"
SUBSET_KEY = "data.split_seed"


class DecideOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    effect: float = Field(gt=0)
    """The smallest difference in the study's metric that matters: a comparison whose
    adjusted interval lies inside ±effect is decided *equivalent*."""
    alpha: float = Field(0.05, gt=0, lt=0.5)
    """The chance of any false decision in the stage (two-sided, shared by its comparisons)."""
    spending: Literal[SPENDING] = "obrien_fleming"


class RepeatsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    min: int | None = Field(None, ge=2)
    max: int = Field(ge=1)
    step: int | None = Field(None, ge=1)
    decide: DecideOptions | None = None
    vary: list[Literal[SEED_KEY, SUBSET_KEY]] = [SEED_KEY]
    inits_per_subset: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _check(self) -> RepeatsOptions:
        if SEED_KEY not in self.vary:
            raise ValueError(f"vary: every repeat varies {SEED_KEY}; list it")
        if self.min is not None and self.min > self.max:
            raise ValueError(f"min: {self.min} is more than max ({self.max})")
        if self.inits_per_subset > 1 and SUBSET_KEY not in self.vary:
            raise ValueError(f"inits_per_subset: needs {SUBSET_KEY} in vary")
        if self.decide is not None and self.max < 2:
            raise ValueError("max: deciding needs at least 2 seeds")
        k = self.inits_per_subset
        for name, value in (("min", self.min), ("max", self.max), ("step", self.step)):
            if value is not None and value % k:
                raise ValueError(f"{name}: {value} is not a multiple of inits_per_subset ({k})")
        return self

    def looks(self) -> tuple[int, ...]:
        """Seeds at each look (one look: every seed in one round)."""
        if self.decide is None:
            return (self.max,)
        first = self.min or self.max
        step = self.step or first
        looks = list(range(first, self.max + 1, step))
        return tuple(looks if looks[-1] == self.max else [*looks, self.max])


def as_mapping(value: object) -> object:
    """A stage's `repeats: n` as the mapping it stands for: n seeds in one round, varying
    the initialisation only (a pydantic before-validator)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError("expected at least 1 seed")
        return {"max": value}
    return value


def repeat_keys(repeats: RepeatsOptions, first_seed: int, base_subset: int, r: int) -> dict:
    """The overrides of repeat r (0-based): its seed and, when the subset varies, its
    subset (`inits_per_subset` repeats in a row share one)."""
    keys = {SEED_KEY: first_seed + r}
    if SUBSET_KEY in repeats.vary:
        keys[SUBSET_KEY] = base_subset + r // repeats.inits_per_subset
    return keys


def smoke_repeats(repeats: int | dict) -> int | dict:
    """At most 2 seeds in one round; a stage that decides still takes its look (at 2)."""
    if not isinstance(repeats, dict):
        return min(repeats, 2)
    n = min(repeats.get("max", 2), 2)
    first = n if repeats.get("decide") else None
    return {**repeats, "max": n, "min": first, "step": None, "inits_per_subset": 1}
