"""An S3 sweep through `hmtl sweep` with distinctive fake AWS keys in the environment:
no key value in any file Ray writes, in the bucket, in MLflow or in the command's output,
and every socket the local Ray processes listen on is on loopback."""

import os
import threading
import time
from pathlib import Path

import boto3
import pytest
import yaml
from click.testing import CliRunner
from helpers import tiny_space
from mlflow.tracking import MlflowClient

from hmtl.orchestration.cli.main import main
from hmtl.orchestration.platform.credentials import propagated_secrets

pytestmark = pytest.mark.integration

LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def _listening(root_pid: int) -> dict[tuple[int, str], set[str]]:
    """(pid, process name) -> addresses it listens on, for this process and its descendants
    (local Ray's gcs_server, raylet, dashboard, agents and workers all descend from it)."""
    import psutil  # shipped inside Ray (ray/thirdparty_files), importable once ray is

    root = psutil.Process(root_pid)
    found: dict[tuple[int, str], set[str]] = {}
    for proc in [root, *root.children(recursive=True)]:
        try:
            name = proc.name()
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.setdefault((proc.pid, name), set()).add(conn.laddr.ip)
        except psutil.Error:
            continue  # a worker that exited while being looked at
    return found


@pytest.fixture(scope="module")
def secure_sweep(local_ray, s3_server, tmp_path_factory):
    """Run the sweep from the command line while sampling listening sockets every 0.5 s."""
    tmp_path = tmp_path_factory.mktemp("secure-sweep")
    space = tiny_space(tmp_path, name="it-secrets", num_samples=2)
    space_file = tmp_path / "space.yaml"
    raw = space.model_dump(mode="json")
    raw["base"] = space.base_tree()
    space_file.write_text(yaml.safe_dump(raw))
    database = tmp_path / "mlflow.db"
    sockets: dict[tuple[int, str], set[str]] = {}
    running = threading.Event()
    running.set()

    def sample() -> None:
        while running.is_set():
            for key, addresses in _listening(os.getpid()).items():
                sockets.setdefault(key, set()).update(addresses)
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = CliRunner().invoke(
            main,
            [
                "sweep",
                str(space_file),
                "--storage",
                s3_server.uri("secure"),
                "--tracking-uri",
                f"sqlite:///{database}",
            ],
        )
    finally:
        running.clear()
        sampler.join()
    assert result.exit_code == 0, result.output
    return result.output, database, sockets


def test_no_credential_value_anywhere_after_an_s3_sweep(secure_sweep, s3_server, local_ray):
    output, database, _ = secure_sweep
    # The fake keys of tests/integration/conftest.py, in the environment Ray started with.
    secrets = [os.environ[k].encode() for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")]
    assert secrets[0].startswith(b"AKIAHMTL")
    session = Path(local_ray._private.worker._global_node.get_session_dir_path())
    files = {p: p.read_bytes() for p in session.rglob("*") if p.is_file() and not p.is_symlink()}
    assert any(p.name == "runtime_env_agent.log" and b for p, b in files.items())
    blobs = {str(p): b for p, b in files.items()}

    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint)
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=s3_server.bucket)
        for o in page.get("Contents", [])
    ]
    assert any(k.startswith("secure/sweeps/it-secrets/") for k in keys)
    for key in keys:
        blobs[f"s3://{key}"] = s3.get_object(Bucket=s3_server.bucket, Key=key)["Body"].read()

    for path in database.parent.rglob("*"):  # the database and its artifact folder
        if path.is_file():
            blobs[str(path)] = path.read_bytes()
    client = MlflowClient(f"sqlite:///{database}")
    runs = client.search_runs([client.get_experiment_by_name("it-secrets").experiment_id])
    assert len(runs) == 3  # the sweep's parent run and one per trial
    for run in runs:
        blobs[f"mlflow run {run.info.run_id}"] = repr(
            (run.data.params, run.data.tags, run.data.metrics)
        ).encode()
    blobs["command output"] = output.encode()

    hits = [where for where, blob in blobs.items() for secret in secrets if secret in blob]
    assert not hits, hits
    assert not propagated_secrets()


def test_local_ray_listens_on_loopback_only(secure_sweep):
    _, _, sockets = secure_sweep
    names = {name for _, name in sockets}
    assert {"gcs_server", "raylet"} <= names, names
    exposed = {key: ips - LOOPBACK for key, ips in sockets.items() if ips - LOOPBACK}
    assert not exposed, exposed
