"""A study in MLflow: its experiment (the study's name), the study run found by tags, the
stage runs under it (a sweep stage's made by its sweep's tracker, a job stage's here), and
the summary the study run carries when the study ends."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from hmtl.orchestration.tracking.native import tag_training_experiment
from hmtl.orchestration.tracking.probe import create_local_store, sqlite_artifact_root
from hmtl.orchestration.tracking.tags import (
    MAX_PARAM_LENGTH,
    PARENT_TAG,
    ROLE_TAG,
    STAGE_TAG,
    STUDY_TAG,
    SWEEP_TAG,
)


def study_run_id(tracking_uri: str, study: str) -> str:
    """The study's run in its experiment, found by tags (or created)."""

    create_local_store(tracking_uri)  # a SQLite database whole or absent, made fast
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(study)
    if found is None:
        experiment = client.create_experiment(
            study, artifact_location=sqlite_artifact_root(tracking_uri)
        )
    else:
        experiment = found.experiment_id
    tag_training_experiment(client, experiment)
    query = f"tags.`{STUDY_TAG}` = '{study}' and tags.`{ROLE_TAG}` = 'study'"
    runs = client.search_runs([experiment], query, max_results=1)
    if runs:
        return runs[0].info.run_id
    tags = {STUDY_TAG: study, ROLE_TAG: "study"}
    return client.create_run(experiment, run_name=study, tags=tags).info.run_id


def stage_run_id(tracking_uri: str, study: str, stage: str) -> str | None:

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(study)
    query = f"tags.`{SWEEP_TAG}` = '{stage}' and tags.`{ROLE_TAG}` = 'sweep'"
    runs = client.search_runs([experiment.experiment_id], query, max_results=1)
    return runs[0].info.run_id if runs else None


def job_run_id(tracking_uri: str, study: str, stage: str, parent: str) -> str:
    """The run of a job stage (mine, distill) under the study run: found by tags (a stage
    run again on resume logs into the same run) or created, and marked running."""

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(study).experiment_id  # the study run made it
    tags = {STUDY_TAG: study, STAGE_TAG: stage, ROLE_TAG: "job"}
    query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    runs = client.search_runs([experiment], query, max_results=1)
    if runs:
        client.update_run(runs[0].info.run_id, status="RUNNING")
        return runs[0].info.run_id
    run = client.create_run(experiment, run_name=stage, tags={**tags, PARENT_TAG: parent})
    return run.info.run_id


def end_job_run(tracking_uri: str, run_id: str, finished: bool) -> None:

    MlflowClient(tracking_uri).set_terminated(run_id, "FINISHED" if finished else "FAILED")


def finish_study_run(tracking_uri: str, run_id: str, outputs: dict[str, dict]) -> None:
    """Each stage's best value, trials (and, for seeds in rounds, the trials saved against
    `max` seeds everywhere) and run id on the study run, which then ends."""

    client = MlflowClient(tracking_uri)
    for name, out in outputs.items():
        if out.get("best_value") is not None:
            client.log_metric(run_id, f"{name}/best_value", float(out["best_value"]))
        for key in ("trials", "saved_trials"):
            if isinstance(out.get(key), int):
                client.log_metric(run_id, f"{name}/{key}", float(out[key]))
        if out.get("run_id"):
            client.set_tag(run_id, f"hmtl.stage_run.{name}", out["run_id"])
    client.set_terminated(run_id)


def log_job(
    tracking_uri: str,
    run_id: str,
    params: dict,
    metrics: dict[str, float],
    tags: dict[str, str],
    card: dict | None = None,
) -> None:
    """A job stage's record on its run: params, metrics (step 0), tags and the published
    dataset's card as `dataset/card.json`. Logging the same params again (a job run again
    on resume) is allowed."""

    client = MlflowClient(tracking_uri)
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), 0, 0) for k, v in sorted(metrics.items())],
        params=[Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in sorted(params.items())],
    )
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    if card is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, "card.json")
            path.write_text(json.dumps(card, indent=2))
            client.log_artifact(run_id, str(path), "dataset")


def log_answers(
    tracking_uri: str, run_id: str, description: str | None, headlines: dict[str, list[dict]]
) -> None:
    """What the study answers, on its run, so the MLflow UI shows it without an artifact:
    the description (the run's note) and, per comparison against the baseline, Δ, the
    adjusted interval and p as metrics `<stage>/<cell>/delta|ci_low|ci_high|p_adjusted`
    and the decision as the tag `hmtl.decision.<stage>.<cell>`."""

    client = MlflowClient(tracking_uri)
    lines = [description.strip()] if description else []
    metrics, tags = [], {}
    for stage, rows in headlines.items():
        for row in rows:
            name = f"{stage}/{_metric_name(row['cell'])}"
            for key, field in (("delta", "mean"), ("ci_low", "low"), ("ci_high", "high")):
                if row.get(field) is not None:
                    metrics.append(Metric(f"{name}/{key}", float(row[field]), 0, 0))
            if row.get("p_adjusted") is not None:
                metrics.append(Metric(f"{name}/p_adjusted", float(row["p_adjusted"]), 0, 0))
            tags[f"hmtl.decision.{stage}.{_metric_name(row['cell'])}"] = row["decision"]
            lines.append(f"- {stage} / {row['cell']}: {row['decision']}" + _delta(row))
    if metrics:
        client.log_batch(run_id, metrics=metrics)
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    if lines:
        client.set_tag(run_id, "mlflow.note.content", "\n".join(lines))


def _metric_name(cell: str) -> str:
    """A cell id as MLflow accepts in a key (letters, digits, _ - . / space and colon)."""
    return re.sub(r"[^\w.\-/ :]", "_", cell.replace("|", "/"))


def _delta(row: dict) -> str:
    if row.get("mean") is None:
        return ""
    ci = f" [{row['low']:+.4g}, {row['high']:+.4g}]" if row.get("low") is not None else ""
    return f", Δ {row['mean']:+.4g}{ci}"
