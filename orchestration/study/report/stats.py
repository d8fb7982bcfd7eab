"""The arithmetic of a study's report: intervals, paired differences and factorial effects.

Pure functions over numbers keyed by seed (no Ray, no MLflow). Intervals and tests come from
scipy.stats; the report only formats what these return. Every interval is two-sided 95%.
Repeats are paired across arms by seed (the data split is fixed, only `runtime.seed` varies),
so a difference or an effect is computed per seed first and then summarised like one sample.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from scipy import stats

LEVEL = 0.95
BOOTSTRAP_MIN_N = 5
"""A percentile bootstrap needs at least this many pairs: with fewer, the resamples take so
few distinct values that the interval is mostly the sample's own extremes."""
RESAMPLES = 10_000


@dataclass(frozen=True)
class Summary:
    """n values: mean, sample standard deviation and Student-t interval of the mean.

    n = 1 gives a mean but no sd or interval; n = 0 gives nothing (None throughout)."""

    n: int
    mean: float | None
    sd: float | None
    low: float | None
    high: float | None

    def excludes_zero(self) -> bool:
        return self.low is not None and (self.low > 0 or self.high < 0)


@dataclass(frozen=True)
class Paired:
    """A per-seed quantity (an arm minus the baseline, or a factorial contrast) over the
    seeds it exists for: its t summary, the one-sample t-test p-value against 0 (equal to the
    paired t-test of the two arms) and, from BOOTSTRAP_MIN_N pairs on, a percentile bootstrap
    interval of the mean."""

    seeds: list[int]
    t: Summary
    p: float | None
    boot_low: float | None = None
    boot_high: float | None = None
    values: dict[int, float] = field(default_factory=dict)
    """The quantity by seed."""


def summarize(values: Sequence[float]) -> Summary:
    """Mean, sd (n − 1) and the 95% Student-t interval (n − 1 degrees of freedom)."""
    n = len(values)
    if n == 0:
        return Summary(0, None, None, None, None)
    mean = float(np.mean(values))
    if n == 1:
        return Summary(1, mean, None, None, None)
    sd = float(np.std(values, ddof=1))
    half = float(stats.t.ppf((1 + LEVEL) / 2, n - 1)) * sd / math.sqrt(n)
    return Summary(n, mean, sd, mean - half, mean + half)


def one_sample(
    by_seed: Mapping[int, float], resamples: int = RESAMPLES, rng_seed: int = 0
) -> Paired:
    """Summarise per-seed values as a sample whose mean is tested against 0."""
    seeds = sorted(by_seed)
    values = [by_seed[s] for s in seeds]
    summary = summarize(values)
    p = None
    # With (numerically) equal values the t statistic is undefined: no p, rather than 0.
    if summary.n >= 2 and summary.sd > 1e-12 * max(1.0, abs(summary.mean)):
        p = float(stats.ttest_1samp(values, 0.0).pvalue)
    if summary.n < BOOTSTRAP_MIN_N:
        return Paired(seeds, summary, p, values=dict(by_seed))
    boot = stats.bootstrap(
        (np.asarray(values),),
        np.mean,
        n_resamples=resamples,
        method="percentile",
        confidence_level=LEVEL,
        rng=np.random.default_rng(rng_seed),  # seeded: the same rows give the same report
    )
    ci = boot.confidence_interval
    return Paired(seeds, summary, p, float(ci.low), float(ci.high), dict(by_seed))


def paired_difference(arm: Mapping[int, float], base: Mapping[int, float]) -> Paired:
    """`arm` minus `base`, seed by seed, over the seeds both have."""
    return one_sample({s: arm[s] - base[s] for s in arm.keys() & base.keys()})


def direction(mean: float | None, mode: str) -> str:
    """'better' or 'worse' for a difference in a metric to maximise (`max`) or minimise."""
    if mean is None or mean == 0:
        return "equal" if mean == 0 else "-"
    return "better" if (mean > 0) == (mode == "max") else "worse"


def design_kind(arm_aux: Mapping[str, Mapping[str, bool]], aux: Sequence[str]) -> str | None:
    """'factorial' when the arms hold all 2^k on/off patterns of `aux`, 'leave_one_out' when
    they hold all-on and each all-but-one, else None (nothing to attribute)."""
    patterns = {tuple(bool(on.get(a)) for a in aux) for on in arm_aux.values()}
    k = len(aux)
    if k == 0:
        return None
    if len(patterns) == len(arm_aux) == 2**k:  # each pattern once: contrasts weigh arms alike
        return "factorial"
    needed = {tuple(True for _ in aux)} | {tuple(j != i for j in range(k)) for i in range(k)}
    return "leave_one_out" if needed <= patterns else None


