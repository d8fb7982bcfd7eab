"""MLflow's own concepts on a real SQLite tracking store, without Ray: the training-runs
experiment kind, the dataset input, the best checkpoint as a PyTorch model that loads on
CPU and gives the classifier's logits, registration, and the parent run's summary."""

import json

import mlflow.pytorch
import pytest
import torch
from mlflow.tracking import MlflowClient
from mlflow.tracking._tracking_service.utils import _use_tracking_uri

from hmtl.orchestration.tracking.artifacts import trial_artifacts
from hmtl.orchestration.tracking.native import (
    TRAINING_KIND,
    log_sweep_summary,
    log_trial_outputs,
    register_best_model,
    tag_training_experiment,
)
from hmtl.orchestration.tracking.tags import KIND_TAG, MODEL_TAG
from hmtl.trainables.checkpoint import load_checkpoint
from hmtl.trainables.export import classifier_from_checkpoint, example_input
from hmtl.trainables.session import LocalSession
from hmtl.trainables.train import train

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The artifacts folder of a 2-epoch tiny training (synthetic faces), best epoch 1."""
    from hmtl.trainables.config import build_config

    root = tmp_path_factory.mktemp("native")
    cfg = build_config(
        {
            "data": {
                "cache_dir": str(root / "datasets"),
                "image_size": 48,
                "batch_size": 64,
                "synthetic": {"num_samples": 320, "num_identities": 20},
            },
            "model": {"width": 4},
            "schedule": {"epochs": 2, "warmup_epochs": 0.5},
            "runtime": {"seed": 0, "num_threads": 1},
        },
        [],
    )
    train(cfg, LocalSession(root / "run", log=None))
    index = {int(p.name.rsplit("_", 1)[1]): str(p) for p in (root / "run").glob("checkpoint_*")}
    return trial_artifacts(index, 1, root / "scratch")


def test_trial_outputs_are_a_dataset_and_a_loadable_model(trained, tmp_path):
    artifacts = trained
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("native", artifact_location=tmp_path.as_uri())
    tag_training_experiment(client, experiment)
    assert client.get_experiment(experiment).tags[KIND_TAG] == TRAINING_KIND
    run_id = client.create_run(experiment, run_name="trial-x").info.run_id

    model_id = log_trial_outputs(client, run_id, artifacts)

    run = client.get_run(run_id)
    (used,) = run.inputs.dataset_inputs
    card = json.loads((artifacts / "dataset_card.json").read_text())
    assert used.dataset.name == card["name"]
    assert card["fingerprint"].startswith(used.dataset.digest)
    assert json.loads(used.dataset.source)["uri"].endswith(f"/{card['fingerprint']}")
    profile = json.loads(used.dataset.profile)
    assert profile["fingerprint"] == card["fingerprint"]
    assert profile["split_rows"] == card["split_rows"] and sum(card["split_rows"].values()) > 0
    assert [o.model_id for o in run.outputs.model_outputs] == [model_id]
    assert run.data.tags[MODEL_TAG] == model_id
    assert str(client.get_logged_model(model_id).status) == "READY"

    with _use_tracking_uri(client.tracking_uri):  # what a user sets to load models:/<id>
        loaded = mlflow.pytorch.load_model(f"models:/{model_id}", map_location="cpu")
    state = load_checkpoint(artifacts / "best_checkpoint")
    original = classifier_from_checkpoint(state)
    images = example_input(state, count=3)
    with torch.no_grad():
        assert torch.equal(loaded(images), original(images))
    assert loaded(images).shape == (3, state["config"]["data"]["classes"])

    # Registration: once per model, a resumed sweep ending again adds no version.
    assert register_best_model(client, "hmtl-native", run_id) == "1"
    assert register_best_model(client, "hmtl-native", run_id) == "1"
    version = client.get_model_version("hmtl-native", "1")
    assert version.run_id == run_id


def test_parent_summary_metrics_and_tags(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("summary", artifact_location=tmp_path.as_uri())
    parent = client.create_run(experiment).info.run_id
    summary = {
        "states": {"COMPLETE": 2, "STOPPED_EARLY": 9, "ERROR": 1},
        "epochs": 37,
        "best_trial": "abc_00003",
        "best_epoch": 4,
        "best_value": 0.61,
        "best_checkpoint": "/x/trial-abc_00003/checkpoint_000003",
    }
    log_sweep_summary(client, parent, "val/balanced_accuracy", summary)
    data = client.get_run(parent).data
    assert data.metrics == {
        "trials/complete": 2,
        "trials/stopped_early": 9,
        "trials/error": 1,
        "trials": 12,
        "epochs_spent": 37,
        "best/val/balanced_accuracy": 0.61,
        "best/epoch": 4,
    }
    assert data.tags["hmtl.best_trial"] == "abc_00003"
    assert data.tags["hmtl.best_checkpoint"].endswith("checkpoint_000003")


def test_training_view_path_is_quick_when_tracking_is_away(tmp_path):
    import time

    from hmtl.orchestration.tracking.native import training_view_path

    start = time.monotonic()
    assert training_view_path("http://127.0.0.1:9", "x") == "/"  # nothing listens on port 9
    assert time.monotonic() - start < 30  # not MLflow's minutes of retries
    missing = tmp_path / "none.db"
    assert training_view_path(f"sqlite:///{missing}", "x") == "/" and not missing.exists()
