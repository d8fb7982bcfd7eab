"""`model.pretrained` sources that cannot start a run: one `hmtl: error:` line each, exit 2,
before anything is made (no run folder, no MLflow run, no scratch, no new database)."""

import tempfile

import pytest
import yaml
from helpers import refused
from mlflow.tracking import MlflowClient

from hmtl.trainables.checkpoint import rng_state, save_checkpoint
from hmtl.trainables.config import build_config
from hmtl.trainables.models import build_backbone


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    """A SQLite MLflow with one experiment (made once: creating the tables takes seconds)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    client = MlflowClient(uri)
    return uri, client, client.create_experiment("sources")


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "c.yaml"
    tiny = {"model": {"width": 8}, "schedule": {"epochs": 1, "warmup_epochs": 0}}
    path.write_text(yaml.safe_dump(tiny))
    return str(path)


def train_args(config, out, source, *more):
    return ["train", config, "--out", str(out), "--set", f"model.pretrained={source}", *more]


def assert_nothing_made(tracking, tmp_path, private_tmp, runs_before):
    _, client, experiment = tracking
    assert not (tmp_path / "run").exists()
    assert list(private_tmp.iterdir()) == []
    assert len(client.search_runs([experiment])) == runs_before
    train_experiment = client.get_experiment_by_name("hmtl-train")
    assert train_experiment is None or not client.search_runs([train_experiment.experiment_id])


def test_runs_source_without_a_tracking_uri(config, tmp_path):
    refused(train_args(config, tmp_path / "run", "runs:/0123abcd"), "needs --tracking-uri")
    assert not (tmp_path / "run").exists()


def test_runs_source_that_names_no_run(config, tmp_path, tracking, private_tmp):
    uri, client, experiment = tracking
    before = len(client.search_runs([experiment]))
    args = train_args(config, tmp_path / "run", "runs:/0123456789abcdef", "--tracking-uri", uri)
    line = refused(args, "model.pretrained: runs:/0123456789abcdef: no such run in MLflow at")
    assert uri in line
    assert_nothing_made(tracking, tmp_path, private_tmp, before)


def test_runs_source_whose_run_has_no_checkpoint(config, tmp_path, tracking, private_tmp):
    uri, client, experiment = tracking
    run = client.create_run(experiment).info.run_id
    before = len(client.search_runs([experiment]))
    args = train_args(config, tmp_path / "run", f"runs:/{run}", "--tracking-uri", uri)
    refused(args, f"runs:/{run}: the run has no checkpoint")
    assert_nothing_made(tracking, tmp_path, private_tmp, before)


def test_runs_source_of_another_architecture(config, tmp_path, tracking, private_tmp):
    uri, client, experiment = tracking
    wide = build_config({"model": {"width": 16}})
    folder = tmp_path / "source" / "checkpoint_000002"
    backbone = build_backbone("small_cnn", 1, 16).state_dict()
    state = {f"backbone.{k}": v for k, v in backbone.items()}
    save_checkpoint(
        folder,
        {"model": state, "optimizer": {}, "scheduler": {}, "epoch": 2, "rng": rng_state(),
         "config": wide.model_dump()},
    )  # fmt: skip
    run = client.create_run(experiment, tags={"hmtl.checkpoint.0002": str(folder)}).info.run_id
    before = len(client.search_runs([experiment]))
    args = train_args(config, tmp_path / "run", f"runs:/{run}", "--tracking-uri", uri)
    line = refused(args, "shape mismatch for stages.0.0.weight: file has (16, 1, 3, 3), model")
    assert "model has (8, 1, 3, 3)" in line and "model.backbone small_cnn, width 16" in line
    assert_nothing_made(tracking, tmp_path, private_tmp, before)


def test_runs_source_with_a_missing_database_creates_none(config, tmp_path):
    database = tmp_path / "nowhere.db"
    args = train_args(
        config, tmp_path / "run", "runs:/abc", "--tracking-uri", f"sqlite:///{database}"
    )
    refused(args, f"no MLflow database at {database}")
    assert not database.exists() and not (tmp_path / "run").exists()


def test_a_folder_that_is_no_checkpoint(config, tmp_path):
    (tmp_path / "photos").mkdir()
    refused(train_args(config, tmp_path / "run", tmp_path / "photos"), "without checkpoint.pt")
    assert not (tmp_path / "run").exists()


def test_malformed_runs_reference(config, tmp_path):
    refused(train_args(config, tmp_path / "run", "runs:/abc/model"), "expected runs:/<run id>")
