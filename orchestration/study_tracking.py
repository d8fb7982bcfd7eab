"""A study in MLflow: its experiment (the study's name), the study run found by tags, the
stage runs under it, and the summary the study run carries when the study ends."""

from __future__ import annotations

from orchestration.tracking import ROLE_TAG
from orchestration.tracking_probe import sqlite_artifact_root

STUDY_TAG = "hmtl.study"
STAGE_TAG = "hmtl.stage"


def study_run_id(tracking_uri: str, study: str) -> str:
    """The study's run in its experiment, found by tags (or created)."""
    from mlflow.tracking import MlflowClient

    from orchestration.mlflow_native import tag_training_experiment

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
    from mlflow.tracking import MlflowClient

    from orchestration.tracking import SWEEP_TAG

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(study)
    query = f"tags.`{SWEEP_TAG}` = '{stage}' and tags.`{ROLE_TAG}` = 'sweep'"
    runs = client.search_runs([experiment.experiment_id], query, max_results=1)
    return runs[0].info.run_id if runs else None


def finish_study_run(tracking_uri: str, run_id: str, outputs: dict[str, dict]) -> None:
    """Each stage's best value and run id on the study run, which then ends."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    for name, out in outputs.items():
        if out.get("best_value") is not None:
            client.log_metric(run_id, f"{name}/best_value", float(out["best_value"]))
        if out.get("run_id"):
            client.set_tag(run_id, f"hmtl.stage_run.{name}", out["run_id"])
    client.set_terminated(run_id)
