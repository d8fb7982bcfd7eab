"""The figure of an `active` stage's report: the metric against the labelled fraction."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from hmtl.orchestration.study.report.plots import MARKERS
from hmtl.orchestration.study.report.stats import Paired, Summary


def plot_curves(fig, lines: Sequence[Line], metric: str) -> None:
    """One panel per start, one line per strategy (the same colour in every panel): the mean
    over seeds at each cycle, with its 95% t interval as a band (none where one seed)."""
    starts = list(dict.fromkeys(ln.start for ln in lines))
    strategies = list(dict.fromkeys(ln.strategy for ln in lines))
    cols = min(3, len(starts)) or 1
    rows = math.ceil(len(starts) / cols) or 1
    if len(starts) > 1:
        fig.set_size_inches(5.0 * cols, 3.8 * rows + 0.8)
    axes = fig.subplots(rows, cols, sharey=True, squeeze=False).ravel()
    for ax, start in zip(axes, starts, strict=False):
        for ln in (ln for ln in lines if ln.start == start):
            i = strategies.index(ln.strategy)
            means = [p.mean for p in ln.points]
            ax.plot(
                ln.fractions,
                means,
                label=ln.strategy,
                color=f"C{i % 10}",
                marker=MARKERS[i % len(MARKERS)],
            )
            banded = [
                (f, p) for f, p in zip(ln.fractions, ln.points, strict=True) if p.low is not None
            ]
            if banded:
                ax.fill_between(
                    [f for f, _ in banded],
                    [p.low for _, p in banded],
                    [p.high for _, p in banded],
                    color=f"C{i % 10}",
                    alpha=0.15,
                )
        ax.set(xlabel="labelled fraction of the pool", ylabel=metric, title=f"start: {start}")
        ax.legend(fontsize="small")
    fig.suptitle(f"{metric} against labels: mean over seeds, 95% t band")


@dataclass(frozen=True)
class Line:
    """One strategy from one start: per cycle, the labelled fraction and the metric's
    summary over the seeds that finished; and each seed's area under its own curve."""

    start: str
    strategy: str
    fractions: list[float]
    points: list[Summary]
    auc_by_seed: dict[int, float]
    auc: Summary
    versus_baseline: Paired | None
