"""Simulated studies run through the decision rules (rules.py), vectorised over studies.

Each study is one comparison: paired differences drawn N(delta, 1) (delta in sds of the
differences), looked at after each round of the design. The sequential rule uses the
adjusted interval of the look; the naive rule re-tests with a plain 95% t interval after
every round. Both stop a study at its first decision.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from hmtl.orchestration.study.decide.rules import (
    ABOVE,
    BELOW,
    EQUIVALENT,
    UNDECIDED,
    SequentialDesign,
    adjusted_interval,
    decide,
    interval,
)


@dataclass(frozen=True)
class Outcome:
    decisions: np.ndarray
    """Per study: its decision code."""
    seeds: np.ndarray
    """Per study: the paired seeds it ran (its look's n)."""

    def rate(self, *codes: int) -> float:
        return float(np.isin(self.decisions, codes).mean())


def run(
    design: SequentialDesign, delta: float, studies: int, seed: int = 0, naive: bool = False
) -> Outcome:
    """`studies` simulated studies at true difference `delta` (in sds)."""
    rng = np.random.default_rng(seed)
    d = rng.standard_normal((studies, design.looks[-1])) + delta
    decisions = np.full(studies, UNDECIDED)
    seeds = np.full(studies, design.looks[-1])
    open_ = np.ones(studies, dtype=bool)
    for k, n in enumerate(design.looks):
        x = d[:, :n]
        mean, sd = x.mean(axis=1), x.std(axis=1, ddof=1)
        if naive:
            low, high = interval(mean, sd, n, design.alpha)
        else:
            low, high = adjusted_interval(mean, sd, n, k, design)
        now = decide(low, high, design.effect)
        newly = open_ & (now != UNDECIDED)
        decisions[newly], seeds[newly] = now[newly], n
        open_ &= ~newly
    return Outcome(decisions, seeds)


def false_codes(delta: float, effect: float) -> tuple[int, ...]:
    """The decisions that are wrong at true difference `delta`: a sign the truth does not
    have, or equivalence when |delta| >= effect."""
    wrong = []
    if delta <= 0:
        wrong.append(ABOVE)
    if delta >= 0:
        wrong.append(BELOW)
    if abs(delta) >= effect:
        wrong.append(EQUIVALENT)
    return tuple(wrong)


def rate_ci(rate: float, studies: int, level: float = 0.95) -> tuple[float, float]:
    """The Clopper-Pearson interval of a Monte-Carlo rate."""
    ci = stats.binomtest(round(rate * studies), studies).proportion_ci(level, "exact")
    return float(ci.low), float(ci.high)
