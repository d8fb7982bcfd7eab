"""`hmtl submit` / `logs` / `stop` against a real two-node Ray cluster on this machine.

The cluster: `ray start --head --num-cpus 0` (dashboard and jobs API on 127.0.0.1, token
authentication on) and a second `ray start --address ... --num-cpus 2` node. The head has
no CPU, so the job's driver (the job supervisor, which needs none, always on the head) is
the only thing that can run there, and every trial (1 CPU each) must be placed on the
second node; the test checks that through the state API rather than assuming it. Storage
is the session's moto S3 server; MLflow is a SQLite file, fine here only because both
"nodes" share this machine's disk.

Isolation from other Ray instances on the machine: every port is chosen free, each node
has its own `--temp-dir` in one fresh short folder (nodes sharing a temp dir also share the
folder where runtime environments are unpacked, and one node's cleanup deletes the other's
working directory), and the token lives in a file of that folder
(`RAY_AUTH_TOKEN_PATH`, never ~/.ray/auth_token). Cleanup never uses `ray stop`, which
kills every Ray process on the machine (it matches by process name): each `ray start
--block` runs in a new session, so its process group holds exactly the processes it
started (GCS, raylet, dashboard, workers); teardown signals those two groups, then kills
any process still naming the temp dir on its command line.
"""

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
import requests
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from hmtl.orchestration.cli.main import main
from hmtl.orchestration.tracking.tags import ROLE_TAG
from hmtl.trainables.data.storage import join

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SWEEP = "quickstart-smoke"
JOB_TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _ray_start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    ray = str(Path(sys.executable).with_name("ray"))
    ports = []
    for flag in (
        "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port",
        "--runtime-env-agent-port",
        "--metrics-export-port",
    ):
        ports += [flag, str(_free_port())]
    with open(log, "wb") as out:
        return subprocess.Popen(
            [ray, "start", "--block", "--disable-usage-stats", *args, *ports],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: what teardown signals
        )


