"""MLflow's own concepts for what hmtl records, not only tags.

- The experiment is tagged as a model-training experiment, so MLflow 3's UI opens it on the
  training runs rather than on its GenAI overview (the UI reads `mlflow.experimentKind`).
- A trial's dataset is a run input: name, fingerprint as digest, source URI, and row counts
  per split in the profile (the runs table's Dataset column, the run page's datasets).
- A trial's best checkpoint is a logged PyTorch model (images in, expression logits out;
  `mlflow.pytorch.load_model` loads it on CPU), linked to the run as its output.
- The sweep's parent run carries the answer when the sweep ends: the best trial (by the one
  definition in orchestration/sweep/best.py), its metric, counts by state, epochs spent; the
  sweep's best model can be registered under a name (the space's `register_model`).

Every function takes an `MlflowClient` and plain values, so a caller may queue the calls.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow.pytorch
import torch
from mlflow.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    LoggedModelOutput,
    LoggedModelStatus,
    Metric,
    RunTag,
)
from mlflow.exceptions import MlflowException
from mlflow.models import Model, infer_signature
from mlflow.tracking import MlflowClient

from hmtl.orchestration.platform.store import Store
from hmtl.orchestration.sweep.manifest import MANIFEST
from hmtl.orchestration.sweep.report import build_report
from hmtl.orchestration.sweep.space import SpaceError, validate_space
from hmtl.orchestration.sweep.status import best_row, trial_rows
from hmtl.orchestration.tracking.probe import fast_fail, sqlite_artifact_root, transient
from hmtl.orchestration.tracking.tags import KIND_TAG, MODEL_TAG, SWEEP_TAG, TRIAL_TAG
from hmtl.trainables.checkpoint import load_checkpoint
from hmtl.trainables.data.storage import StorageError
from hmtl.trainables.export import classifier_from_checkpoint, example_input

TRAINING_KIND = "custom_model_development"
"""What MLflow 3.17's UI calls the training-runs view (its bundle's CUSTOM_MODEL_DEVELOPMENT)."""
WORKFLOW = "machine_learning"
"""The UI's workflow switch (`?workflowType=`) value for training runs."""
MODEL_NAME = "expression-classifier"
DIGEST_CHARS = 36  # MLflow's datasets.digest column is VARCHAR(36); the full one is profiled


def tag_training_experiment(client: MlflowClient, experiment_id: str) -> None:
    """Mark the experiment as model training (MLflow clients and older UIs read the tag)."""
    client.set_experiment_tag(experiment_id, KIND_TAG, TRAINING_KIND)


def training_experiment(client: MlflowClient, name: str, tracking_uri: str) -> str:
    """The id of experiment `name`, created when missing (a SQLite store's artifacts beside
    its database, not in `./mlruns`) and tagged as model training."""

    found = client.get_experiment_by_name(name)
    if found is not None:
        experiment_id = found.experiment_id
    else:
        root = sqlite_artifact_root(tracking_uri)
        experiment_id = client.create_experiment(name, artifact_location=root)
    tag_training_experiment(client, experiment_id)
    return experiment_id


def training_view_path(tracking_uri: str, experiment: str) -> str:
    """The UI path of the experiment's training runs, e.g. `/#/experiments/3?workflowType=
    machine_learning` ("/" when it cannot be looked up). MLflow 3.17's UI chooses between its
    GenAI and machine-learning views by a sidebar switch (default GenAI, kept in the
    browser) or this query parameter; with the switch it no longer reads the experiment tag."""

    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri[10:]).exists():
        return "/"  # MlflowClient would create an empty database
    # One quick try: MLflow's client would retry an absent server for minutes, for a hint.
    try:
        with fast_fail(5):
            found = MlflowClient(tracking_uri).get_experiment_by_name(experiment)
    except (MlflowException, OSError):
        return "/"
    if found is None:
        return "/"
    return f"/#/experiments/{found.experiment_id}?workflowType={WORKFLOW}"


def dataset_input(card: dict[str, Any], source: str) -> DatasetInput:
    """The MLflow dataset of a dataset card (`card.json` as saved beside a checkpoint)."""
    fingerprint = str(card.get("fingerprint", "unknown"))
    profile = {
        "fingerprint": fingerprint,
        "num_rows": card.get("num_rows"),
        "split_rows": card.get("split_rows", {}),
        "class_counts": card.get("counts", {}),
        "image_size": card.get("image_size"),
        "channels": card.get("channels"),
    }
    dataset = Dataset(
        name=str(card.get("name", "dataset")),
        digest=fingerprint[:DIGEST_CHARS],
        source_type="s3" if source.startswith("s3://") else "local",
        source=json.dumps({"uri": source}),
        profile=json.dumps(profile),
    )
    return DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])


