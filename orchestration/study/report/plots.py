"""The figures of a study's report, drawn on matplotlib figures from the cells it computed.

Each point is a cell's mean over its finished seeds with its 95% Student-t interval as an
error bar (none where a cell has one seed); the figures format the cells' numbers and never
recompute them (orchestration/study/report/stats.py does the arithmetic).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from matplotlib.ticker import NullFormatter

from hmtl.orchestration.study.report.stats import COSTS, Cell

MARKERS = "os^Dv<>p*h"


def plot_factor(
    fig, cells: Sequence[Cell], factors: Sequence[str], index: int, arms: Sequence[str], metric: str
) -> None:
    """The metric against factor `index`'s values, one line per arm (the same colour in every
    panel), 95% CI error bars; with several factors, one panel per combination of the other
    factors' levels, on a shared y axis."""
    factor = factors[index]
    values = list(dict.fromkeys(repr(c.levels[index]) for c in cells))  # cells come sorted
    firsts = {repr(c.levels[index]): c.levels[index] for c in reversed(cells)}
    numeric = bool(values) and all(_is_number(firsts[v]) for v in values)
    log = numeric and _wide([firsts[v] for v in values])
    span = (max(firsts[v] for v in values) - min(firsts[v] for v in values) or 1) if numeric else 0

    def x(cell: Cell, arm: int) -> float:
        # Arms nudged apart so their error bars do not hide each other.
        nudge = (arm - (len(arms) - 1) / 2) * 0.06
        if log:
            return cell.levels[index] * 10 ** (nudge / 4)
        if numeric:
            return cell.levels[index] + nudge * span / 10
        return values.index(repr(cell.levels[index])) + nudge  # categories at 0, 1, 2 ...

    panels: dict[str, list[Cell]] = {}
    for c in cells:
        rest = ", ".join(f"{f}={c.levels[i]}" for i, f in enumerate(factors) if i != index)
        panels.setdefault(rest, []).append(c)
    cols = min(3, len(panels)) or 1
    rows = math.ceil(len(panels) / cols) or 1
    if len(panels) > 1:
        fig.set_size_inches(4.2 * cols, 3.2 * rows + 1.2)
    axes = fig.subplots(rows, cols, sharey=True, squeeze=False).ravel()
    for ax, (rest, mine) in zip(axes, panels.items(), strict=False):
        for i, arm in enumerate(arms):
            line = [c for c in mine if c.arm == arm and c.summary.n]
            if line:
                _errorbars(ax, [x(c, i) for c in line], line, arm, i)
        if log:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks overlap
        ticks = [firsts[v] for v in values] if numeric else range(len(values))
        ax.set_xticks(ticks, [str(firsts[v]) for v in values])
        ax.set(xlabel=factor, title=rest)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    for ax in axes[::cols]:
        ax.set_ylabel(metric)
    fig.suptitle(f"{metric} against {factor}\nmean of finished seeds, 95% t CI")
    labels = {}
    for ax in axes:
        labels.update(zip(*ax.get_legend_handles_labels()[::-1], strict=True))
    if labels and (len(panels) > 1 or len(labels) > 4):  # one legend, outside the data
        fig.legend(
            labels.values(), labels.keys(), loc="outside lower center", ncols=4, fontsize="small"
        )
        return
    _finish(axes[0], any(c.summary.n for c in cells), f"no trial reported {metric}")


def plot_arms(fig, cells: Sequence[Cell], arms: Sequence[str], metric: str) -> None:
    """A study without factors: the metric per arm with its 95% CI."""
    ax = fig.add_subplot()
    shown = [c for c in cells if c.summary.n]
    for c in shown:
        _errorbars(ax, [arms.index(c.arm)], [c], c.arm, arms.index(c.arm))
    ax.set_xticks(range(len(arms)), arms)
    ax.set(xlabel="arm", ylabel=metric, title=f"{metric} per arm\nmean of finished seeds, 95% t CI")
    _finish(ax, bool(shown), f"no trial reported {metric}")


def plot_cost(fig, cells: Sequence[Cell], arms: Sequence[str], metric: str) -> None:
    """Each cell's metric against its mean device-seconds per trial, one marker per arm."""
    ax = fig.add_subplot()
    drawn = False
    for i, arm in enumerate(arms):
        mine = [c for c in cells if c.arm == arm and c.summary.n and c.costs[COSTS[0]]]
        if mine:
            _errorbars(ax, [c.costs[COSTS[0]] for c in mine], mine, arm, i, line=False)
            drawn = True
    costs = [c.costs[COSTS[0]] for c in cells if c.summary.n and c.costs[COSTS[0]]]
    if costs and _wide(costs):
        ax.set_xscale("log")
    title = f"{metric} against compute\none point per cell: mean over finished trials, 95% t CI"
    ax.set(xlabel="device-seconds per trial (cost/device_seconds)", ylabel=metric, title=title)
    _finish(ax, drawn, "no trial reported cost/device_seconds")


def _errorbars(ax, xs: list, cells: Sequence[Cell], label: str, i: int, line: bool = True) -> None:
    means = [c.summary.mean for c in cells]
    # An interval's two arms; a one-seed cell has none (drawn as a bare point).
    below = [c.summary.mean - c.summary.low if c.summary.low is not None else 0 for c in cells]
    above = [c.summary.high - c.summary.mean if c.summary.high is not None else 0 for c in cells]
    ax.errorbar(
        xs,
        means,
        yerr=[below, above],
        label=label,
        color=f"C{i % 10}",
        marker=MARKERS[i % len(MARKERS)],
        linestyle="-" if line else "none",
        capsize=3,
    )


def _finish(ax, drawn: bool, empty: str) -> None:
    """A legend, or where nothing could be drawn, a note saying why."""
    if drawn:
        ax.legend(fontsize="small")
        return
    ax.text(0.5, 0.5, empty, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set(xticks=[], yticks=[])


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _wide(values: list[float]) -> bool:
    """Positive values spanning 20× or more read better on a log axis."""
    return min(values) > 0 and max(values) / min(values) >= 20


def plot_forest(fig, rows: Sequence[dict]) -> None:
    """The comparison itself: each arm's paired difference from the baseline (a dot) with
    its adjusted interval (thick; the sequential one where the stage decided in rounds)
    and its unadjusted 95% t interval (thin, just below), 0 and ±effect marked, the verdict
    beside."""
    ax = fig.subplots()
    fig.set_size_inches(7, 1.2 + 0.55 * len(rows))
    for i, row in enumerate(reversed(rows)):
        if row["raw_low"] is not None:  # just below, so the adjusted bar does not hide it
            ax.plot([row["raw_low"], row["raw_high"]], [i - 0.2, i - 0.2], color="0.45", lw=1.2)
        if row["low"] is not None:
            ax.plot([row["low"], row["high"]], [i, i], color="C0", lw=4, alpha=0.7)
        if row["mean"] is not None:
            ax.plot([row["mean"]], [i], "o", color="C3")
            ax.annotate(row["decision"], (1.01, i), xycoords=("axes fraction", "data"))
    ax.axvline(0, color="k", lw=0.8)
    effect = rows[0].get("effect") if rows else None
    if effect:
        for x in (-effect, effect):
            ax.axvline(x, color="k", lw=0.8, ls=":")
    ax.set_yticks(range(len(rows)), [r["label"] for r in reversed(rows)])
    ax.set_xlabel(
        "paired difference from the baseline (thick: adjusted interval; thin: unadjusted 95% t)"
    )
    ax.set_ylim(-0.7, len(rows) - 0.3)
