"""One look at a sequential stage: every undecided comparison's adjusted interval and
decision, from the values its cells have so far (pure; orchestration/study/sequential.py
reads the values and records what this returns).

A comparison is a cell against its baseline cell, paired by repeat. When repeats share a
labelled subset (`inits_per_subset` k > 1), the unit is the subset: the k differences of a
subset are averaged first, so n counts subsets and the interval carries the subset's
variance. A decided comparison keeps its decision and runs no more seeds; one whose
differences are all equal (no spread: two arms that train identically) stays undecided,
like its missing p-value in the report.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from hmtl.orchestration.study.decide.rules import (
    NAMES,
    UNDECIDED,
    SequentialDesign,
    adjusted_interval,
    decide,
)


def unit_differences(
    cell: Mapping[int, float], base: Mapping[int, float], first_seed: int, per_unit: int
) -> dict[int, float]:
    """Cell − baseline by repeat over the repeats both have, averaged per unit (k repeats
    in a row share a subset: unit = (seed − first_seed) // k); a unit counts only whole."""
    groups: dict[int, list[float]] = {}
    for seed in sorted(cell.keys() & base.keys()):
        groups.setdefault((seed - first_seed) // per_unit, []).append(cell[seed] - base[seed])
    return {u: float(np.mean(d)) for u, d in groups.items() if len(d) == per_unit}


def look(
    design: SequentialDesign,
    differences: Mapping[str, Mapping[int, float]],
    earlier: Mapping[str, dict] | None = None,
    number: int = 1,
) -> dict[str, dict]:
    """Per comparison: `n` units, mean, sd, the adjusted interval (`low`, `high`), the
    `decision` (above, below, equivalent, undecided) and the `look` that made it; a
    comparison decided at an `earlier` look is carried over unchanged."""
    out = {}
    for name, by_unit in differences.items():
        before = (earlier or {}).get(name)
        if before is not None and before["decision"] != NAMES[UNDECIDED]:
            out[name] = before
            continue
        values = np.asarray(list(by_unit.values()), dtype=float)
        n = len(values)
        row = {"look": number, "n": n, "mean": None, "sd": None, "low": None, "high": None}
        row["decision"] = NAMES[UNDECIDED]
        # Equal differences (no spread) leave the sd, and so any interval, unknown: undecided.
        spread = n >= 2 and float(values.std(ddof=1)) > 1e-12 * max(1.0, abs(values.mean()))
        if n >= 2 and not spread:
            row.update(mean=float(values.mean()), sd=0.0)
        elif n >= 2:
            mean, sd = float(values.mean()), float(values.std(ddof=1))
            k = min(number, len(design.looks)) - 1  # the round's boundary, at the n it has
            low, high = adjusted_interval(mean, sd, n, k, design)
            code = int(decide(low, high, design.effect))
            row.update(mean=mean, sd=sd, low=float(low), high=float(high), decision=NAMES[code])
        elif n == 1:
            row["mean"] = float(values[0])
        out[name] = row
    return out


def settled(decisions: Mapping[str, dict]) -> bool:
    return all(d["decision"] != NAMES[UNDECIDED] for d in decisions.values())