def _stop_group(proc: subprocess.Popen, grace_s: float = 10) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError):  # whatever is left of the group
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _stragglers(temp_dir: str) -> list[int]:
    """Processes whose command line names our temp dir: started by this cluster only."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
        except OSError:
            continue
        if temp_dir in cmdline:
            found.append(int(entry.name))
    return found


def _wait_for(check, what: str, logs: list[Path], procs, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        dead = [p for p in procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            tails = "\n".join(f"--- {log.name}\n{log.read_text()[-1500:]}" for log in logs)
            pytest.fail(f"{what} {'exited' if dead else 'timed out'}:\n{tails}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def cluster(s3_server):
    """Head (0 CPUs, dashboard 127.0.0.1, token auth) + a 2-CPU worker node."""
    temp_dir = tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: Unix socket paths < 108
    token = secrets.token_hex(24)
    token_file = Path(temp_dir, "auth_token")
    token_file.write_text(token)
    token_file.chmod(0o600)
    # The raylets and every worker inherit this: the fake AWS credentials s3_server put in
    # os.environ, token mode with this cluster's token, and the venv first on PATH (the
    # job's `python` is looked up there).
    env = os.environ.copy()
    env.pop("RAY_AUTH_TOKEN", None)
    env.pop("RAY_ADDRESS", None)
    env.update(
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(token_file),
        RAY_USAGE_STATS_ENABLED="0",
        RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0",  # SIGTERM tears down without draining
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    gcs_port, dashboard_port = _free_port(), _free_port()
    common = [
        "--node-ip-address",
        "127.0.0.1",
        "--object-store-memory",
        str(100 * 2**20),
        "--min-worker-port",
        "0",
        "--max-worker-port",
        "0",
    ]
    address = f"http://127.0.0.1:{dashboard_port}"
    headers = {"Authorization": f"Bearer {token}"}
    logs = [Path(temp_dir, "head.log"), Path(temp_dir, "worker.log")]
    procs = []
    try:
        procs.append(
            _ray_start(
                [
                    "--head",
                    "--port",
                    str(gcs_port),
                    "--dashboard-host",
                    "127.0.0.1",
                    "--dashboard-port",
                    str(dashboard_port),
                    "--ray-client-server-port",
                    str(_free_port()),
                    "--num-cpus",
                    "0",
                    "--temp-dir",
                    str(Path(temp_dir, "head")),
                    *common,
                ],
                env,
                logs[0],
            )
        )

        def dashboard_up() -> bool:
            try:
                return requests.get(f"{address}/api/version", headers=headers, timeout=2).ok
            except requests.RequestException:
                return False

        _wait_for(dashboard_up, "the head node", logs[:1], procs)
        worker = ["--address", f"127.0.0.1:{gcs_port}", "--num-cpus", "2"]
        worker += ["--temp-dir", str(Path(temp_dir, "worker")), *common]
        procs.append(_ray_start(worker, env, logs[1]))

        def alive_nodes() -> list[dict]:
            answer = requests.get(f"{address}/api/v0/nodes", headers=headers, timeout=10).json()
            nodes = answer["data"]["result"]["result"]
            alive = [n for n in nodes if n["state"] == "ALIVE"]
            return alive if len(alive) == 2 else []

        nodes = _wait_for(alive_nodes, "the second node", logs, procs)
        yield SimpleNamespace(
            address=address,
            token=token,
            token_file=token_file,
            head_id=next(n["node_id"] for n in nodes if n["is_head_node"]),
            worker_id=next(n["node_id"] for n in nodes if not n["is_head_node"]),
            headers=headers,
            logs=logs,
        )
    finally:
        for proc in reversed(procs):
            _stop_group(proc)
        for pid in _stragglers(temp_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def with_token(cluster, monkeypatch):
    """The client finds the token where users keep it: a file named by RAY_AUTH_TOKEN_PATH."""
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(cluster.token_file))
    return cluster


def _job_ids(cluster) -> set[str]:
    answer = requests.get(f"{cluster.address}/api/jobs/", headers=cluster.headers, timeout=10)
    answer.raise_for_status()
    return {job["submission_id"] for job in answer.json()}


def _invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_submission_without_the_token_is_refused(cluster, tmp_path, monkeypatch, s3_server):
    before = _job_ids(cluster)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # no ~/.ray/auth_token
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(name, raising=False)
    storage = s3_server.uri("refused")
    result = _invoke(
        "submit", "quickstart", "--smoke", "--address", cluster.address, "--storage", storage,
        "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "authentication" in lines[0], result.output
    assert "Traceback" not in result.output
    # A wrong token is refused too, and not echoed.
    monkeypatch.setenv("RAY_AUTH_TOKEN", "not-" + cluster.token)
    result = _invoke("logs", "raysubmit_none", "--address", cluster.address)
    assert result.exit_code == 2 and "authentication failed" in result.output
    assert cluster.token not in result.output
    assert _job_ids(cluster) == before


def test_local_storage_is_refused_on_two_nodes(with_token, tmp_path):
    before = _job_ids(with_token)
    result = _invoke(
        "submit", "quickstart", "--smoke", "--address", with_token.address,
        "--storage", str(tmp_path / "runs"),
    )  # fmt: skip
    assert result.exit_code == 2
    assert re.fullmatch(
        rf"hmtl: error: --storage {re.escape(str(tmp_path / 'runs'))}: a local path, but the "
        r"cluster has 2 nodes, .*\n",
        result.output,
    ), result.output
    result = _invoke("submit", "quickstart", "--smoke", "--address", with_token.address)
    assert result.exit_code == 2
    assert "--storage s3://... is required on a cluster of 2 nodes" in result.output
    sweep = str(tmp_path / "runs" / "sweeps" / "quickstart")
    result = _invoke("submit", "--resume", sweep, "--address", with_token.address)
    assert result.exit_code == 2
    assert f"--resume {sweep}: a local path, but the cluster has 2 nodes" in result.output
    assert _job_ids(with_token) == before


def test_unknown_job_and_unreachable_address(with_token):
    result = _invoke("logs", "raysubmit_nosuchjob", "--address", with_token.address)
    assert result.exit_code == 2
    assert result.output == f"hmtl: error: no job raysubmit_nosuchjob on {with_token.address}\n"
    # A bare HOST:PORT is a Ray address, as for `ray job`; nothing listening is one line.
    port = _free_port()
    result = _invoke("stop", "raysubmit_nosuchjob", "--address", f"127.0.0.1:{port}")
    assert result.exit_code == 2
    assert result.output.startswith(f"hmtl: error: --address 127.0.0.1:{port}: nothing answers")
    result = _invoke("stop", "raysubmit_nosuchjob", "--address", f"http://127.0.0.1:{port}")
    assert result.exit_code == 2 and "cannot reach the Ray jobs API" in result.output


def test_submitted_sweep_runs_its_trials_on_the_second_node(with_token, s3_server, tmp_path):
    from ray.job_submission import JobStatus, JobSubmissionClient
    from ray.util.state import StateApiClient
    from ray.util.state.common import ListApiOptions, StateResource

    cluster = with_token
    storage = s3_server.uri("cluster")
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    result = _invoke(
        "submit", "quickstart", "--smoke", "--address", cluster.address,
        "--storage", storage, "--tracking-uri", tracking,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    job_id = re.search(r"submitted job (\S+) to ", result.output).group(1)
    assert f"hmtl logs {job_id} --address {cluster.address} --follow" in result.output
    assert f"hmtl stop {job_id} --address {cluster.address}" in result.output
    assert cluster.token not in result.output

    jobs = JobSubmissionClient(cluster.address, headers=cluster.headers)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not (status := jobs.get_job_status(job_id)).is_terminal():
        assert time.monotonic() < deadline, jobs.get_job_logs(job_id)[-4000:]
        time.sleep(2)
    assert status == JobStatus.SUCCEEDED, jobs.get_job_logs(job_id)[-6000:]

    # The token never reached the job: not in its command line, environment or metadata.
    info = jobs.get_job_info(job_id)
    assert cluster.token not in repr((info.entrypoint, info.runtime_env, info.metadata))
    assert info.entrypoint.startswith("python -m hmtl sweep quickstart ")
    assert info.driver_node_id == cluster.head_id

    # `hmtl logs` shows the sweep's summary; `hmtl stop` on a finished job says how it ended.
    result = _invoke("logs", job_id, "--address", cluster.address)
    assert result.exit_code == 0 and f"sweep {SWEEP}: 2 trials, 0 errored" in result.output
    result = _invoke("logs", job_id, "--address", cluster.address, "--follow")
    assert result.exit_code == 0 and result.output.endswith(f"\njob {job_id}: SUCCEEDED\n")
    result = _invoke("stop", job_id, "--address", cluster.address)
    assert result.output == f"job {job_id}: SUCCEEDED\n"

    # The sweep is in the bucket: manifest, experiment state, one folder per trial.
    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint)
    prefix = f"cluster/sweeps/{SWEEP}/"
    listing = s3.list_objects_v2(Bucket=s3_server.bucket, Prefix=prefix)
    keys = [o["Key"][len(prefix) :] for o in listing.get("Contents", [])]
    assert "hmtl-sweep.json" in keys
    trials = sorted({k.split("/")[0] for k in keys if k.startswith("trial-")})
    assert len(trials) == 2, keys
    result = _invoke("status", join(storage, "sweeps", SWEEP))
    assert result.exit_code == 0 and "2 trials (2 TERMINATED)" in result.output, result.output

    # MLflow (written by the driver on the head) has a child run per trial.
    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name(SWEEP)
    runs = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'trial'")
    assert len(runs) == 2

    # Where the trials ran: the state API lists this job's actors with their node and pid.
    # Each trial is one Tune function actor; the pid its results recorded must be one of
    # those actors', and every such actor must have lived on the second node.
    actors = StateApiClient(cluster.address, headers=cluster.headers).list(
        StateResource.ACTORS,
        options=ListApiOptions(filters=[("job_id", "=", info.job_id)], detail=True, limit=1000),
        raise_on_missing_output=False,
    )
    by_pid = {a.pid: a for a in actors}
    recorded = set()
    for trial in trials:
        body = s3.get_object(Bucket=s3_server.bucket, Key=f"{prefix}{trial}/result.json")["Body"]
        pids = {int(m) for m in re.findall(rb'"pid": (\d+)', body.read())}
        assert pids and pids <= set(by_pid), (trial, pids, sorted(by_pid))
        for pid in pids:
            assert by_pid[pid].node_id == cluster.worker_id, by_pid[pid]
        recorded |= pids
    # Tune's function actors (the state API names the class `ImplicitFunc` or with its
    # qualifier, `wrap_function.<locals>.ImplicitFunc`) are exactly the processes the trials
    # recorded: with reused actors two trials may share one.
    trial_actors = [a for a in actors if a.class_name.split(".")[-1] == "ImplicitFunc"]
    assert {a.pid for a in trial_actors} == recorded, [(a.class_name, a.pid) for a in actors]
    assert all(a.node_id == cluster.worker_id for a in trial_actors)


def test_stop_a_running_job(with_token, s3_server, tmp_path):
    from ray.job_submission import JobSubmissionClient

    result = _invoke(
        "submit", "quickstart", "--smoke", "--name", "to-stop", "--address", with_token.address,
        "--storage", s3_server.uri("stopped"), "--tracking-uri", f"sqlite:///{tmp_path}/m.db",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    job_id = re.search(r"submitted job (\S+) to ", result.output).group(1)
    jobs = JobSubmissionClient(with_token.address, headers=with_token.headers)
    assert not jobs.get_job_status(job_id).is_terminal()
    result = _invoke("stop", job_id, "--address", with_token.address)
    assert result.exit_code == 0 and result.output == f"job {job_id}: STOPPED\n", result.output
