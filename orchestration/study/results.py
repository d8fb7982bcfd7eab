"""A study's results: one row per grid trial, read from the stages' stored Tune state, and
the report built from them (orchestration/study/report/build.py) and logged to the study's run.

Rows come from storage, not from memory or MLflow, so `hmtl report STUDY_PATH` rebuilds the
same report from a finished or a resumed study.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hmtl.orchestration.platform.store import Store
from hmtl.orchestration.sweep.best import finite, frame_rows, trial_peak
from hmtl.orchestration.sweep.manifest import MANIFEST, read_manifest
from hmtl.orchestration.sweep.space import TRIAL_KEY, SearchSpace, check_key, validate_space
from hmtl.orchestration.sweep.status import trial_rows
from hmtl.orchestration.tracking.tags import TRIAL_TAG
from hmtl.trainables.accounting import last_paid
from hmtl.trainables.config import TrainConfig

COSTS = ("cost/device_seconds", "cost/images_seen")

# Type only: the study file validates its stages through the kinds, which read results here.
if TYPE_CHECKING:
    from hmtl.orchestration.study.spec import Study


def stage_space(sweep: str | Store) -> SearchSpace | None:
    """The space a stage ran with (its sweep manifest), or None if it never started."""
    sweep = Store.open(sweep)
    try:
        sweep.read_text(MANIFEST)
    except FileNotFoundError:
        return None
    return validate_space(read_manifest(sweep)["space"])


def round_name(stage: str, number: int) -> str:
    """The sweep folder of a stage's round of seeds: the stage's own for the first (a stage
    that runs in one round keeps the sweep layout), `<stage>.r<k>` after it."""
    return stage if number == 1 else f"{stage}.r{number}"


def round_sweeps(sweep: str | Store) -> list[Store]:
    """A stage's sweep folder and those of its later rounds that started, in order."""
    sweep = Store.open(sweep)
    parent, _, name = sweep.root.rpartition("/")
    shown = sweep.uri.rpartition("/")[0]
    out = [sweep]
    while True:
        folder = round_name(name, len(out) + 1)
        later = Store(f"{shown}/{folder}", sweep.filesystem, f"{parent}/{folder}")
        if stage_space(later) is None:
            return out
        out.append(later)


def grid_rows(
    study: Study, sweep: str | Store, factors: list[str], runs: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """One row per trial of a stage of explicit trials (every round of it), in the report's
    contract form: arm, cell, factor levels, seed, the metric at the trial's best epoch
    (None: failed), its costs and wall time, its Tune trial id and MLflow run id (from
    `runs`, if given); plus `overrides` (its trial point's) and `round` (1, 2, ...)."""
    out = []
    for number, folder in enumerate(round_sweeps(sweep), start=1):
        out += _round_rows(study, folder, factors, runs, number)
    return out


def _round_rows(study, sweep: Store, factors, runs, number: int) -> list[dict[str, Any]]:
    # Lazy: keeps ray out of validating a study file (which loads every kind).
    from ray.tune import ExperimentAnalysis

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
        last = last_paid(rows)  # costs with the work lost to restarts
        out.append(
            {
                "arm": point.tags.get("hmtl.arm", ""),
                "cell": point.tags.get("hmtl.cell", ""),
                "factors": {k: point.overrides.get(k) for k in factors},
                "seed": int(point.overrides.get("runtime.seed", 0)),
                "value": value,
                **{key: finite(last.get(key)) for key in COSTS},
                "wall_s": finite(last.get("time_total_s")),
                "trial_id": trial.trial_id,
                "run_id": (runs or {}).get(trial.trial_id),
                "overrides": dict(point.overrides),
                "round": number,
            }
        )
    return out


def _value(rows: list[dict], checkpoints: list, study: Study) -> float | None:
    """The study metric at the trial's best epoch; a test/ metric (reported at the last
    epoch only) is read from the last epoch that has it."""
    peak = trial_peak(rows, checkpoints, study.tune_metric, study.mode)
    if study.metric == study.tune_metric:
        return peak.value if peak else None
    values = [finite(row.get(study.metric)) for row in rows]
    values = [v for v in values if v is not None]
    return values[-1] if values else None


def trial_run_ids(tracking_uri: str | None, study: str) -> dict[str, str]:
    """Tune trial id -> MLflow run id for every trial run of the study ({} without MLflow)."""
    if not tracking_uri:
        return {}
    # Lazy: keeps mlflow out of validating a study file (which loads every kind).
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

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
    config = dict(best["overrides"])
    config.pop("runtime.seed", None)  # a configuration, not a lucky seed
    if "data.split_seed" in _varied(cells[cell]):  # a subset drawn per repeat, likewise
        config.pop("data.split_seed")
    return {
        "best_config": config,
        "best_cell": cell,
        "best_mean": mean(cell),
        "best_checkpoint": _checkpoint(round_sweeps(sweep)[best["round"] - 1], best["trial_id"]),
    }


def _varied(rows: list[dict]) -> set[str]:
    """The keys whose value differs between trials of one cell (what repeats vary)."""
    seen: dict[str, set] = {}
    for row in rows:
        for key, value in row["overrides"].items():
            seen.setdefault(f"{row['cell']}|{key}", set()).add(repr(value))
    return {k.split("|")[-1] for k, values in seen.items() if len(values) > 1}


def _checkpoint(sweep: Store, trial_id: str) -> str | None:

    rows, _, _ = trial_rows(sweep)
    found = next((r for r in rows if r.trial_id == trial_id), None)
    return found.peak.checkpoint if found and found.peak else None


def top_configs(study: Study, space: SearchSpace, sweep: Store, k: int) -> list[dict[str, Any]]:
    """A sweep's `k` best trials (by peak; trials that ran their whole schedule first), each
    as the dotted keys where its config differs from the study's base, seed left out."""

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
