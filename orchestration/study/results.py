"""A study's results: one row per grid trial, read from the stages' stored Tune state, and
the report built from them (orchestration/study/report/build.py) and logged to the study's run.

Rows come from storage, not from memory or MLflow, so `hmtl report STUDY_PATH` rebuilds the
same report from a finished or a resumed study.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from hmtl.orchestration.platform.store import Store
from hmtl.orchestration.study.report.build import Report, build_report
from hmtl.orchestration.study.spec import Study
from hmtl.orchestration.sweep.best import frame_rows, trial_peak
from hmtl.orchestration.sweep.run import MANIFEST, read_manifest
from hmtl.orchestration.sweep.space import TRIAL_KEY, SearchSpace, validate_space

COSTS = ("cost/device_seconds", "cost/images_seen")


def stage_space(sweep: str | Store) -> SearchSpace | None:
    """The space a stage ran with (its sweep manifest), or None if it never started."""
    sweep = Store.open(sweep)
    try:
        sweep.read_text(MANIFEST)
    except FileNotFoundError:
        return None
    return validate_space(read_manifest(sweep)["space"])


def grid_rows(
    study: Study, sweep: str | Store, factors: list[str], runs: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """One row per trial of a stage of explicit trials, in the report's contract form:
    arm, cell, factor levels, seed, the metric at the trial's best epoch (None: failed),
    its costs and wall time, its Tune trial id and MLflow run id (from `runs`, if given)."""
    from ray.tune import ExperimentAnalysis

    sweep = Store.open(sweep)
    space = stage_space(sweep)
    if space is None:
        return []
    analysis = ExperimentAnalysis(sweep.root, storage_filesystem=sweep.filesystem)
    out = []
    for trial in analysis.trials:
        index = (trial.config or {}).get(TRIAL_KEY)
        if index is None:
            continue
        point = space.trials[int(index)]
        rows = frame_rows(analysis.trial_dataframes.get(trial.trial_id))
        checkpoints = [
            (c.checkpoint.path, c.metrics)
            for c in trial.run_metadata.checkpoint_manager.best_checkpoint_results
        ]
        value = None
        if trial.status == "TERMINATED":
            value = _value(rows, checkpoints, study)
        last = rows[-1] if rows else {}
        out.append(
            {
                "arm": point.tags.get("hmtl.arm", ""),
                "cell": point.tags.get("hmtl.cell", ""),
                "factors": {k: point.overrides.get(k) for k in factors},
                "seed": int(point.overrides.get("runtime.seed", 0)),
                "value": value,
                **{key: _finite(last.get(key)) for key in COSTS},
                "wall_s": _finite(last.get("time_total_s")),
                "trial_id": trial.trial_id,
                "run_id": (runs or {}).get(trial.trial_id),
                "index": int(index),
            }
        )
    return out


def _value(rows: list[dict], checkpoints: list, study: Study) -> float | None:
    """The study metric at the trial's best epoch; a test/ metric (reported at the last
    epoch only) is read from the last epoch that has it."""
    peak = trial_peak(rows, checkpoints, study.tune_metric, study.mode)
    if study.metric == study.tune_metric:
        return peak.value if peak else None
    values = [_finite(row.get(study.metric)) for row in rows]
    values = [v for v in values if v is not None]
    return values[-1] if values else None


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def study_report(
    study: Study, store: Store, out: Path, runs: dict[str, str] | None = None
) -> tuple[str, list[Path]]:
    """The report of every grid stage (`out/<stage>/`): its Markdown, all of it, and every
    file written."""
    from hmtl.orchestration.study.budget import best_trial_costs, fed_arms, with_fed_costs
    from hmtl.orchestration.study.kinds.base import KINDS

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
    import json

    from hmtl.orchestration.study.engine import STUDY_MANIFEST
    from hmtl.trainables.accounting import DEVICE_SECONDS, WALL_SECONDS

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


def trial_run_ids(tracking_uri: str | None, study: str) -> dict[str, str]:
    """Tune trial id -> MLflow run id for every trial run of the study ({} without MLflow)."""
    if not tracking_uri:
        return {}
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from hmtl.orchestration.tracking.callback import TRIAL_TAG

    try:
        client = MlflowClient(tracking_uri)
        experiment = client.get_experiment_by_name(study)
        if experiment is None:
            return {}
        runs = client.search_runs([experiment.experiment_id], f"tags.`{TRIAL_TAG}` != ''")
    except (MlflowException, OSError):
        return {}
    return {r.data.tags[TRIAL_TAG]: r.info.run_id for r in runs}


def best_cell(study: Study, space: SearchSpace, sweep: Store) -> dict[str, Any]:
    """A grid-like stage's answer: the cell with the best mean over its seeds, as
    `best_config` (its overrides, seed left out), `best_cell`, and the checkpoint of its
    best trial as `best_checkpoint`."""
    rows = [r for r in grid_rows(study, sweep, []) if r["value"] is not None]
    if not rows:
        return {"best_config": {}}
    cells: dict[str, list[dict]] = {}
    for row in rows:
        cells.setdefault(row["cell"], []).append(row)
    sign = 1.0 if study.mode == "max" else -1.0

    def mean(cell: str) -> float:
        return sum(r["value"] for r in cells[cell]) / len(cells[cell])

    cell = max(cells, key=lambda c: sign * mean(c))  # the first listed among equals
    best = max(cells[cell], key=lambda r: sign * r["value"])
    config = dict(space.trials[best["index"]].overrides)
    config.pop("runtime.seed", None)  # a configuration, not a lucky seed
    return {
        "best_config": config,
        "best_cell": cell,
        "best_mean": mean(cell),
        "best_checkpoint": _checkpoint(sweep, best["trial_id"]),
    }


def _checkpoint(sweep: Store, trial_id: str) -> str | None:
    from hmtl.orchestration.sweep.status import trial_rows

    rows, _, _ = trial_rows(sweep)
    found = next((r for r in rows if r.trial_id == trial_id), None)
    return found.peak.checkpoint if found and found.peak else None


def top_configs(study: Study, space: SearchSpace, sweep: Store, k: int) -> list[dict[str, Any]]:
    """A sweep's `k` best trials (by peak; trials that ran their whole schedule first), each
    as the dotted keys where its config differs from the study's base, seed left out."""
    from hmtl.orchestration.sweep.space import check_key
    from hmtl.orchestration.sweep.status import trial_rows
    from hmtl.trainables.config import TrainConfig

    rows, _, mode = trial_rows(sweep)
    sign = 1.0 if mode == "max" else -1.0
    scored = []
    for row in rows:
        if row.peak is None:
            continue
        config = space.trial_config(row.params)
        complete = row.state == "TERMINATED" and row.epoch >= config.schedule.epochs
        scored.append((not complete, -sign * row.peak.value, len(scored), config))
    base = TrainConfig.model_validate(study.base_tree()).flat()
    out = []
    for *_, config in sorted(scored)[:k]:
        diff = {}
        for key, value in config.flat().items():
            if key == "runtime.seed" or base.get(key, object()) == value:
                continue
            try:
                check_key(key)
            except ValueError:
                continue  # a section switched off (None): not expressible as a value
            diff[key] = value
        out.append(diff)
    return out