def log_dataset(client: MlflowClient, run_id: str, card: dict[str, Any], source: str) -> None:
    """Record the trial's dataset as its input (MLflow keeps one copy of a repeated input)."""
    client.log_inputs(run_id, datasets=[dataset_input(card, source)])


def dataset_uri(data: dict[str, Any], card: dict[str, Any]) -> str:
    """Where a trained-on dataset lives: `data.source`, or the synthetic faces' cache folder."""
    if data.get("source") != "synthetic":
        return str(data.get("source"))
    return f"{data.get('cache_dir')}/{card.get('name')}/{card.get('fingerprint')}"


def log_classifier(
    client: MlflowClient, run_id: str, state: dict[str, Any], step: int
) -> str | None:
    """Log the checkpoint's expression classifier as an MLflow PyTorch model of the run, with
    a signature and an input example; returns its model id (None: no expression head)."""

    classifier = classifier_from_checkpoint(state)
    if classifier is None:
        return None
    example = example_input(state)
    with torch.no_grad():
        signature = infer_signature(example.numpy(), classifier(example).numpy())
    run = client.get_run(run_id)
    model = client.create_logged_model(
        run.info.experiment_id,
        name=MODEL_NAME,
        source_run_id=run_id,
        tags={"hmtl.epoch": str(step), "hmtl.classes": ",".join(classifier.classes)},
    )
    quiet = logging.getLogger("mlflow.pytorch")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its pickle warning, once per trial: the choice is ours
    try:
        with tempfile.TemporaryDirectory(prefix="hmtl-model-") as scratch:
            local = str(Path(scratch, MODEL_NAME))
            mlflow.pytorch.save_model(
                classifier,
                local,
                mlflow_model=Model(
                    artifact_path=model.artifact_location,
                    model_uuid=model.model_id,
                    run_id=run_id,
                    model_id=model.model_id,
                ),
                signature=signature,
                input_example=example[:1].numpy(),
                # Pickled: loading needs this project installed (the class lives in
                # hmtl.trainables.export). "pt2" (torch.export) would load without it but took
                # 4.1 s per model against 0.8 s on the 2-core machine, on the sweep driver.
                serialization_format="pickle",
                # Given, not inferred: inference loads the model in a subprocess (seconds).
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            )
            client.log_model_artifacts(model.model_id, local)
    except Exception:
        client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
        raise
    finally:
        quiet.setLevel(level)
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=step)])
    client.log_batch(run_id, tags=[RunTag(MODEL_TAG, model.model_id)])
    return model.model_id


def log_trial_outputs(
    client: MlflowClient, run_id: str, artifacts: Path, parent_id: str | None = None
) -> str | None:
    """Dataset input and model of a finished trial, from the folder `trial_artifacts` built
    (its `best_checkpoint/` and `dataset_card.json`); returns the model id. The dataset goes
    on the sweep's parent run too: the UI lists child runs folded under it."""

    state = load_checkpoint(artifacts / "best_checkpoint")
    card_file = artifacts / "dataset_card.json"
    if card_file.exists():
        card = json.loads(card_file.read_text())
        for target in (run_id, parent_id) if parent_id else (run_id,):
            log_dataset(client, target, card, dataset_uri(state["config"]["data"], card))
    return log_classifier(client, run_id, state, int(state["epoch"]))


def log_sweep_summary(
    client: MlflowClient, parent_id: str, metric: str, summary: dict[str, Any]
) -> None:
    """The sweep's answer on its parent run: `summary` has `best_trial`, `best_epoch`,
    `best_value`, `best_checkpoint` (None when no trial scored), `states` (state -> count)
    and `epochs`."""
    metrics = {f"trials/{state.lower()}": n for state, n in summary["states"].items()}
    metrics["trials"] = sum(summary["states"].values())
    metrics["epochs_spent"] = summary["epochs"]
    tags = {"hmtl.summary": "sweep", "hmtl.metric": metric}
    if summary.get("best_trial") is not None:
        metrics[f"best/{metric}"] = summary["best_value"]
        metrics["best/epoch"] = summary["best_epoch"]
        tags.update(
            {
                "hmtl.best_trial": summary["best_trial"],
                "hmtl.best_epoch": str(summary["best_epoch"]),
                "hmtl.best_checkpoint": summary.get("best_checkpoint") or "-",
            }
        )
    stamp = _now_ms()
    client.log_batch(
        parent_id,
        metrics=[Metric(k, float(v), stamp, 0) for k, v in metrics.items()],
        tags=[RunTag(k, str(v)) for k, v in tags.items()],
    )


