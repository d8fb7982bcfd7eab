"""Sweeps on S3 tracked by an MLflow server, both real servers on loopback.

moto_server is the S3 endpoint; `mlflow server` keeps runs in SQLite and artifacts in the
same bucket (both session fixtures, tests/integration/conftest.py, as is the sweep). Covers:
checkpoints in the bucket and one child run per trial with contiguous epochs; status and
resume of an S3 sweep; `hmtl train --resume s3://`; a wrong bucket and wrong credentials
failing fast. That no credential reaches any of it: platform/test_security.py.
"""

import time

import boto3
import pytest
from click.testing import CliRunner
from helpers import moto_auth
from mlflow.tracking import MlflowClient

from hmtl.orchestration.cli.main import main
from hmtl.orchestration.tracking.tags import RESUMED_FROM_TAG, ROLE_TAG

pytestmark = pytest.mark.integration


@pytest.fixture
def mlflow_server(mlflow_s3) -> str:
    return mlflow_s3.url


def _keys(s3_server, prefix: str) -> list[str]:
    client = boto3.client("s3", endpoint_url=s3_server.endpoint)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=s3_server.bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_sweep_on_s3_checkpoints_in_bucket_one_run_per_trial(s3_sweep, s3_server, mlflow_server):
    summary = s3_sweep.summary
    assert summary["trials"] == 2 and summary["errored"] == 0
    assert summary["best"]["checkpoint"].startswith(f"s3://{s3_server.bucket}/runs/sweeps/it-s3/")
    keys = _keys(s3_server, "runs/sweeps/it-s3/")
    trials = {k.split("/")[3] for k in keys if k.split("/")[3].startswith("trial-")}
    assert len(trials) == 2
    for trial in trials:
        assert (
            sum(
                k.startswith(f"runs/sweeps/it-s3/{trial}/checkpoint_")
                and k.endswith("/checkpoint.pt")
                for k in keys
            )
            == 2
        )
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("it-s3")
    runs = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'trial'")
    assert len(runs) == 2
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
        assert sorted(steps) == [1, 2]
        assert run.data.tags["hmtl.dataset_fingerprint"]
        assert run.data.tags["hmtl.checkpoint.0002"].startswith("s3://")
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"best_checkpoint", "config.yaml", "dataset_card.json"} <= names
    assert any(k.startswith("mlflow/") for k in _keys(s3_server, "mlflow/"))


def test_status_and_resume_of_a_finished_s3_sweep(s3_sweep, s3_server):
    sweep = s3_sweep.sweep
    before = _keys(s3_server, "runs/sweeps/it-s3/")
    status = CliRunner().invoke(main, ["status", sweep])
    assert status.exit_code == 0, status.output
    assert "2 trials (2 TERMINATED)" in status.output
    resumed = CliRunner().invoke(main, ["resume", sweep])
    assert resumed.exit_code == 0, resumed.output
    after = _keys(s3_server, "runs/sweeps/it-s3/")
    new_checkpoints = {k for k in set(after) - set(before) if "/checkpoint_" in k}
    assert not new_checkpoints  # finished trials are not rerun


def test_train_resumes_a_trial_checkpoint_from_s3(s3_sweep, s3_server, mlflow_server, tmp_path):
    best = s3_sweep.summary["best"]["checkpoint"]
    first = best.rsplit("/", 1)[0] + "/checkpoint_000000"  # after epoch 1
    out = tmp_path / "continued"
    with pytest.MonkeyPatch.context() as mp:
        # On a cluster the endpoint is a setting of the environment, not part of each URI.
        mp.setenv("HMTL_S3_ENDPOINT", s3_server.endpoint)
        run = CliRunner().invoke(
            main,
            [
                "train",
                "--resume",
                first,
                "--set",
                "schedule.epochs=3",
                "--out",
                str(out),
                "--tracking-uri",
                mlflow_server,
            ],
        )
    assert run.exit_code == 0, run.output
    assert [p.name for p in sorted(out.glob("checkpoint_*"))] == [
        "checkpoint_000002",
        "checkpoint_000003",
    ]
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("it-s3")
    origin = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'trial'")
    continued = [
        r for r in client.search_runs([experiment.experiment_id]) if RESUMED_FROM_TAG in r.data.tags
    ]
    assert len(continued) == 1
    assert continued[0].data.tags[RESUMED_FROM_TAG] in {r.info.run_id for r in origin}
    steps = sorted(
        m.step for m in client.get_metric_history(continued[0].info.run_id, "train/loss")
    )
    assert steps == [2, 3]


def test_wrong_bucket_fails_fast_in_one_line(local_ray, s3_server, mlflow_server, tmp_path):
    storage = f"s3://no-such-bucket/runs?endpoint_override={s3_server.endpoint}"
    start = time.monotonic()
    result = CliRunner().invoke(
        main,
        ["sweep", "quickstart", "--smoke", "--storage", storage, "--tracking-uri", mlflow_server],
    )
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert "s3://no-such-bucket/runs" in lines[-1] and "bucket does not exist" in lines[-1]
    assert time.monotonic() - start < 30


def test_wrong_credentials_fail_fast_in_one_line(local_ray, s3_server, mlflow_server, monkeypatch):
    storage = s3_server.uri("denied")
    moto_auth(s3_server.endpoint, b"0")  # moto now checks every request's credentials
    try:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-value-123")
        result = CliRunner().invoke(
            main,
            [
                "sweep",
                "quickstart",
                "--smoke",
                "--storage",
                storage,
                "--tracking-uri",
                mlflow_server,
            ],
        )
    finally:
        moto_auth(s3_server.endpoint, b"inf")
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert f"s3://{s3_server.bucket}/denied" in last and "failed" in last
    assert "wrong-secret-value-123" not in result.output
    assert not _keys(s3_server, "denied/")


def test_smoke_on_object_storage_writes_nothing_local_under_an_s3_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    storage = "s3://no-such-bucket/runs?endpoint_override=http://127.0.0.1:9"
    CliRunner().invoke(
        main,
        [
            "sweep",
            "quickstart",
            "--smoke",
            "--storage",
            storage,
            "--tracking-uri",
            "http://127.0.0.1:9",
        ],
    )
    assert not (tmp_path / "s3:").exists()