def factorial_effects(
    by_arm: Mapping[str, Mapping[int, float]],
    arm_aux: Mapping[str, Mapping[str, bool]],
    aux: Sequence[str],
) -> dict[str, Paired]:
    """Each auxiliary's main effect and every two-way interaction of a 2^k factorial.

    Per seed that has every arm: main effect of A = mean of the arms with A on − mean of the
    arms with A off; interaction A×B = ½ (effect of A with B on − effect of A with B off), the
    standard contrast (Montgomery): the sum of y signed by both (+ where A and B are both on
    or both off), divided by 2^(k−1). Keys are `A` and `A×B`."""
    arms = list(arm_aux)  # a contrast needs every arm: seeds missing one are left out
    complete = set.intersection(*(set(by_arm.get(a, {})) for a in arms))
    sign = {arm: {x: 1.0 if arm_aux[arm].get(x) else -1.0 for x in aux} for arm in arms}
    half = len(arms) / 2  # 2^(k−1) arms on each side of every contrast

    def contrast(signs) -> Paired:
        per_seed = {s: sum(signs(a) * by_arm[a][s] for a in arms) / half for s in complete}
        return one_sample(per_seed)

    effects = {x: contrast(lambda a, x=x: sign[a][x]) for x in aux}
    for x, y in combinations(aux, 2):
        effects[f"{x}×{y}"] = contrast(lambda a, x=x, y=y: sign[a][x] * sign[a][y])
    return effects


def leave_one_out_drops(
    by_arm: Mapping[str, Mapping[int, float]],
    arm_aux: Mapping[str, Mapping[str, bool]],
    aux: Sequence[str],
) -> dict[str, Paired]:
    """For each auxiliary A: the arm with every auxiliary on minus the arm without A (what
    removing A loses), paired by seed."""
    full = next(a for a, on in arm_aux.items() if all(on.get(x) for x in aux))
    drops = {}
    for x in aux:
        without = next(
            a
            for a, on in arm_aux.items()
            if not on.get(x) and all(on.get(y) for y in aux if y != x)
        )
        drops[x] = paired_difference(by_arm.get(full, {}), by_arm.get(without, {}))
    return drops


# Over trial rows (the contract in orchestration/study/report/build.py): cells, differences,
# effects.

COSTS = ("cost/device_seconds", "cost/images_seen", "wall_s")


@dataclass(frozen=True)
class Cell:
    """One arm at one combination of factor levels: its trials (failed ones included, value
    None), the summary of the finished ones, their values by seed, and their mean costs."""

    cell: str
    arm: str
    levels: tuple
    trials: list[dict]
    summary: Summary
    by_seed: dict[int, float]
    costs: dict[str, float | None]

    @property
    def failed(self) -> list[dict]:
        return [t for t in self.trials if failed(t)]


@dataclass(frozen=True)
class Comparison:
    """A paired quantity within one combination of factor levels: an arm against the
    baseline (`name` the arm), a factorial main effect (`A`) or interaction (`A×B`), or a
    leave-one-out drop (`A`)."""

    levels: tuple
    kind: str  # "difference" | "main" | "interaction" | "leave_one_out"
    name: str
    paired: Paired
    unpaired: list[int]  # finished seeds that had no partner
    cost_ratio: float | None = None  # the arm's mean device-seconds ÷ the baseline's


def failed(row: dict) -> bool:
    """A trial without a value, or with a value that is not a number (a diverged run's NaN
    would otherwise turn its cell's mean into NaN)."""
    return row["value"] is None or not math.isfinite(row["value"])


def group_cells(rows: Sequence[dict], arms: Sequence[str], factors: Sequence[str]) -> list[Cell]:
    """The rows' cells, by factor levels (numbers sorted, anything else in order of first
    appearance), then by arm in file order. A seed twice in one cell is refused: pairing by
    seed would be ambiguous."""
    order = [_level_order([r["factors"].get(f) for r in rows]) for f in factors]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["arm"] not in arms:
            raise ValueError(f"trial {r['trial_id']}: arm {r['arm']!r} is not in the design")
        levels = tuple(_key(r["factors"].get(f)) for f in factors)
        groups.setdefault((levels, r["arm"]), []).append(r)

    def position(item):
        (levels, arm), _ = item
        return [o.index(v) for o, v in zip(order, levels, strict=True)], arms.index(arm)

    cells = []
    for (_, arm), trials in sorted(groups.items(), key=position):
        twice = [s for s, n in Counter(t["seed"] for t in trials).items() if n > 1]
        if twice:
            raise ValueError(f"cell {trials[0]['cell']}: seed {twice[0]} appears twice")
        finished = [t for t in trials if not failed(t)]
        by_seed = {t["seed"]: float(t["value"]) for t in finished}
        costs = {c: _mean([t.get(c) for t in finished]) for c in COSTS}
        levels = tuple(trials[0]["factors"].get(f) for f in factors)
        summary = summarize(list(by_seed.values()))
        cells.append(Cell(trials[0]["cell"], arm, levels, trials, summary, by_seed, costs))
    return cells


