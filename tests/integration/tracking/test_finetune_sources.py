"""Fine-tuning from a pre-trained source for real: a tracked `hmtl train` run as `runs:/<id>`
(SQLite MLflow), checkpoint folders and state dicts on S3 (moto), and a sweep whose trials
start from a tracked run (local Ray). A frozen backbone makes "exactly the source's backbone
was loaded" checkable after training: every backbone tensor must still equal the source's."""

import hashlib
import tempfile
from pathlib import Path

import boto3
import pytest
import torch
import yaml
from click.testing import CliRunner
from helpers import FACE_INFO, refused, tiny_space
from mlflow.tracking import MlflowClient

from hmtl.orchestration.cli.main import main
from hmtl.orchestration.sweep.run import run_sweep
from hmtl.orchestration.tracking.callback import default_tracking_uri
from hmtl.orchestration.tracking.tags import (
    BEST_EPOCH_TAG,
    BEST_TAG,
    FROM_TAG,
    NOTE_TAG,
    ROLE_TAG,
    SHA_TAG,
)
from hmtl.trainables.checkpoint import load_checkpoint, rng_state, save_checkpoint
from hmtl.trainables.config import build_config
from hmtl.trainables.models import build_backbone
from hmtl.trainables.network import FaceModel
from hmtl.trainables.tasks import build_tasks

pytestmark = pytest.mark.integration

PROBE = ["--set", "model.freeze_backbone=true", "--set", "schedule.epochs=1"]


@pytest.fixture
def config(tmp_path):
    """A config file that trains in seconds: 400 synthetic 48 px faces, an 8-wide CNN."""
    tree = {
        "data": {
            "cache_dir": str(tmp_path / "datasets"),
            "image_size": 48,
            "batch_size": 64,
            "synthetic": {"num_samples": 400},
        },
        "model": {"width": 8},
        "schedule": {"epochs": 2, "warmup_epochs": 0.5},
        "runtime": {"device": "cpu", "num_threads": 1},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tree))
    return str(path)


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """A temp directory of this test's own, so leftover scratch folders can be counted."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def hmtl(*args: str) -> None:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output


def backbone_of(state: dict) -> dict:
    return {k: v for k, v in state["model"].items() if k.startswith("backbone.")}


def assert_same_backbone(got: dict, want: dict) -> None:
    assert got.keys() == want.keys() and got
    for key in want:
        assert torch.equal(got[key], want[key]), key


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_runs(uri: str) -> dict:
    """The `hmtl train` runs by run name (their --out folder's name)."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("hmtl-train")
    return {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}


def test_fine_tune_from_a_tracked_hmtl_train_run(config, tmp_path, private_tmp):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    hmtl("train", config, "--out", str(tmp_path / "source"), "--tracking-uri", uri)
    source = train_runs(uri)["source"]
    run_id, experiment = source.info.run_id, source.info.experiment_id

    # The finished run names its best checkpoint by orchestration/sweep/best.py's rule.
    client = MlflowClient(uri)
    accuracy = {m.step: m.value for m in client.get_metric_history(run_id, "val/accuracy")}
    best_epoch = max(sorted(accuracy), key=lambda e: (accuracy[e], -e))
    best = Path(source.data.tags[BEST_TAG])
    assert source.data.tags[BEST_EPOCH_TAG] == str(best_epoch)
    assert best == (tmp_path / "source" / f"checkpoint_{best_epoch:06d}").resolve()

    tuned_out = tmp_path / "tuned"
    reference = f"runs:/{run_id}"
    args = ["--set", f"model.pretrained={reference}", *PROBE]
    hmtl("train", config, "--out", str(tuned_out), "--tracking-uri", uri, *args)

    tuned_state = load_checkpoint(tuned_out / "checkpoint_000001")
    source_state = load_checkpoint(best)
    assert_same_backbone(backbone_of(tuned_state), backbone_of(source_state))
    head = "tasks.expression.head.1.weight"
    assert not torch.equal(tuned_state["model"][head], source_state["model"][head])
    assert tuned_state["config"]["model"]["pretrained"] == reference  # the reference, kept

    tuned = train_runs(uri)["tuned"]
    assert tuned.data.tags[FROM_TAG] == reference
    assert tuned.data.tags[SHA_TAG] == sha256(best / "checkpoint.pt")
    assert f"(#/experiments/{experiment}/runs/{run_id})" in tuned.data.tags[NOTE_TAG]
    assert tuned.data.params["model.pretrained"] == reference
    assert list(private_tmp.glob("hmtl-*")) == []

    # Resuming needs no source (the checkpoint holds the backbone), so no tracking URI either.
    resume = ["--resume", str(tuned_out / "checkpoint_000001"), "--out", str(tuned_out)]
    hmtl("train", *resume, "--set", "schedule.epochs=2")
    resumed = load_checkpoint(tuned_out / "checkpoint_000002")
    assert_same_backbone(backbone_of(resumed), backbone_of(source_state))


def face_checkpoint(folder: Path) -> dict:
    """An hmtl checkpoint folder of a whole (untrained, seed 3) FaceModel; its state."""
    cfg = build_config({"model": {"width": 8}})
    torch.manual_seed(3)
    backbone = build_backbone("small_cnn", 1, 8)
    model = FaceModel(backbone, build_tasks(cfg, FACE_INFO, backbone.feature_dim))
    state = {
        "model": model.state_dict(),
        "optimizer": {},
        "scheduler": {},
        "epoch": 2,
        "rng": rng_state(),
        "config": cfg.model_dump(),
    }
    save_checkpoint(folder, state)
    return state


def test_fine_tune_from_s3_checkpoint_folder_and_state_dict(
    s3_server, config, tmp_path, private_tmp
):
    local = tmp_path / "upload"
    state = face_checkpoint(local / "checkpoint_000002")
    plain = {k[len("backbone.") :]: v for k, v in backbone_of(state).items()}
    torch.save(plain, local / "backbone.pt")
    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint)
    s3.upload_file(str(local / "checkpoint_000002" / "checkpoint.pt"), s3_server.bucket,
                   "pre/checkpoint_000002/checkpoint.pt")  # fmt: skip
    s3.upload_file(str(local / "backbone.pt"), s3_server.bucket, "pre/backbone.pt")

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sources = {
        "folder": (s3_server.uri("pre/checkpoint_000002"), local / "checkpoint_000002"),
        "file": (s3_server.uri("pre/backbone.pt"), local / "backbone.pt"),
    }
    for name, (reference, uploaded) in sources.items():
        args = ["--set", f"model.pretrained={reference}", *PROBE]
        hmtl("train", config, "--out", str(tmp_path / name), "--tracking-uri", uri, *args)
        tuned = load_checkpoint(tmp_path / name / "checkpoint_000001")
        assert_same_backbone(backbone_of(tuned), backbone_of(state))
        tags = train_runs(uri)[name].data.tags
        hashed = uploaded / "checkpoint.pt" if uploaded.is_dir() else uploaded
        assert tags[FROM_TAG] == reference and tags[SHA_TAG] == sha256(hashed)
        assert list(private_tmp.glob("hmtl-*")) == []  # the fetched copy went with the run

    missing = s3_server.uri("pre/nothing-here")
    refused(
        ["train", config, "--out", str(tmp_path / "none"), "--set", f"model.pretrained={missing}"],
        "no such file or checkpoint folder",
    )
    assert not (tmp_path / "none").exists() and list(private_tmp.glob("hmtl-*")) == []


