"""The report of an `active` stage: accuracy against labelled fraction, one line per strategy
with 95% t bands over seeds; each run's area under that curve, per strategy with its 95% t
interval; and the paired difference (by seed) of each strategy's area against the baseline
(`random`). One set per start (scratch, pre-trained, ...).

Rows are read from the stage's stored Tune results (one per trial and cycle), so
`hmtl report STUDY_PATH` rebuilds the same report. The arithmetic is stats.py's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hmtl.orchestration.platform.store import Store
from hmtl.orchestration.study.report.active_plots import Line, plot_curves
from hmtl.orchestration.study.report.adjusted import (
    adjust_family,
    cell_key,
    decisions,
    forest_rows,
)
from hmtl.orchestration.study.report.build import csv_text
from hmtl.orchestration.study.report.plots import plot_forest
from hmtl.orchestration.study.report.stats import (
    Comparison,
    Summary,
    area_under_curve,
    paired_difference,
    summarize,
)
from hmtl.orchestration.study.report.tables import family_section, sequential_section
from hmtl.orchestration.study.results import round_sweeps, stage_space
from hmtl.orchestration.sweep.best import frame_rows
from hmtl.orchestration.sweep.space import TRIAL_KEY
from hmtl.trainables.atomic import write_atomic, write_text_atomic


def metric_key(metric: str) -> str:
    """The loop's per-cycle key of a study metric: `test/accuracy` -> `al/test_accuracy`."""
    split, name = metric.split("/", 1)
    return f"al/{split}_{name}"


def active_rows(sweep: Store, metric: str, runs: dict[str, str] | None) -> list[dict[str, Any]]:
    """One row per trial and cycle, over every round of the stage: start, strategy, seed,
    cycle, labelled fraction, the metric, whether the trial finished, its Tune trial id and
    MLflow run id."""
    return [row for folder in round_sweeps(sweep) for row in _round_rows(folder, metric, runs)]


def _round_rows(sweep: Store, metric: str, runs: dict[str, str] | None) -> list[dict[str, Any]]:
    # Lazy: keeps ray out of validating a study file (which loads every kind).
    from ray.tune import ExperimentAnalysis

    space = stage_space(sweep)
    if space is None:
        return []
    analysis = ExperimentAnalysis(sweep.root, storage_filesystem=sweep.filesystem)
    key, out = metric_key(metric), []
    for trial in analysis.trials:
        index = (trial.config or {}).get(TRIAL_KEY)
        if index is None:
            continue
        point = space.trials[int(index)]
        by_cycle = {}  # a restored trial may have reported a cycle twice: keep the last
        for row in frame_rows(analysis.trial_dataframes.get(trial.trial_id)):
            if row.get("al/cycle") is not None and row.get(key) is not None:
                by_cycle[int(row["al/cycle"])] = row
        for cycle, row in sorted(by_cycle.items()):
            out.append(
                {
                    "start": point.tags.get("hmtl.start", ""),
                    "strategy": point.tags.get("hmtl.arm", ""),
                    "seed": int(point.loop.get("seed", 0)),
                    "cycle": cycle,
                    "labelled_fraction": float(row["al/labelled_fraction"]),
                    "value": float(row[key]),
                    "finished": trial.status == "TERMINATED",
                    "trial_id": trial.trial_id,
                    "run_id": (runs or {}).get(trial.trial_id),
                }
            )
    return out


def build_lines(rows: list[dict[str, Any]], baseline: str) -> list[Line]:
    """The curves, areas and paired differences of finished trials, in row order."""
    done = [r for r in rows if r["finished"]]
    runs: dict[tuple[str, str], dict[int, list[dict]]] = {}
    for r in done:
        runs.setdefault((r["start"], r["strategy"]), {}).setdefault(r["seed"], []).append(r)
    aucs = {
        key: {
            seed: area_under_curve(
                [c["labelled_fraction"] for c in cycles], [c["value"] for c in cycles]
            )
            for seed, cycles in seeds.items()
        }
        for key, seeds in runs.items()
    }
    lines = []
    for (start, strategy), seeds in runs.items():
        cycles = sorted({c["cycle"] for run in seeds.values() for c in run})
        fractions, points = [], []
        for cycle in cycles:
            at = [c for run in seeds.values() for c in run if c["cycle"] == cycle]
            fractions.append(sum(c["labelled_fraction"] for c in at) / len(at))
            points.append(summarize([c["value"] for c in at]))
        base = aucs.get((start, baseline))
        versus = None
        if base is not None and strategy != baseline:
            versus = paired_difference(aucs[(start, strategy)], base)
        auc = aucs[(start, strategy)]
        lines.append(
            Line(start, strategy, fractions, points, auc, summarize(list(auc.values())), versus)
        )
    return lines


