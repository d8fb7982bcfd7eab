"""report.md of a study: the numbers orchestration/study/report/stats.py computed, as Markdown
tables with the rules that produced them stated above each table (4 significant digits; the CSV
files keep full precision)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hmtl.orchestration.study.report.stats import (
    BOOTSTRAP_MIN_N,
    COSTS,
    RESAMPLES,
    Cell,
    Comparison,
    arm_costs,
    direction,
)
from hmtl.orchestration.study.report.stats import (
    failed as is_failed,  # `failed` names the list below
)
from hmtl.orchestration.study.report.tables import (
    family_section,
    sequential_section,
    variance_section,
)
from hmtl.orchestration.study.report.tables import interval as _ci
from hmtl.orchestration.study.report.tables import number as _n
from hmtl.orchestration.study.report.tables import pvalue as _p
from hmtl.orchestration.study.report.tables import table as _table

CELLS_RULE = (
    "Mean and sd over each cell's finished seeds; 95% CI: Student t with n − 1 degrees of "
    "freedom. A cell with one finished seed has no sd and no CI. Failed trials are counted "
    "here and listed below, never averaged. Costs are means per finished trial."
)
DIFF_RULE = (
    "Δ = arm − baseline, seed by seed, over the seeds both finished (pairs); 95% CI: Student "
    "t; p: paired t-test. Bootstrap: percentile interval of the mean Δ, {resamples:,} "
    "resamples (seeded), only where n ≥ {min_n} pairs (fewer give too few distinct "
    "resamples). *Verdict*: the direction of the mean Δ for this mode; *CI excludes 0* says "
    "whether it is more than seed noise. *At equal compute* puts Δ next to the arm's "
    "device-seconds per trial ÷ the baseline's in the same cell; nothing is extrapolated."
)
FACTORIAL_RULE = (
    "Per seed that finished every arm: the main effect of A is the mean of the arms with A on "
    "− the mean of the arms with A off; A×B is the standard two-way contrast, ½ (effect of A "
    "with B on − effect of A with B off). 95% t CI and p (t-test against 0) over seeds. "
    "*better* for a main effect: turning A on improves the metric; for A×B: A and B together "
    "do better than their separate effects add up to."
)
LOO_RULE = (
    "Drop of A = `all` − the arm without A, seed by seed; 95% t CI and paired p. *better*: "
    "keeping A improves the metric."
)


def render(
    design,
    rows: Sequence[dict],
    cells: Sequence[Cell],
    differences: Sequence[Comparison],
    effects: Sequence[Comparison],
    kind: str | None,
    figures: Sequence[Path],
    adjusted: dict | None = None,
    decided: Sequence[dict | None] = (),
) -> str:
    """The whole report.md."""
    failed = [r for r in rows if is_failed(r)]
    better = "higher" if design.mode == "max" else "lower"
    out = [
        f"# Study report: {design.metric}",
        "",
        f"{len(rows)} trials: {len(rows) - len(failed)} finished, {len(failed)} failed. "
        f"{better.capitalize()} is better (mode {design.mode}). Baseline arm: `{design.baseline}`."
        f" Factors: {', '.join(f'`{f}`' for f in design.factors) or 'none'}.",
        "",
        "## Cells",
        "",
        CELLS_RULE,
        "",
    ]
    head = ["arm", *design.factors, "trials", "failed", "n", "mean", "sd", "95% CI"]
    head += ["device s", "images", "wall s"]
    table = []
    for c in cells:
        s = c.summary
        ci = _ci(s.low, s.high) if s.n >= 2 else ("n = 1: none" if s.n == 1 else "-")
        table.append(
            [c.arm, *c.levels, len(c.trials), len(c.failed), s.n, _n(s.mean), _n(s.sd), ci]
            + [_n(c.costs[k]) for k in COSTS]
        )
    out += [*_table(head, table), ""]
    adjusted = adjusted or {"differences": [], "effects": []}
    out += variance_section(design, adjusted.get("variance", []))
    if design.sequential:
        out += sequential_section(design, differences, decided)
    out += [f"## Against the baseline `{design.baseline}`", ""]
    out += [DIFF_RULE.format(resamples=RESAMPLES, min_n=BOOTSTRAP_MIN_N), ""]
    out += _comparisons(differences, design, "arm", compute=True)
    out += ["", *family_section(differences, adjusted["differences"], design, "arm")]
    if kind == "factorial":
        title = f"## Auxiliary attribution: 2^{len(design.aux_tasks)} factorial"
        out += ["", title, "", FACTORIAL_RULE, "", *_comparisons(effects, design, "effect")]
        out += ["", *family_section(effects, adjusted["effects"], design, "effect")]
    elif kind == "leave_one_out":
        title = "## Auxiliary attribution: leave one out"
        out += ["", title, "", LOO_RULE, "", *_comparisons(effects, design, "removed")]
        out += ["", *family_section(effects, adjusted["effects"], design, "removed")]
    elif design.aux_tasks:
        out += ["", "## Auxiliary attribution", "", "The arms hold neither every on/off"]
        out[-1] += " pattern of the auxiliaries nor all-on and each all-but-one: none computed."
    out += ["", "## Compute per arm", "", "Means per finished trial, across the arm's cells."]
    if design.fed_by:  # pre-train + fine-tune against one run, on the same budget
        fed = ", ".join(f"{arm} (+ {stage})" for arm, stage in design.fed_by.items())
        out[-1] += (
            " Arms that start from an earlier stage's checkpoint include that stage's best"
            f" trial's compute (equal budget): {fed}."
        )
    costs = arm_costs(cells, design.arms, design.baseline)
    table = []
    for arm in design.arms:
        mine = costs[arm]
        ratio = f"{mine['ratio']:.2f}×" if mine["ratio"] is not None else "-"
        table.append([arm, mine["trials"], *(_n(mine[k]) for k in COSTS), ratio])
    out += [
        "",
        *_table(["arm", "trials with cost", "device s", "images", "wall s", "× baseline"], table),
    ]
    out += ["", "## Failed trials", ""]
    if failed:
        table = []
        for r in failed:
            value = "none" if r["value"] is None else "nan"
            table.append([r["trial_id"], r["arm"], r["cell"], r["seed"], value, r.get("run_id")])
        out += _table(["trial", "arm", "cell", "seed", "value", "run"], table)
    else:
        out.append("None.")
    out += ["", "## Figures", ""] + [f"![{f.stem}]({f.name})" for f in figures]
    return "\n".join(out) + "\n"


def _comparisons(comparisons: Sequence[Comparison], design, what: str, compute=False) -> list[str]:
    if not comparisons:
        return ["No comparison could be made."]
    estimate = "mean Δ" if compute else "estimate"
    head = [*design.factors, what, "pairs", estimate, "95% CI", "p", "bootstrap 95% CI"]
    head += ["verdict", "CI excludes 0", "unpaired seeds"] + (
        ["at equal compute"] if compute else []
    )
    table = []
    for c in comparisons:
        p = c.paired
        boot = _ci(p.boot_low, p.boot_high) if p.boot_low is not None else "-"
        ci = _ci(p.t.low, p.t.high) if p.t.n >= 2 else "-"
        mean = _n(p.t.mean, sign=True)
        row = [*c.levels, c.name, p.t.n, mean, ci, _p(p.p), boot, direction(p.t.mean, design.mode)]
        row += ["yes" if p.t.excludes_zero() else "no", " ".join(map(str, c.unpaired)) or "-"]
        if compute:
            known = c.cost_ratio is not None and p.t.mean is not None
            row.append(f"{mean} for {c.cost_ratio:.2f}× the compute" if known else "-")
        table.append(row)
    return _table(head, table)
