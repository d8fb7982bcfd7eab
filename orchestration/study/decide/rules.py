"""Group-sequential decisions on paired differences: the adjusted interval at each look and
the decision it gives. Vectorised with numpy, so the simulation (simulate.py) runs the very
code a study's report uses.

At look k (n_k paired seeds), the adjusted interval is a repeated confidence interval
(Jennison and Turnbull 1989): mean ± b_k · sd / sqrt(n_k), where b_k is the look's boundary
on the t scale (spending.py's `t_boundaries`: each look spends the Lan-DeMets increment of
the paired t statistics). The intervals of all looks then cover the true difference
together with probability 1 - alpha, so a decision is wrong only when some interval misses
the truth:
- *above* / *below*: the interval excludes 0 (better or worse, depending on the mode);
- *equivalent*: the interval lies inside (-effect, +effect): a TOST with the same interval
  (each one-sided test at a_k / 2, conservative);
- otherwise *undecided*: the comparison gets the next round's seeds, or stays undecided
  after the last look.
Several comparisons share alpha by Bonferroni (alpha / m each), so the chance of any false
decision in the family stays below alpha.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from hmtl.orchestration.study.decide.spending import boundaries, t_boundaries

UNDECIDED, ABOVE, BELOW, EQUIVALENT = 0, 1, 2, 3
NAMES = {UNDECIDED: "undecided", ABOVE: "above", BELOW: "below", EQUIVALENT: "equivalent"}


@dataclass(frozen=True)
class SequentialDesign:
    """A design declared before the first look."""

    looks: tuple[int, ...]
    """Paired seeds at each look: min, min + step, ..., max."""
    alpha: float
    """The family's two-sided alpha."""
    effect: float
    """The equivalence margin: a difference within ±effect does not matter."""
    spending: str
    comparisons: int
    """How many comparisons share alpha (Bonferroni)."""
    z: tuple[float, ...]
    """The z boundary of each look (known variance), for alpha / comparisons."""
    t: tuple[float, ...]
    """The boundary of each look on the paired t scale at its planned n."""

    @property
    def nominal(self) -> tuple[float, ...]:
        """The nominal two-sided level of each look's t boundary at its planned n: what the
        interval uses at the look's actual n (fewer seeds when a trial failed)."""
        return tuple(
            float(2 * special.stdtr(n - 1, -b)) if math.isfinite(b) else 0.0
            for n, b in zip(self.looks, self.t, strict=True)
        )


def plan_looks(minimum: int, maximum: int, step: int) -> tuple[int, ...]:
    """min, min + step, ... up to max (max always the last look)."""
    looks = list(range(minimum, maximum + 1, step))
    if looks[-1] != maximum:
        looks.append(maximum)
    return tuple(looks)


@functools.lru_cache(maxsize=64)
def make_design(
    looks: tuple[int, ...],
    alpha: float,
    effect: float,
    spending: str = "obrien_fleming",
    comparisons: int = 1,
) -> SequentialDesign:
    """The design's boundaries for these looks (information fraction n_k / n_K)."""
    looks = tuple(int(n) for n in looks)
    if looks[0] < 2 or any(b <= a for a, b in itertools.pairwise(looks)):
        raise ValueError(f"looks must increase from at least 2 seeds, got {list(looks)}")
    each = alpha / max(comparisons, 1)
    z = boundaries([n / looks[-1] for n in looks], each, spending)
    t = t_boundaries(looks, each, spending)
    return SequentialDesign(looks, alpha, effect, spending, comparisons, tuple(z), tuple(t))


def interval(mean, sd, n, nominal):
    """The t interval mean ± t_{n-1}(1 - nominal / 2) sd / sqrt(n), elementwise (n >= 2;
    a zero sd gives a zero-width interval)."""
    mean, sd, n = (np.asarray(x, dtype=float) for x in (mean, sd, n))
    q = stats.t.isf(np.asarray(nominal, dtype=float) / 2, n - 1)  # nominal 0: infinite
    half = q * sd / np.sqrt(n)
    return mean - half, mean + half


def adjusted_interval(mean, sd, n, look, design: SequentialDesign):
    """The repeated confidence interval at `look` (0-based), elementwise."""
    nominal = np.asarray(design.nominal)[np.asarray(look)]
    return interval(mean, sd, n, nominal)


def decide(low, high, effect: float):
    """Decision codes of intervals: ABOVE (low > 0), BELOW (high < 0), EQUIVALENT (inside
    ±effect), else UNDECIDED. Elementwise; returns an int array."""
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    out = np.full(np.broadcast(low, high).shape, UNDECIDED, dtype=int)
    out[(low > -effect) & (high < effect)] = EQUIVALENT
    out[low > 0] = ABOVE
    out[high < 0] = BELOW
    return out


def naive_nominal(alpha: float = 0.05) -> float:
    """What re-testing at 5% after every round uses at every look: alpha itself."""
    return alpha
