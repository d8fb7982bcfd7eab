"""The report's tables of adjusted numbers: the multiplicity-adjusted family of comparisons
(with power and the detectable effect) and a sequential stage's looks and decisions, plus the
Markdown formatting every table of the report shares. Numbers come computed
(orchestration/study/report/adjusted.py); nothing here recomputes them."""

from __future__ import annotations

from collections.abc import Sequence

from hmtl.orchestration.study.decide.multiplicity import NAMES as METHODS
from hmtl.orchestration.study.report.adjusted import Adjusted, cell_key, verdict
from hmtl.orchestration.study.report.stats import Comparison

FAMILY_RULE = (
    "The comparisons above as one family (m = {m} with a p-value): p adjusted by {method} "
    "({control}); adjusted interval: {interval}. *Detectable*: the smallest true difference "
    "the pairs it has detect with 80% power (two-sided paired t-test at 5%, the observed sd "
    "taken as true){needed}."
)
SEQUENTIAL_RULE = (
    "Seeds ran in rounds, looks at {looks} pairs per comparison, declared before the first "
    "look. Alpha {alpha} is spent across the looks by Lan-DeMets {spending} spending and "
    "shared by the {m} comparison(s) (Bonferroni: {each:.4g} each); the t boundaries of the "
    "looks are {bounds}. At each look the adjusted interval (a repeated confidence interval: "
    "mean ± boundary × sd / √n) decides: *better* or *worse* when it excludes 0, "
    "*equivalent* when it lies inside ±{effect:.4g} (a TOST with the same interval), else "
    "*undecided*, and only undecided comparisons (with their baseline) get the next round's "
    "seeds. The chance of any false decision is at most {alpha} whatever the looks show."
)


def family_section(
    comparisons: Sequence[Comparison], adjusted: Sequence[Adjusted], design, what: str
) -> list[str]:
    """The multiplicity table of one family (nothing for fewer than one comparison)."""
    if not comparisons:
        return []
    method = design.multiplicity
    m = sum(a.p is not None for a in adjusted)
    control = "family-wise error" if method == "holm" else "false discovery rate"
    kind = (
        f"Bonferroni, each at 1 − 0.05/{max(m, 1)}, all {m} covered together with 95%"
        if method == "holm"
        else "Benjamini-Yekutieli false-coverage intervals, 1 − R·0.05/m with R rejections"
    )
    needed = (
        f"; *seeds for ±{design.effect:.4g}*: pairs needed to detect the stage's effect with "
        "80% power"
        if design.effect
        else ""
    )
    rule = FAMILY_RULE.format(
        m=m, method=METHODS[method], control=control, interval=kind, needed=needed
    )
    head = [*design.factors, what, "pairs", "p", f"p ({METHODS[method]})", "adjusted CI"]
    head += ["detectable"] + (["seeds needed"] if design.effect else [])
    rows = []
    for c, a in zip(comparisons, adjusted, strict=True):
        row = [*c.levels, c.name, c.paired.t.n, pvalue(c.paired.p), pvalue(a.p)]
        row += [interval(a.low, a.high), number(a.detectable)]
        rows.append(row + ([a.needed if a.needed is not None else "-"] if design.effect else []))
    return [rule, "", *table(head, rows)]


def sequential_section(design, differences: Sequence[Comparison], decided) -> list[str]:
    """A sequential stage's design, its looks per comparison, and the trials saved."""
    seq = design.sequential
    plan = seq["design"]
    bounds = ", ".join(number(b) for b in plan["t"])
    rule = SEQUENTIAL_RULE.format(
        looks=", ".join(map(str, plan["looks"])),
        alpha=plan["alpha"],
        spending={"obrien_fleming": "O'Brien-Fleming", "pocock": "Pocock"}[plan["spending"]],
        m=plan["comparisons"],
        each=plan["alpha"] / plan["comparisons"],
        bounds=bounds,
        effect=plan["effect"],
    )
    head = ["comparison", "looks (pairs: decision)", "n", "mean Δ", "adjusted CI", "decision"]
    rows = []
    for c, last in zip(differences, decided, strict=True):
        key = cell_key(c, design)
        history = []
        for look in seq["looks"]:
            d = look["decisions"].get(key)
            if d is not None and d["look"] == look["round"]:
                history.append(f"{d['n']}: {verdict(d['decision'], design.mode)}")
        last = last or {}
        mean, ci = number(last.get("mean"), True), interval(last.get("low"), last.get("high"))
        what = verdict(last.get("decision", "-"), design.mode)
        rows.append([key, "; ".join(history) or "-", last.get("n", "-"), mean, ci, what])
    saved = seq["fixed"] - seq["ran"]
    summary = (
        f"**{seq['ran']} trials run in {len(seq['looks'])} round(s), against {seq['fixed']} for "
        f"`max` seeds in every cell: {saved} saved.**"
    )
    return ["## Sequential decisions", "", rule, "", *table(head, rows), "", summary, ""]


VARIANCE_RULE = (
    "Repeats drew the labelled subset (`data.split_seed`), {k} initialisation(s) per subset. {how}"
)


def variance_section(design, rows: list[dict]) -> list[str]:
    """Where repeats drew the labelled subset: the sd from the subset and from the
    initialisation, per cell and per difference."""
    if not rows:
        return []
    k = design.per_subset
    if k < 2:
        how = (
            "With one initialisation per subset the two sources cannot be told apart: every "
            "sd and interval above holds both, and the answer generalises over subsets."
        )
        return ["## Variance sources", "", VARIANCE_RULE.format(k=k, how=how), ""]
    how = (
        "One-way random-effects analysis of variance over the subsets (method of moments): "
        "sd from the initialisation = √MSW, sd from the subset = √max(0, (MSB − MSW)/k); "
        "*subset share*: the subset's part of one run's variance."
    )
    head = ["quantity", "seeds", "subsets", "sd subset", "sd init", "subset share"]
    body = []
    for row in rows:
        c = row["components"]
        if c is None:
            body.append([row["label"], row["n"], "-", "-", "-", "-"])
            continue
        share = "-" if c.share_subset != c.share_subset else f"{c.share_subset:.0%}"
        body.append(
            [row["label"], row["n"], c.subsets, number(c.sd_subset), number(c.sd_init), share]
        )
    return [
        "## Variance sources",
        "",
        VARIANCE_RULE.format(k=k, how=how),
        "",
        *table(head, body),
        "",
    ]


def table(head: list, rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(map(str, head)) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]


def _cell(value) -> str:
    return ("-" if value is None else str(value)).replace("|", "\\|")


def number(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.4g}" if sign else f"{value:.4g}"


def interval(low: float | None, high: float | None) -> str:
    return "-" if low is None else f"[{low:.4g}, {high:.4g}]"


def pvalue(p: float | None) -> str:
    return "-" if p is None else f"{p:.3g}"
