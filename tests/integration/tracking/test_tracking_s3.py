"""Sweeps on S3 tracked by an MLflow server, both real servers on loopback.

moto_server is the S3 endpoint; `mlflow server` keeps runs in SQLite and artifacts in the
same bucket. Covers: checkpoints in the bucket and one child run per trial with
contiguous epochs; status and resume of an S3 sweep; `hmtl train --resume s3://`;
a wrong bucket and wrong credentials failing fast; no credential anywhere.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from helpers import moto_auth, tiny_space
from mlflow.tracking import MlflowClient

from hmtl.orchestration.cli.main import main
from hmtl.orchestration.sweep.run import run_sweep
from hmtl.orchestration.tracking.tags import RESUMED_FROM_TAG, ROLE_TAG

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"{url} did not come up: {log.read_text()[-2000:]}")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def mlflow_server(s3_server, tmp_path_factory):
    """`mlflow server` on 127.0.0.1: SQLite runs, artifacts in the moto bucket."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    log = folder / "server.log"
    env = {**os.environ, "MLFLOW_S3_ENDPOINT_URL": s3_server.endpoint}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("mlflow")),
                "server",
                "--backend-store-uri",
                f"sqlite:///{folder / 'mlflow.db'}",
                "--artifacts-destination",
                f"s3://{s3_server.bucket}/mlflow",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    _wait(f"{url}/health", proc, log)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _keys(s3_server, prefix: str) -> list[str]:
    client = boto3.client("s3", endpoint_url=s3_server.endpoint)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=s3_server.bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


@pytest.fixture(scope="module")
def s3_sweep(local_ray, s3_server, mlflow_server, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("s3-sweep")
    storage = s3_server.uri("runs")
    result = run_sweep(
        tiny_space(
            tmp_path, name="it-s3", num_samples=2, space={"optim.lr": "loguniform(1e-4, 1e-2)"}
        ),
        storage,
        mlflow_server,
    )
    return result, storage


def test_sweep_on_s3_checkpoints_in_bucket_one_run_per_trial(s3_sweep, s3_server, mlflow_server):
    result, _ = s3_sweep
    assert result.trials == 2 and result.errors == 0
    assert result.best_checkpoint.startswith(f"s3://{s3_server.bucket}/runs/sweeps/it-s3/")
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
    _, storage = s3_sweep
    sweep = storage.replace("/runs?", "/runs/sweeps/it-s3?")
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
    result, _ = s3_sweep
    first = result.best_checkpoint.rsplit("/", 1)[0] + "/checkpoint_000000"  # after epoch 1
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


def test_no_credential_reaches_mlflow_or_tune_state(s3_sweep, s3_server, mlflow_server, tmp_path):
    secrets = [
        os.environ["AWS_SECRET_ACCESS_KEY"].encode(),
        os.environ["AWS_ACCESS_KEY_ID"].encode(),
    ]
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("it-s3")
    blobs: list[bytes] = []
    for run in client.search_runs([experiment.experiment_id]):
        blobs += [str(v).encode() for v in run.data.params.values()]
        blobs += [str(v).encode() for v in run.data.tags.values()]
        local = Path(
            client.download_artifacts(run.info.run_id, "", str(tmp_path / run.info.run_id))
        )
        blobs += [f.read_bytes() for f in local.rglob("*") if f.is_file()]
    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint)
    state = _keys(s3_server, "runs/sweeps/it-s3/")
    assert any(k.endswith(".pkl") or k.endswith(".json") for k in state)
    blobs += [s3.get_object(Bucket=s3_server.bucket, Key=k)["Body"].read() for k in state]
    assert len(blobs) > 20
    for secret in secrets:
        assert not any(secret in blob for blob in blobs), secret


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
