"""Power of the paired t-test: the seeds an effect needs, and the effect n seeds can detect.

Both come from the noncentral t distribution of the two-sided paired (one-sample) t-test at
level alpha, with the observed sd of the paired differences taken as the truth; a planning
figure, not a guarantee (the sd of a few seeds is itself uncertain).
"""

from __future__ import annotations

import math

from scipy import optimize, stats

POWER = 0.8
MAX_SEEDS = 10_000


def power(n: int, effect: float, sd: float, alpha: float = 0.05) -> float:
    """The probability that a two-sided paired t-test at `alpha` over n pairs rejects, when
    the true mean difference is `effect` and the differences' sd is `sd`."""
    if n < 2 or sd <= 0:
        return math.nan
    df, shift = n - 1, abs(effect) / sd * math.sqrt(n)
    crit = stats.t.isf(alpha / 2, df)
    value = float(stats.nct.sf(crit, df, shift) + stats.nct.cdf(-crit, df, shift))
    return 1.0 if math.isnan(value) else min(value, 1.0)  # far out, scipy gives nan


def seeds_needed(effect: float, sd: float, alpha: float = 0.05, target: float = POWER) -> int:
    """The fewest paired seeds (>= 2) with which the test reaches `target` power for `effect`
    (MAX_SEEDS when even that many do not)."""
    if effect == 0 or sd <= 0:
        return 2 if sd <= 0 and effect != 0 else MAX_SEEDS
    low, high = 2, 2
    while power(high, effect, sd, alpha) < target:
        if high >= MAX_SEEDS:
            return MAX_SEEDS
        low, high = high, min(high * 2, MAX_SEEDS)
    while low < high:  # power grows with n: bisect
        mid = (low + high) // 2
        if power(mid, effect, sd, alpha) >= target:
            high = mid
        else:
            low = mid + 1
    return high


def detectable_effect(n: int, sd: float, alpha: float = 0.05, target: float = POWER) -> float:
    """The smallest true difference that n paired seeds detect with `target` power (nan
    below 2 seeds or without spread)."""
    if n < 2 or not sd or sd <= 0:
        return math.nan
    high = sd
    while power(n, high, sd, alpha) < target:
        high *= 2
    return float(optimize.brentq(lambda e: power(n, e, sd, alpha) - target, 1e-12 * sd, high))