def compare(
    cells: Sequence[Cell],
    baseline: str,
    arm_aux: Mapping[str, Mapping[str, bool]],
    aux: Sequence[str],
) -> tuple[list[Comparison], list[Comparison]]:
    """Within each combination of factor levels: every arm against `baseline`, and (when the
    arms include a factorial or leave-one-out of `aux`) the auxiliaries' effects."""
    by_levels: dict[tuple, dict[str, Cell]] = {}
    for c in cells:
        by_levels.setdefault(tuple(_key(v) for v in c.levels), {})[c.arm] = c
    kind = design_kind(arm_aux, aux)
    differences, effects = [], []
    for here in by_levels.values():
        base = here.get(baseline)
        levels = next(iter(here.values())).levels
        base_seeds = base.by_seed if base else {}  # no baseline cell here: 0 pairs, shown
        for arm, cell in here.items():
            if arm == baseline:
                continue
            paired = paired_difference(cell.by_seed, base_seeds)
            unpaired = sorted(cell.by_seed.keys() ^ base_seeds.keys())
            cost, base_cost = cell.costs[COSTS[0]], base.costs[COSTS[0]] if base else None
            ratio = cost / base_cost if cost is not None and base_cost else None
            differences.append(Comparison(levels, "difference", arm, paired, unpaired, ratio))
        by_arm = {a: here[a].by_seed if a in here else {} for a in arm_aux}
        seeds = set().union(*by_arm.values()) if by_arm else set()
        if kind == "factorial":
            for name, paired in factorial_effects(by_arm, arm_aux, aux).items():
                what = "interaction" if "×" in name else "main"
                left = sorted(seeds - set(paired.seeds))
                effects.append(Comparison(levels, what, name, paired, left))
        elif kind == "leave_one_out":
            for name, paired in leave_one_out_drops(by_arm, arm_aux, aux).items():
                left = sorted(seeds - set(paired.seeds))
                effects.append(Comparison(levels, "leave_one_out", name, paired, left))
    return differences, effects


def arm_costs(
    cells: Sequence[Cell], arms: Sequence[str], baseline: str
) -> dict[str, dict[str, float | None]]:
    """Per arm, across its cells: the finished trials' mean of each cost, how many finished
    trials reported device-seconds (`trials`), and its mean device-seconds ÷ the baseline's
    (`ratio`, None where either is unknown)."""
    out = {}
    for arm in arms:
        finished = [t for c in cells if c.arm == arm for t in c.trials if not failed(t)]
        out[arm] = {k: _mean([t.get(k) for t in finished]) for k in COSTS}
        out[arm]["trials"] = sum(t.get(COSTS[0]) is not None for t in finished)
    base = out[baseline][COSTS[0]]
    for mine in out.values():
        mine["ratio"] = mine[COSTS[0]] / base if mine[COSTS[0]] is not None and base else None
    return out


def cell_id(arm: str, levels: Mapping[str, object]) -> str:
    """A stable id of an arm at factor levels, e.g. `inpainting|data.label_fraction=0.2`."""
    return "|".join([arm, *(f"{k}={v}" for k, v in levels.items())])


def _key(value) -> str:
    """A factor value's identity (values may be lists or dicts, which do not hash)."""
    return repr(value)


def _level_order(values: list) -> list[str]:
    unique = list(dict.fromkeys(_key(v) for v in values))
    firsts = {_key(v): v for v in reversed(values)}
    if all(isinstance(firsts[k], int | float) and not isinstance(firsts[k], bool) for k in unique):
        unique.sort(key=lambda k: firsts[k])
    return unique


def _mean(values: list) -> float | None:
    there = [float(v) for v in values if v is not None]
    return sum(there) / len(there) if there else None


def area_under_curve(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """The trapezoid area under y(x), divided by the span of x: the curve's mean height (an
    accuracy-vs-labelled-fraction curve's mean accuracy over the labelling budget). One
    point gives its own y; none gives None."""
    if not ys:
        return None
    if len(ys) == 1 or xs[-1] == xs[0]:
        return float(np.mean(ys))
    return float(np.trapezoid(ys, xs) / (xs[-1] - xs[0]))
