"""A study's whole report: the table of finished stages, then each stage's section, built
by its kind (its own report, or a grid design's cells and comparisons)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from hmtl.orchestration.platform.store import Store
from hmtl.orchestration.study.budget import best_trial_costs, fed_arms, with_fed_costs
from hmtl.orchestration.study.kinds import KINDS
from hmtl.orchestration.study.manifest import STUDY_MANIFEST
from hmtl.orchestration.study.report.build import Report, build_report
from hmtl.orchestration.study.results import grid_rows
from hmtl.orchestration.study.spec import Study
from hmtl.trainables.accounting import DEVICE_SECONDS, WALL_SECONDS


def study_report(
    study: Study, store: Store, out: Path, runs: dict[str, str] | None = None
) -> tuple[str, list[Path]]:
    """The report of every grid stage (`out/<stage>/`): its Markdown, all of it, and every
    file written."""

    parts, files = [], []
    summary = stage_summary(store)
    if summary:
        parts.append(summary)
    for stage in study.stage_list:
        own = getattr(KINDS[stage.kind], "report", None)
        if own is not None:  # a kind with its own report (orchestration/study/kinds/active.py)
            found = own(study, stage, store.child("sweeps", stage.name), out / stage.name, runs)
            if found is not None:
                parts.append(f"## Stage {stage.name}\n\n{found[0]}")
                files += found[1]
            continue
        design = KINDS[stage.kind].design(study, stage)
        if design is None:
            continue
        rows = grid_rows(study, store.child("sweeps", stage.name), design.factors, runs)
        if not rows:
            continue
        # The report's contract has no `index` (the row's trial point, for best_cell).
        rows = [{k: v for k, v in row.items() if k != "index"} for row in rows]
        # Arms that fine-tune an earlier stage's checkpoint carry its compute too.
        fed = fed_arms(stage.raw, design.arms)
        upstream = {
            name: best_trial_costs(store.child("sweeps", name)) for name in set(fed.values())
        }
        rows = with_fed_costs(rows, fed, upstream)
        design = dataclasses.replace(design, fed_by=fed)
        report: Report = build_report(rows, design, out / stage.name)
        parts.append(f"## Stage {stage.name}\n\n{report.markdown}")
        files += report.files
    return "\n".join(parts), files


def stage_summary(store: Store) -> str:
    """The report's first section: one line per finished stage from the study's manifest,
    with a job stage's (mine, distill) dataset, rows and own costs; "" before any."""

    try:
        outputs = json.loads(store.read_text(STUDY_MANIFEST)).get("outputs", {})
    except FileNotFoundError:
        return ""
    if not outputs:
        return ""

    def number(value) -> str:
        return "-" if value is None else f"{value:.4g}"

    lines = [
        "## Stages",
        "",
        "Finished stages in order. A job stage's device-seconds are what it held (embedding "
        "actors, or the driver's torch threads) × its wall time, counted once for the study; "
        "the trials that train on its dataset report their own costs below.",
        "",
        "| stage | kind | trials | best value | dataset | rows | device s | wall s | run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, out in outputs.items():
        cells = [
            name,
            out.get("kind", "-"),
            out.get("trials", "-"),
            number(out.get("best_value")),
            f"`{out['dataset']}`" if out.get("dataset") else "-",
            out.get("rows", "-"),
            number(out.get(DEVICE_SECONDS)),
            number(out.get(WALL_SECONDS)),
            out.get("run_id") or "-",
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"
