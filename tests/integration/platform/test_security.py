"""The S3 sweep of `s3_sweep` (tests/integration/conftest.py: `hmtl sweep` with distinctive
fake AWS keys in the environment, tracked by an MLflow server): no key value in any file
Ray writes, in the bucket, in MLflow or in the command's output, and every socket the local
Ray processes listened on while it ran was on loopback."""

import os
from pathlib import Path

import boto3
import pytest
from mlflow.tracking import MlflowClient

from hmtl.orchestration.platform.credentials import propagated_secrets
from hmtl.orchestration.tracking.tags import ROLE_TAG

pytestmark = pytest.mark.integration

LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def test_no_credential_value_anywhere_after_an_s3_sweep(
    s3_sweep, s3_server, mlflow_s3, local_ray, tmp_path
):
    # The fake keys of tests/integration/conftest.py, in the environment Ray started with.
    secrets = [os.environ[k].encode() for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")]
    assert secrets[0].startswith(b"AKIAHMTL")
    session = Path(local_ray._private.worker._global_node.get_session_dir_path())
    files = {p: p.read_bytes() for p in session.rglob("*") if p.is_file() and not p.is_symlink()}
    assert any(p.name == "runtime_env_agent.log" and b for p, b in files.items())
    blobs = {str(p): b for p, b in files.items()}

    # The bucket: the sweep's state and checkpoints, and MLflow's artifacts.
    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint)
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=s3_server.bucket)
        for o in page.get("Contents", [])
    ]
    assert any(k.startswith("runs/sweeps/it-s3/") for k in keys)
    assert any(k.startswith("mlflow/") for k in keys)
    for key in keys:
        blobs[f"s3://{key}"] = s3.get_object(Bucket=s3_server.bucket, Key=key)["Body"].read()

    for path in mlflow_s3.folder.rglob("*"):  # the server's database and its log
        if path.is_file():
            blobs[str(path)] = path.read_bytes()
    client = MlflowClient(mlflow_s3.url)
    experiment = client.get_experiment_by_name("it-s3").experiment_id
    runs = client.search_runs([experiment])
    runs = [r for r in runs if r.data.tags.get(ROLE_TAG) in ("sweep", "trial")]
    assert len(runs) == 3  # the sweep's parent run and one per trial
    for run in runs:
        blobs[f"mlflow run {run.info.run_id}"] = repr(
            (run.data.params, run.data.tags, run.data.metrics)
        ).encode()
        into = str(tmp_path / run.info.run_id)
        local = Path(client.download_artifacts(run.info.run_id, "", into))
        for path in local.rglob("*"):
            if path.is_file():
                blobs[f"mlflow artifact {path}"] = path.read_bytes()
    blobs["command output"] = s3_sweep.output.encode()

    assert len(blobs) > 20
    hits = [where for where, blob in blobs.items() for secret in secrets if secret in blob]
    assert not hits, hits
    assert not propagated_secrets()


def test_local_ray_listens_on_loopback_only(s3_sweep):
    names = {name for _, name in s3_sweep.sockets}
    assert {"gcs_server", "raylet"} <= names, names
    exposed = {key: ips - LOOPBACK for key, ips in s3_sweep.sockets.items() if ips - LOOPBACK}
    assert not exposed, exposed
