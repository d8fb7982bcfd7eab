"""A study's report: cells, paired differences against the baseline, auxiliary attribution and
compute, as Markdown + CSV + PNG, from one row per grid trial.

The study engine collects the rows and calls `build_report`; nothing here talks to Ray or
MLflow (the engine logs `Report.files`). The arithmetic is orchestration/study/report/stats.py's;
this module only formats it. Each file is written under a temporary name and renamed into
place, so an interrupted report leaves nothing half-written.

A row: {"arm", "cell" (stable id of arm x factor levels), "factors": {key: value}, "seed",
"value" (the metric at the trial's best epoch; None = failed), "cost/device_seconds",
"cost/images_seen", "wall_s" (each float or None), "trial_id", "run_id" (str or None)}.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hmtl.orchestration.study.report import plots as study_plots
from hmtl.orchestration.study.report.adjusted import (
    adjust_family,
    cell_key,
    decisions,
    forest_rows,
    variance_rows,
)
from hmtl.orchestration.study.report.markdown import render
from hmtl.orchestration.study.report.stats import (
    COSTS,
    Paired,
    compare,
    design_kind,
    failed,
    group_cells,
)
from hmtl.trainables.atomic import write_atomic, write_text_atomic


@dataclass(frozen=True)
class Design:
    metric: str
    """The compared metric, e.g. "test/accuracy"."""
    mode: str
    """"max" or "min": which direction is better."""
    baseline: str
    """The arm every other arm is compared with."""
    factors: list[str]
    """Factor keys (TrainConfig keys) in file order."""
    arms: list[str]
    """Arm names in file order."""
    aux_tasks: list[str] = field(default_factory=list)
    """The auxiliaries of a `factorial:` / `leave_one_out:` shorthand, else []."""
    arm_aux: dict[str, dict[str, bool]] = field(default_factory=dict)
    """For those shorthand arms: arm -> {auxiliary: on?}."""
    fed_by: dict[str, str] = field(default_factory=dict)
    """Arm -> the earlier stage whose checkpoint it starts from; its rows' costs include
    that stage's best trial's (orchestration/study/budget.py)."""
    multiplicity: str = "holm"
    """How a table of several comparisons is adjusted: holm or bh."""
    effect: float | None = None
    """The smallest difference that matters (a sequential stage's `decide.effect`)."""
    per_subset: int = 0
    """0: one labelled subset for every repeat; k >= 1: repeats vary `data.split_seed`, k
    repeats in a row sharing one subset (from `first_seed`)."""
    first_seed: int = 0
    sequential: dict | None = None
    """A stage that decided in rounds: `looks` (the manifest's record, each with its
    `decisions` by cell id), `design` (looks, alpha, spending, comparisons, t), `ran` and
    `fixed` (trials run, and what `max` seeds for every cell would run)."""


@dataclass
class Report:
    markdown: str
    """The whole report.md text (the CLI prints it)."""
    files: list[Path]
    """Every file written."""
    headline: list[dict] = field(default_factory=list)
    """Per comparison against the baseline: cell, delta, low, high (the adjusted interval),
    p_adjusted and decision, for the study's MLflow run."""


def build_report(rows: list[dict], design: Design, out_dir: Path) -> Report:
    """Write report.md, trials.csv (the rows), cells.csv, differences.csv, effects.csv (when
    the design attributes auxiliaries), one PNG per factor (metric-vs-<factor>.png, or
    metric-by-arm.png without factors) and metric-vs-cost.png under `out_dir`; return the
    Markdown and the files. Raises ValueError for a design that contradicts itself or rows
    that do not fit it (an unknown arm, a seed twice in one cell), before writing anything."""
    _check(design)
    cells = group_cells(rows, design.arms, design.factors)
    differences, effects = compare(cells, design.baseline, design.arm_aux, design.aux_tasks)
    adjusted = {
        "differences": adjust_family(differences, design.multiplicity, design.effect),
        "effects": adjust_family(effects, design.multiplicity),
    }
    decided = decisions(differences, design)
    adjusted["variance"] = variance_rows(cells, differences, design)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    files = [write_text_atomic(folder / "trials.csv", _trials_csv(rows, design))]
    files.append(write_text_atomic(folder / "cells.csv", _cells_csv(cells, design)))
    files.append(
        write_text_atomic(
            folder / "differences.csv",
            _comparisons_csv(differences, design, adjusted["differences"], decided),
        )
    )
    if design.aux_tasks:
        text = _comparisons_csv(effects, design, adjusted["effects"])
        files.append(write_text_atomic(folder / "effects.csv", text))

    common = {"cells": cells, "arms": design.arms, "metric": design.metric}

    def draw(name: str, plot: Callable) -> Path:
        fig = Figure(figsize=(7, 4.5), layout="constrained")
        FigureCanvasAgg(fig)
        plot(fig)
        return write_atomic(folder / name, lambda path: fig.savefig(path, format="png", dpi=110))

    figures, plots = [], study_plots
    for i, factor in enumerate(design.factors):
        name = f"metric-vs-{re.sub(r'[^A-Za-z0-9._-]', '_', factor)}.png"
        figures.append(
            draw(name, partial(plots.plot_factor, factors=design.factors, index=i, **common))
        )
    if not design.factors:
        figures.append(draw("metric-by-arm.png", partial(plots.plot_arms, **common)))
    figures.append(draw("metric-vs-cost.png", partial(plots.plot_cost, **common)))
    if differences:
        forest = forest_rows(differences, adjusted["differences"], decided, design)
        figures.insert(0, draw("differences.png", partial(plots.plot_forest, rows=forest)))
    kind = design_kind(design.arm_aux, design.aux_tasks) if design.aux_tasks else None
    markdown = render(design, rows, cells, differences, effects, kind, figures, adjusted, decided)
    files += [*figures, write_text_atomic(folder / "report.md", markdown)]
    headline = [
        {"cell": cell_key(c, design), **{k: r[k] for k in ("mean", "low", "high", "decision")}}
        | {"p_adjusted": a.p}
        for c, a, r in zip(
            differences,
            adjusted["differences"],
            forest_rows(differences, adjusted["differences"], decided, design),
            strict=True,
        )
    ]
    return Report(markdown, files, headline)


def _check(design: Design) -> None:
    if design.mode not in ("max", "min"):
        raise ValueError(f"mode must be max or min, not {design.mode!r}")
    if design.baseline not in design.arms:
        raise ValueError(f"baseline {design.baseline!r} is not one of the arms {design.arms}")
    unknown = [a for a in design.arm_aux if a not in design.arms]
    if unknown:
        raise ValueError(f"arm_aux names arms that are not in the design: {unknown}")


def _trials_csv(rows: list[dict], design: Design) -> str:
    """Every trial as given, failed ones included: what the tables were computed from."""
    header = ["trial_id", "run_id", "arm", "cell", *design.factors, "seed", "value", "failed"]
    table = [
        [r["trial_id"], r.get("run_id"), r["arm"], r["cell"]]
        + [*(r["factors"].get(f) for f in design.factors), r["seed"], r["value"], failed(r)]
        + [r.get(k) for k in COSTS]
        for r in rows
    ]
    return csv_text([*header, *COSTS], table)


def _cells_csv(cells, design: Design) -> str:
    header = ["cell", "arm", *design.factors, "trials", "failed", "n", "mean", "sd"]
    header += ["ci_low", "ci_high", *COSTS]
    table = []

    def costs(c):
        return [c.costs[k] for k in COSTS]

    for c in cells:
        s = c.summary
        counts = [len(c.trials), len(c.failed), s.n]
        table.append([c.cell, c.arm, *c.levels, *counts, s.mean, s.sd, s.low, s.high, *costs(c)])
    return csv_text(header, table)


def _comparisons_csv(comparisons, design: Design, adjusted, decided=None) -> str:
    """One row per comparison: full precision, empty where a number does not exist."""
    header = [*design.factors, "kind", "name", "pairs", "seeds", "unpaired_seeds", "mean", "sd"]
    header += ["ci_low", "ci_high", "p_value", "boot_low", "boot_high", "excludes_zero"]
    header += ["cost_ratio", f"p_{design.multiplicity}", "adjusted_low", "adjusted_high"]
    header += ["detectable_effect", "seeds_needed", "look", "look_n", "look_low", "look_high"]
    header += ["decision"]
    table = []
    for c, a, d in zip(comparisons, adjusted, decided or [None] * len(comparisons), strict=True):
        p: Paired = c.paired
        seeds = " ".join(map(str, p.seeds))
        unpaired = " ".join(map(str, c.unpaired))
        t = [p.t.n, seeds, unpaired, p.t.mean, p.t.sd, p.t.low, p.t.high, p.p]
        boot = [p.boot_low, p.boot_high, p.t.excludes_zero()]
        more = [a.p, a.low, a.high, a.detectable, a.needed]
        d = d or {}
        look = [d.get("look"), d.get("n"), d.get("low"), d.get("high"), d.get("decision")]
        table.append([*c.levels, c.kind, c.name, *t, *boot, c.cost_ratio, *more, *look])
    return csv_text(header, table)


def csv_text(header: list[str], table: list[list]) -> str:
    """The table as CSV text, header first, None as an empty cell."""
    buffer = io.StringIO()
    rows = [["" if v is None else v for v in row] for row in table]
    csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
    return buffer.getvalue()