def test_sweep_trials_fine_tune_from_a_tracked_run(local_ray, config, tmp_path):
    tracking = default_tracking_uri(str(tmp_path))  # the sweep's own MLflow
    hmtl("train", config, "--out", str(tmp_path / "source"), "--tracking-uri", tracking)
    source = train_runs(tracking)["source"]
    reference = f"runs:/{source.info.run_id}"
    space = tiny_space(tmp_path, name="it-finetune", epochs=1, num_samples=1)
    base = space.base_tree()
    base["model"].update(pretrained=reference, freeze_backbone=True)
    base["schedule"]["warmup_epochs"] = 0
    space = tiny_space(tmp_path, name="it-finetune", num_samples=1, base=base)

    result = run_sweep(space, str(tmp_path), tracking)
    assert result.trials == 1 and result.errors == 0
    tuned = load_checkpoint(result.best_checkpoint)
    source_state = load_checkpoint(source.data.tags[BEST_TAG])
    assert_same_backbone(backbone_of(tuned), backbone_of(source_state))

    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("it-finetune").experiment_id
    (trial,) = client.search_runs([experiment], f"tags.`{ROLE_TAG}` = 'trial'")
    tags = trial.data.tags
    assert tags[FROM_TAG] == reference
    assert tags[SHA_TAG] == sha256(Path(source.data.tags[BEST_TAG]) / "checkpoint.pt")
    assert f"/runs/{source.info.run_id})" in tags[NOTE_TAG]


def test_active_learning_starts_from_a_tracked_run(config, tmp_path, private_tmp):
    """`hmtl active` with `train.model.pretrained: runs:/<id>` (ActiveFER's cold-start fix):
    the loop's starting snapshot holds exactly the source run's backbone."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    hmtl("train", config, "--out", str(tmp_path / "source"), "--tracking-uri", uri)
    source = train_runs(uri)["source"]
    tree = yaml.safe_load(Path(config).read_text())
    tree["model"]["pretrained"] = f"runs:/{source.info.run_id}"
    tree["schedule"]["epochs"] = 1
    active = tmp_path / "active.yaml"
    active.write_text(yaml.safe_dump({"cycles": 2, "strategy": "margin", "train": tree}))
    out = tmp_path / "loop"
    hmtl("active", str(active), "--out", str(out), "--tracking-uri", uri)

    snapshot = torch.load(out / "checkpoint_000001" / "active.pt", weights_only=False)["snapshot"]
    source_state = load_checkpoint(Path(source.data.tags[BEST_TAG]))
    assert_same_backbone(backbone_of({"model": snapshot}), backbone_of(source_state))
    assert list(private_tmp.glob("hmtl-*")) == []
