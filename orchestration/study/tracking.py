"""A study in MLflow: its experiment (the study's name), the study run found by tags, the
stage runs under it (a sweep stage's made by its sweep's tracker, a job stage's here), and
the summary the study run carries when the study ends."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from hmtl.orchestration.tracking.native import tag_training_experiment
from hmtl.orchestration.tracking.probe import sqlite_artifact_root
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
    """Each stage's best value and run id on the study run, which then ends."""

    client = MlflowClient(tracking_uri)
    for name, out in outputs.items():
        if out.get("best_value") is not None:
            client.log_metric(run_id, f"{name}/best_value", float(out["best_value"]))
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
