"""The numbers a table of several comparisons adds to each one's own: the p-value and the
interval adjusted for multiplicity (Holm by default, Benjamini-Hochberg on request), the
seeds an effect needs at 80% power and the effect the current seeds can detect, and, for a
stage that decided in rounds, its sequential record. Computed here from the comparisons
(orchestration/study/decide/ holds the statistics); the Markdown only formats them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

from hmtl.orchestration.study.decide.multiplicity import adjust, interval_alpha
from hmtl.orchestration.study.decide.power import detectable_effect, seeds_needed
from hmtl.orchestration.study.decide.variance import by_subset, components
from hmtl.orchestration.study.report.stats import LEVEL, Comparison, cell_id, direction

ALPHA = 1 - LEVEL


@dataclass(frozen=True)
class Adjusted:
    """One comparison's family-adjusted numbers."""

    p: float | None
    low: float | None
    high: float | None
    detectable: float | None
    """The smallest true difference its n pairs detect with 80% power (paired t, 5%)."""
    needed: int | None
    """Pairs needed to detect the stage's `effect` with 80% power (None without an effect)."""


def adjust_family(
    comparisons: Sequence[Comparison], method: str = "holm", effect: float | None = None
) -> list[Adjusted]:
    """Each comparison's adjusted p and interval within the family it is listed with."""
    adjusted = adjust([c.paired.p for c in comparisons], method)
    level = interval_alpha(adjusted, method, ALPHA)
    out = []
    for c, p in zip(comparisons, adjusted, strict=True):
        t = c.paired.t
        low = high = detect = need = None
        if t.n >= 2 and t.sd is not None:
            half = float(stats.t.isf(level / 2, t.n - 1)) * t.sd / math.sqrt(t.n)
            low, high = t.mean - half, t.mean + half
            if t.sd > 0:
                detect = detectable_effect(t.n, t.sd, ALPHA)
                need = seeds_needed(effect, t.sd, ALPHA) if effect else None
        out.append(Adjusted(p, low, high, detect, need))
    return out


def interval_level(comparisons: Sequence[Comparison], method: str = "holm") -> float:
    """The confidence level of the family's adjusted intervals (e.g. 0.975 for 2, Holm)."""
    return 1 - interval_alpha(adjust([c.paired.p for c in comparisons], method), method, ALPHA)


def cell_key(c: Comparison, design) -> str:
    """The cell id of a difference's arm at its levels (what a sequential look is keyed by)."""
    return cell_id(c.name, dict(zip(design.factors, c.levels, strict=True)))


def decisions(differences: Sequence[Comparison], design) -> list[dict | None]:
    """Per difference: its last sequential look (n, mean, low, high, decision, look), or
    None for a stage that ran in one round."""
    if not design.sequential or not design.sequential["looks"]:
        return [None] * len(differences)
    last = design.sequential["looks"][-1]["decisions"]
    return [last.get(cell_key(c, design)) for c in differences]


def verdict(decision: str, mode: str) -> str:
    """A look's decision in the study's terms: above 0 is better when higher is better."""
    flip = {"above": "better", "below": "worse"}
    if mode == "min":
        flip = {"above": "worse", "below": "better"}
    return flip.get(decision, decision)


def forest_rows(differences, adjusted, decided, design) -> list[dict]:
    """What the forest plot and the MLflow run show per comparison: the estimate, the
    adjusted interval (the sequential one where the stage decided in rounds) and the
    verdict (the sequential decision, else the direction where the adjusted interval
    excludes 0, else inconclusive)."""
    out = []
    for c, a, d in zip(differences, adjusted, decided, strict=True):
        if d is not None and d.get("low") is not None:
            low, high, mean, what = (
                d["low"],
                d["high"],
                d["mean"],
                verdict(d["decision"], design.mode),
            )
        else:
            low, high, mean = a.low, a.high, c.paired.t.mean
            excludes = low is not None and (low > 0 or high < 0)
            what = direction(mean, design.mode) if excludes else "inconclusive"
        label = c.name + "".join(
            f" ({f}={v})" for f, v in zip(design.factors, c.levels, strict=True)
        )
        out.append(
            {
                "label": label,
                "mean": mean,
                "low": low,
                "high": high,
                "decision": what,
                "raw_low": c.paired.t.low,
                "raw_high": c.paired.t.high,
                "effect": design.effect,
            }
        )
    return out


def variance_rows(cells, differences, design) -> list[dict]:
    """Where repeats drew the labelled subset, per cell and per difference from the
    baseline: the subset's and the initialisation's sd (decide/variance.py; None where the
    design cannot separate them: one initialisation per subset, or too few seeds)."""
    if not design.per_subset:
        return []
    out = []
    pairs = [(c.arm + "".join(f" ({v})" for v in c.levels), c.by_seed) for c in cells]
    pairs += [
        (f"{c.name} − baseline" + "".join(f" ({v})" for v in c.levels), c.paired.values)
        for c in differences
    ]
    for label, values in pairs:
        groups = by_subset(values, design.first_seed, design.per_subset)
        out.append({"label": label, "n": len(values), "components": components(groups)})
    return out