def active_report(
    study, stage, sweep: Store, out: Path, runs, design=None
) -> tuple[str, list[Path], list[dict]] | None:
    """Write curves.png, curves.csv, auc.csv, trials.csv, differences.png and report.md under
    `out`; return the Markdown, the files and the headline of each strategy against the
    baseline (None: the stage never ran a trial). `design` (report/build.py's, factor
    `start`) carries the multiplicity method and a sequential stage's record."""

    rows = active_rows(sweep, study.metric, runs)
    if not rows:
        return None
    baseline = stage.options.baseline
    starts, strategies = list(stage.options.starts), stage.options.strategies
    lines = sorted(  # in the study file's order, not the order trials finished in
        build_lines(rows, baseline),
        key=lambda ln: (_index(starts, ln.start), _index(strategies, ln.strategy)),
    )
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    header = ["start", "strategy", "seed", "cycle", "labelled_fraction", "value", "finished"]
    files = [
        write_text_atomic(
            folder / "trials.csv", csv_text(header, [[r[k] for k in header] for r in rows])
        )
    ]
    curve_rows = [
        [ln.start, ln.strategy, i, f, p.n, p.mean, p.low, p.high]
        for ln in lines
        for i, (f, p) in enumerate(zip(ln.fractions, ln.points, strict=True))
    ]
    header = ["start", "strategy", "cycle", "labelled_fraction", "n", "mean", "low", "high"]
    files.append(write_text_atomic(folder / "curves.csv", csv_text(header, curve_rows)))
    header = ["start", "strategy", "n", "auc", "low", "high", "diff", "diff_low", "diff_high", "p"]
    files.append(
        write_text_atomic(folder / "auc.csv", csv_text(header, [_auc_row(ln) for ln in lines]))
    )
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    plot_curves(fig, lines, study.metric)
    png = write_atomic(folder / "curves.png", lambda p: fig.savefig(p, format="png", dpi=110))
    markdown = render(lines, rows, study.metric, baseline)
    comparisons = [
        Comparison((ln.start,), "difference", ln.strategy, ln.versus_baseline, [])
        for ln in lines
        if ln.versus_baseline is not None
    ]
    headline = []
    if design is not None and comparisons:
        adjusted = adjust_family(comparisons, design.multiplicity, design.effect)
        decided = decisions(comparisons, design)
        forest = forest_rows(comparisons, adjusted, decided, design)
        fig = Figure(figsize=(7, 4.5), layout="constrained")
        FigureCanvasAgg(fig)
        plot_forest(fig, forest)
        files.append(
            write_atomic(folder / "differences.png", lambda p: fig.savefig(p, format="png"))
        )
        extra = sequential_section(design, comparisons, decided) if design.sequential else []
        extra += ["### Strategies against the baseline, as one family", ""]
        extra += family_section(comparisons, adjusted, design, "strategy")
        extra += ["", "![differences](differences.png)", ""]
        markdown += "\n" + "\n".join(extra) + "\n"
        headline = [
            {"cell": cell_key(c, design), **{k: f[k] for k in ("mean", "low", "high")}}
            | {"decision": f["decision"], "p_adjusted": a.p}
            for c, a, f in zip(comparisons, adjusted, forest, strict=True)
        ]
    files.append(write_text_atomic(folder / "report.md", markdown))
    files.insert(len(files) - 1, png)
    return markdown, files, headline


def _auc_row(line: Line) -> list:
    v = line.versus_baseline
    diff = [v.t.mean, v.t.low, v.t.high, v.p] if v else [None] * 4
    return [
        line.start,
        line.strategy,
        line.auc.n,
        line.auc.mean,
        line.auc.low,
        line.auc.high,
        *diff,
    ]


def render(lines: list[Line], rows: list[dict], metric: str, baseline: str) -> str:
    """The Markdown: what was run, the figure, then per start the area table."""
    trials = {r["trial_id"]: r["finished"] for r in rows}
    failed = sum(1 for ok in trials.values() if not ok)
    out = [
        f"{metric} against the labelled fraction of the pool: {len(trials)} active-learning "
        f"runs ({failed} unfinished, left out). Lines are means over seeds with 95% t bands "
        "(![curves](curves.png)). AUC is the area under a run's curve divided by the "
        f"labelled-fraction range it spans (its mean {metric}); the difference is paired by "
        f"seed against {baseline}.",
        "",
    ]
    for start in dict.fromkeys(ln.start for ln in lines):
        out += [
            f"### Start: {start}",
            "",
            f"| strategy | n | AUC | 95% CI | AUC - {baseline} | 95% CI | p |",
            "|---|---|---|---|---|---|---|",
        ]
        for ln in (ln for ln in lines if ln.start == start):
            v = ln.versus_baseline
            diff = [_num(v.t.mean), _ci(v.t), _num(v.p)] if v else ["-", "-", "-"]
            out.append(
                f"| {ln.strategy} | {ln.auc.n} | {_num(ln.auc.mean)} | {_ci(ln.auc)} | "
                + " | ".join(diff)
                + " |"
            )
        out.append("")
    return "\n".join(out)


def _index(names: list[str], name: str) -> int:
    return names.index(name) if name in names else len(names)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _ci(s: Summary) -> str:
    return "-" if s.low is None else f"[{s.low:.4f}, {s.high:.4f}]"