def register_best_model(client: MlflowClient, name: str, trial_run_id: str) -> str | None:
    """Register the model logged on the best trial's run under `name`; returns the version
    (None when that run has no model)."""
    model_id = client.get_run(trial_run_id).data.tags.get(MODEL_TAG)
    if model_id is None:
        return None

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    # The artifact location, not `models:/<id>`: MLflow's SQL registry resolves that URI
    # through the process-wide tracking URI instead of this client's.
    source = client.get_logged_model(model_id).artifact_location
    for known in client.search_model_versions(f"name = '{name}'"):
        if known.source == source:
            return str(known.version)  # a resumed sweep ending again: already registered
    version = client.create_model_version(name, source, run_id=trial_run_id, model_id=model_id)
    return str(version.version)


def sweep_outcome(space, sweep: str | Store) -> tuple[dict[str, Any], list]:
    """The parent run's summary of the sweep stored at `sweep` (see `log_sweep_summary`),
    and its trial rows. Trials Tune ended before their planned last epoch (ASHA) count as
    `stopped_early`, those that reached it as `complete`."""

    rows, _, mode = trial_rows(sweep)
    states: dict[str, int] = {}
    for row in rows:
        state = row.state
        if state == "TERMINATED":
            planned = space.trial_config(row.params).schedule.epochs
            state = "COMPLETE" if row.epoch >= planned else "STOPPED_EARLY"
        states[state] = states.get(state, 0) + 1
    best = best_row(rows, mode)
    summary = {
        "states": states,
        "epochs": sum(r.epoch for r in rows),
        "best_trial": best.trial_id if best else None,
        "best_epoch": best.peak.epoch if best else None,
        "best_value": best.peak.value if best else None,
        "best_checkpoint": best.peak.checkpoint if best else None,
    }
    return summary, rows


def finish_sweep(
    client: MlflowClient, parent_id: str, space, sweep: str | Store, tracking_uri: str
) -> str | None:
    """At the end of a sweep: the summary on the parent run, the best model registered when
    the space asks (`register_model`), and `hmtl report`'s files logged under `report/`.
    `space` None: the one in the sweep's manifest. Returns the registered version, if any.
    An outage (the server away) is raised, so the tracking queue retries or spools this;
    any other failure costs the sweep nothing: one warning line, and `hmtl report` redoes
    the report."""

    try:
        sweep = Store.open(sweep)
        if space is None:
            space = validate_space(json.loads(sweep.read_text(MANIFEST))["space"])
        return _finish_sweep(client, parent_id, space, sweep, tracking_uri)
    except (MlflowException, StorageError, SpaceError, OSError, ValueError) as err:
        if isinstance(err, MlflowException | OSError) and transient(err):
            raise
        line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        print(f"hmtl: warning: the sweep's summary was not logged to MLflow ({line})")
        return None


def _finish_sweep(
    client: MlflowClient, parent_id: str, space, sweep: Store, tracking_uri: str
) -> str | None:

    summary, _ = sweep_outcome(space, sweep)
    log_sweep_summary(client, parent_id, space.metrics[0], summary)
    version = None
    if space.register_model and summary["best_trial"] is not None:
        experiment_id = client.get_run(parent_id).info.experiment_id
        best = summary["best_trial"]
        query = f"tags.`{SWEEP_TAG}` = '{space.name}' and tags.`{TRIAL_TAG}` = '{best}'"
        runs = client.search_runs([experiment_id], query, max_results=1)
        if runs:
            version = register_best_model(client, space.register_model, runs[0].info.run_id)
    if space.trials:
        return version  # a study's grid: the study's report covers it (study/results.py)
    with tempfile.TemporaryDirectory(prefix="hmtl-report-") as out:
        build_report(sweep, out=out, tracking_uri=tracking_uri)
    return version


def _now_ms() -> int:

    return int(time.time() * 1000)
