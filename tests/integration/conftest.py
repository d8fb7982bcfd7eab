"""Real local services for the integration tier: Ray on 127.0.0.1 with its dashboard."""

import os

import pytest

# Each sweep's Optuna mirror (optuna.db beside MLflow's) costs a second or so of database
# set-up; the tier runs dozens of sweeps. It is off here, and on (`optuna_mirror`) in the
# files that check it: test_sweep, test_exit_codes, test_resume.
os.environ["HMTL_OPTUNA_STORAGE"] = "none"


@pytest.fixture(scope="module")
def optuna_mirror():
    """The Optuna mirror at its default for one test file (see the note above)."""
    os.environ.pop("HMTL_OPTUNA_STORAGE", None)
    yield
    os.environ["HMTL_OPTUNA_STORAGE"] = "none"


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray instance (2 CPUs, dashboard on 127.0.0.1) shared by the session.

    Ray's worker processes inherit the environment of the moment Ray starts, so the fake
    AWS credentials (and nothing real) are in place before it does.
    """
    import os

    import ray

    from hmtl.orchestration.platform.cluster import init_ray

    os.environ.update(FAKE_AWS)
    init_ray(None, num_cpus=2)
    yield ray
    ray.shutdown()


# Fake, distinctive credentials: the tests scan MLflow and Tune's state for these values.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "AKIAHMTLTESTKEY7F3A",
    "AWS_SECRET_ACCESS_KEY": "hmtl-test-secret-9c1e4b",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 with one bucket, fake credentials in the environment.

    Yields `endpoint` (http://127.0.0.1:PORT), `bucket`, and `uri(prefix)`, an
    `s3://bucket/prefix?endpoint_override=...` URI for the project's storage helpers.
    """
    import shutil
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path
    from types import SimpleNamespace

    import boto3

    exe = Path(sys.executable).with_name("moto_server")
    exe = str(exe) if exe.exists() else shutil.which("moto_server")
    if exe is None:
        pytest.skip("moto_server (moto[server]) is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto_server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in FAKE_AWS.items():
                mp.setenv(key, value)
            mp.delenv("HMTL_S3_ENDPOINT", raising=False)
            bucket = "hmtl-test"
            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
            yield SimpleNamespace(
                endpoint=endpoint,
                bucket=bucket,
                uri=lambda prefix: f"s3://{bucket}/{prefix}?endpoint_override={endpoint}",
            )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def mlflow_s3(s3_server, tmp_path_factory):
    """`mlflow server` on 127.0.0.1 (tests/mlflow_server.py): SQLite runs in its `folder`,
    artifacts in the moto bucket. Yields the server (`url`, `folder`)."""
    from mlflow_server import MlflowServer

    server = MlflowServer(
        tmp_path_factory.mktemp("mlflow-server"),
        artifacts=f"s3://{s3_server.bucket}/mlflow",
        env={"MLFLOW_S3_ENDPOINT_URL": s3_server.endpoint},
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_sweep(local_ray, s3_server, mlflow_s3, tmp_path_factory):
    """One two-trial sweep on S3 through `hmtl sweep --json`, tracked by the MLflow server,
    shared by tracking/test_tracking_s3.py (what it stored) and platform/test_security.py
    (no credential in any of it; Ray listening on loopback only). The listening sockets of
    this process and its descendants are sampled every 0.5 s while it runs.

    Yields `summary` (the JSON), `output` (all it printed), `storage`, `sweep` (the sweep's
    URI) and `sockets` ((pid, name) -> addresses)."""
    import json
    import threading
    import time
    from types import SimpleNamespace

    import yaml
    from click.testing import CliRunner
    from helpers import listening, tiny_space

    from hmtl.orchestration.cli.main import main

    tmp_path = tmp_path_factory.mktemp("s3-sweep")
    space = tiny_space(
        tmp_path, name="it-s3", num_samples=2, space={"optim.lr": "loguniform(1e-4, 1e-2)"}
    )
    space_file = tmp_path / "space.yaml"
    raw = space.model_dump(mode="json")
    raw["base"] = space.base_tree()
    space_file.write_text(yaml.safe_dump(raw))
    storage = s3_server.uri("runs")
    sockets: dict[tuple[int, str], set[str]] = {}
    running = threading.Event()
    running.set()

    def sample() -> None:
        while running.is_set():
            for key, addresses in listening(os.getpid()).items():
                sockets.setdefault(key, set()).update(addresses)
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        args = ["sweep", str(space_file), "--storage", storage, "--tracking-uri", mlflow_s3.url]
        result = CliRunner().invoke(main, [*args, "--json"])
    finally:
        running.clear()
        sampler.join()
    assert result.exit_code == 0, result.output
    return SimpleNamespace(
        summary=json.loads(result.stdout),
        output=result.output,
        storage=storage,
        sweep=storage.replace("/runs?", "/runs/sweeps/it-s3?"),
        sockets=sockets,
    )
