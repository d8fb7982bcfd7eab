"""The variance from which faces were labelled, separated from the initialisation's.

With `repeats: {vary: [runtime.seed, data.split_seed], inits_per_subset: k}` a stage is a
balanced two-level design: J labelled subsets, k initialisations within each. The one-way
random-effects analysis of variance (method of moments; Searle, Casella and McCulloch 1992,
ch. 3) estimates
    sigma²_init   = MSW                       (within-subset mean square)
    sigma²_subset = max(0, (MSB − MSW) / k)   (between-subset mean square, less its share)
and the variance of the mean over J subsets is (sigma²_subset + sigma²_init / k) / J, which
is MSB / (J k): the subset means are the independent units, J − 1 degrees of freedom.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Components:
    subsets: int
    inits: int
    sd_subset: float
    sd_init: float
    share_subset: float
    """sigma²_subset / (sigma²_subset + sigma²_init): how much of one run's variance is the
    labelled subset's (nan when both are 0)."""


def components(groups: Mapping[int, Sequence[float]]) -> Components | None:
    """The two sds from values grouped by subset; None unless at least 2 subsets each hold
    the same number k >= 2 of values (a balanced design)."""
    sizes = {len(v) for v in groups.values()}
    if len(groups) < 2 or len(sizes) != 1 or min(sizes) < 2:
        return None
    x = np.asarray([list(v) for v in groups.values()], dtype=float)
    j, k = x.shape
    means = x.mean(axis=1)
    msw = float(((x - means[:, None]) ** 2).sum() / (j * (k - 1)))
    msb = float(k * ((means - means.mean()) ** 2).sum() / (j - 1))
    subset = max(0.0, (msb - msw) / k)
    total = subset + msw
    share = subset / total if total > 0 else math.nan
    return Components(j, k, math.sqrt(subset), math.sqrt(msw), share)


def by_subset(values: Mapping[int, float], first_seed: int, per_subset: int) -> dict[int, list]:
    """Seed -> value grouped by labelled subset (k repeats in a row share one)."""
    out: dict[int, list[float]] = {}
    for seed in sorted(values):
        out.setdefault((seed - first_seed) // per_subset, []).append(values[seed])
    return out
