"""Adjusted p-values and intervals for a table of several comparisons.

- `holm` (default): Holm's step-down, family-wise error control; its intervals are the
  Bonferroni ones (level 1 - alpha / m), which hold for all m together;
- `bh` on request: Benjamini-Hochberg (`scipy.stats.false_discovery_control`), false
  discovery rate control; its intervals are Benjamini and Yekutieli's (2005) false-coverage
  ones, level 1 - R alpha / m with R the number of BH rejections (R = 1 when none).
Comparisons without a p-value (too few seeds) are left out of m and keep None.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

METHODS = ("holm", "bh")
NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg"}


def adjust(pvalues: Sequence[float | None], method: str = "holm") -> list[float | None]:
    """The adjusted p-values, in the given order."""
    where = [i for i, p in enumerate(pvalues) if p is not None]
    out: list[float | None] = [None] * len(pvalues)
    if not where:
        return out
    p = np.asarray([pvalues[i] for i in where], dtype=float)
    if method == "holm":
        order = np.argsort(p, kind="stable")
        m = len(p)
        stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(stepped, 1.0)
    elif method == "bh":
        adjusted = stats.false_discovery_control(p, method="bh")
    else:
        raise ValueError(f"multiplicity: {method!r} is not one of {', '.join(METHODS)}")
    for i, value in zip(where, adjusted, strict=True):
        out[i] = float(value)
    return out


def interval_alpha(
    adjusted: Sequence[float | None], method: str = "holm", alpha: float = 0.05
) -> float:
    """The two-sided level (alpha of a 1 - alpha interval) of every comparison's adjusted
    interval in the family."""
    m = max(sum(p is not None for p in adjusted), 1)
    if method == "bh":
        rejected = sum(p is not None and p <= alpha for p in adjusted)
        return max(rejected, 1) * alpha / m
    return alpha / m
