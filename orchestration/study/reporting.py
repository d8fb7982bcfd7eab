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
from hmtl.orchestration.study.sequential import saved_trials, sequential, stage_design
from hmtl.orchestration.study.spec import Study
from hmtl.trainables.accounting import DEVICE_SECONDS, WALL_SECONDS


def study_report(
    study: Study, store: Store, out: Path, runs: dict[str, str] | None = None
) -> tuple[str, list[Path], dict[str, list[dict]]]:
    """The report of every grid stage (`out/<stage>/`): its Markdown, all of it, every file
    written, and per stage its comparisons' headline numbers (for the study's MLflow run)."""

    parts, files, headlines = [], [], {}
    summary = stage_summary(store)
    if summary:
        parts.append(summary)
    for stage in study.stage_list:
        own = getattr(KINDS[stage.kind], "report", None)
        if own is not None:  # a kind with its own report (orchestration/study/kinds/active.py)
            record = {"multiplicity": study.multiplicity, **decided(study, stage, store)}
            sweep = store.child("sweeps", stage.name)
            found = own(study, stage, sweep, out / stage.name, runs, **record)
            if found is not None:
                parts.append(f"## Stage {stage.name}\n\n{found[0]}")
                files += found[1]
                if len(found) > 2:
                    headlines[stage.name] = found[2]
            continue
        design = KINDS[stage.kind].design(study, stage)
        if design is None:
            continue
        rows = grid_rows(study, store.child("sweeps", stage.name), design.factors, runs)
        if not rows:
            continue
        # The report's contract has no `overrides` (the row's trial point, for best_cell).
        rows = [{k: v for k, v in row.items() if k != "overrides"} for row in rows]
        # Arms that fine-tune an earlier stage's checkpoint carry its compute too.
        fed = fed_arms(stage.raw, design.arms)
        upstream = {
            name: best_trial_costs(store.child("sweeps", name)) for name in set(fed.values())
        }
        rows = with_fed_costs(rows, fed, upstream)
        design = dataclasses.replace(
            design, fed_by=fed, multiplicity=study.multiplicity, **decided(study, stage, store)
        )
        report: Report = build_report(rows, design, out / stage.name)
        parts.append(f"## Stage {stage.name}\n\n{report.markdown}")
        files += report.files
        headlines[stage.name] = report.headline
    return "\n".join(parts), files, headlines


def decided(study: Study, stage, store: Store) -> dict:
    """A sequential stage's record for its report (`effect`, `sequential`), else {}."""
    repeats = sequential(stage)
    if repeats is None:
        return {}
    try:
        manifest = json.loads(store.read_text(STUDY_MANIFEST))
    except FileNotFoundError:
        manifest = {}
    looks = manifest.get("rounds", {}).get(stage.name, [])
    plan = stage_design(study, stage)
    ran, fixed = saved_trials(study, stage, looks)
    record = {
        "looks": looks,
        "design": {
            "looks": list(plan.looks),
            "alpha": plan.alpha,
            "effect": plan.effect,
            "spending": plan.spending,
            "comparisons": plan.comparisons,
            "t": list(plan.t),
        },
        "ran": ran,
        "fixed": fixed,
    }
    return {"effect": repeats.decide.effect, "sequential": record}


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
