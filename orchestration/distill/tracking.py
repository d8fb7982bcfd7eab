"""`hmtl distill --tracking-uri`: the distillation as an MLflow run.

Every setting is a param (`distill.*`), the source and the published dataset are tags with
their fingerprints, the matching loss is a metric per iteration, and the published card is
an artifact, so a study or a person can find which distilled set came from what.
"""

from __future__ import annotations

import json
import socket
import tempfile
from pathlib import Path

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from hmtl.orchestration.tracking.native import training_experiment
from hmtl.orchestration.tracking.probe import create_local_store
from hmtl.orchestration.tracking.tags import MAX_PARAM_LENGTH, git_commit, redact_uri
from hmtl.trainables.config import flatten

EXPERIMENT = "hmtl-distill"


def log_distillation(tracking_uri: str, published, losses: list[float]) -> str:
    """Log the run of `published` (its card's `distill` provenance) with the per-iteration
    `losses`; its MLflow run id."""

    card = published.card
    provenance = card["distill"]
    create_local_store(tracking_uri)  # a SQLite database whole or absent, made fast
    client = MlflowClient(redact_uri(tracking_uri))
    experiment_id = training_experiment(client, EXPERIMENT, tracking_uri)
    tags = {
        "hmtl.git_commit": git_commit(),
        "hmtl.host": socket.gethostname(),
        "hmtl.distill_source": provenance["source"],
        "hmtl.distill_source_fingerprint": provenance["source_fingerprint"],
        "hmtl.dataset": published.uri,
        "hmtl.dataset_fingerprint": card["fingerprint"],
    }
    run_id = client.create_run(experiment_id, run_name="distill", tags=tags).info.run_id
    params = {f"distill.{k}": v for k, v in flatten(provenance["settings"]).items()}
    params["distill.source_rows"] = provenance["source_rows"]
    client.log_batch(
        run_id, params=[Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in sorted(params.items())]
    )
    metrics = [Metric("distill/loss", value, 0, step) for step, value in enumerate(losses)]
    for start in range(0, len(metrics), 1000):  # MLflow's limit per batch
        client.log_batch(run_id, metrics=metrics[start : start + 1000])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "card.json")
        path.write_text(json.dumps(card, indent=2))
        client.log_artifact(run_id, str(path), "dataset")
    client.set_terminated(run_id)
    return run_id
