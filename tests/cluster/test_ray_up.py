"""`ray up` of cluster.yaml's head with Ray's launcher, a sweep submitted to it, `ray down`.

The config comes from cluster.yaml at run time (swaps.py). To show that, the test runs a
temporary copy of cluster.yaml in which one start command is changed (the MLflow start
command also writes a marker file) and finds the marker on the head: what `ray up` runs is
what the file says. Then, as a user would: `ray dashboard` (Ray's SSH tunnel) for the jobs
API, `hmtl submit quickstart --smoke` with the token from ~/.ray/auth_token, `hmtl logs
--follow` to the end, the sweep's runs in the MLflow server cluster.yaml started, with
their artifacts in the bucket; a request without the token refused; `ray down`.
"""

import re
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import requests
from mlflow.tracking import MlflowClient

from hmtl.orchestration.platform.rehearsal.host import free_port
from hmtl.orchestration.platform.rehearsal.launcher import BUCKET, Rehearsal
from hmtl.orchestration.platform.rehearsal.timeline import TIMELINE

PROJECT = Path(__file__).resolve().parents[2]
MARKER = "/home/ray/hmtl-state/start-command-changed-by-the-test"
SWEEP = "quickstart-smoke"


def _changed_copy(tmp: Path) -> Path:
    """cluster.yaml with one of its start commands changed (text edit: comments kept)."""
    text = (PROJECT / "cluster.yaml").read_text()
    old = "mkdir -p /home/ray/hmtl-state/mlflow &&"
    assert text.count(old) == 1
    copy = tmp / "cluster.yaml"
    copy.write_text(text.replace(old, f"{old} touch {MARKER} &&"))
    return copy


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """cluster.yaml's head, up with `ray up`; `ray down` and everything removed after."""
    rehearsal = Rehearsal(_changed_copy(tmp_path_factory.mktemp("yaml")), PROJECT)
    try:
        rehearsal.open()
        with TIMELINE.step("ray up (head: rsync, setup_commands, Ray with token, MLflow)"):
            output = rehearsal.ray("up", "-y", "--no-config-cache", "--log-style", "record")
        for step, ms in re.findall(r"127\.0\.0\.1: (.+?) \[LogTimer=(\d+)ms\]", output):
            TIMELINE.mark(f"  ray up, {step}: {int(ms) / 1000:.1f} s")
        dashboard = free_port()
        rehearsal.background(
            [str(Path(sys.executable).with_name("ray")), "dashboard", "--port", str(dashboard),
             str(rehearsal.config_path)],
            "ray-dashboard",
        )  # fmt: skip
        mlflow_port, s3_port = rehearsal.tunnel(5000, 9000)
        rehearsal.address = f"http://127.0.0.1:{dashboard}"
        rehearsal.mlflow = f"http://127.0.0.1:{mlflow_port}"
        rehearsal.s3 = f"http://127.0.0.1:{s3_port}"
        _wait_ok(f"{rehearsal.address}/api/version", rehearsal)
        # MLflow creates its database first: about 40 s after `ray up` returns, on 2 cores.
        with TIMELINE.step("MLflow server on the head answers"):
            # A real query, answered quickly: the sweep's own probe allows MLflow 5 s.
            search = f"{rehearsal.mlflow}/api/2.0/mlflow/experiments/search?max_results=1"
            _wait_ok(search, rehearsal, timeout_s=300, fast_s=2)
        yield rehearsal
        with TIMELINE.step("ray down"):
            rehearsal.ray("down", "-y")
        assert "raylet" not in rehearsal.head.run("ps -eo args", check=False).stdout
    finally:
        rehearsal.close()


def _wait_ok(url: str, rehearsal, timeout_s: float = 60, fast_s: float = 5) -> None:
    """Until `url` answers 200 within `fast_s` seconds, three times in a row."""
    headers = {"Authorization": f"Bearer {rehearsal.token}"}
    deadline, good = time.monotonic() + timeout_s, 0
    while True:
        try:
            good = good + 1 if requests.get(url, headers=headers, timeout=fast_s).ok else 0
            if good == 3:
                return
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer"
        time.sleep(0.5)


def _hmtl(rehearsal, *args: str, timeout: float = 600, s3: bool = False):
    """`hmtl ARGS` from this machine; with `s3`, reading the bucket through the tunnel."""
    hmtl = str(Path(sys.executable).with_name("hmtl"))
    env = rehearsal.env()
    if s3:
        env.update(HMTL_S3_ENDPOINT=rehearsal.s3, AWS_ACCESS_KEY_ID="k",
                   AWS_SECRET_ACCESS_KEY="s", AWS_DEFAULT_REGION="us-east-1")  # fmt: skip
    return subprocess.run(
        [hmtl, *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_ray_up_ran_the_changed_start_command(head):
    assert head.head.run(f"test -f {MARKER}", check=False).returncode == 0
    nodes = requests.get(
        f"{head.address}/api/v0/nodes", headers={"Authorization": f"Bearer {head.token}"},
        timeout=10,
    ).json()["data"]["result"]["result"]  # fmt: skip
    assert [n["resources_total"].get("hmtl_driver") for n in nodes] == [100.0]


def test_a_request_without_the_token_is_refused(head):
    assert requests.get(f"{head.address}/api/jobs/", timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert requests.get(f"{head.address}/api/jobs/", headers=wrong, timeout=10).status_code == 403


def test_submitted_smoke_sweep_lands_in_mlflow_and_the_bucket(head):
    storage = f"s3://{BUCKET}/hmtl"
    with TIMELINE.step("hmtl submit quickstart --smoke, logs --follow to the end"):
        result = _hmtl(
            head, "submit", "quickstart", "--smoke", "--address", head.address,
            "--storage", storage, "--tracking-uri", "http://127.0.0.1:5000",
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        job = re.search(r"submitted job (\S+) to ", result.stdout).group(1)
        assert head.token not in result.stdout + result.stderr
        logs = _hmtl(head, "logs", job, "--address", head.address, "--follow")
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.endswith(f"\njob {job}: SUCCEEDED\n"), logs.stdout[-3000:]
    assert f"sweep {SWEEP}: 2 trials, 0 errored" in logs.stdout

    # The sweep's runs are in the MLflow server cluster.yaml started on the head.
    client = MlflowClient(head.mlflow)
    experiment = client.get_experiment_by_name(SWEEP)
    runs = client.search_runs([experiment.experiment_id])
    assert len([r for r in runs if r.data.tags.get("hmtl.role") == "trial"]) == 2, runs
    # ... with their artifacts in the bucket (served through the server), and the sweep too.
    s3 = boto3.client(
        "s3", endpoint_url=head.s3, region_name="us-east-1", aws_access_key_id="k",
        aws_secret_access_key="s",
    )  # fmt: skip
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert any(k.startswith("hmtl/mlflow/") for k in keys), keys
    assert f"hmtl/sweeps/{SWEEP}/hmtl-sweep.json" in keys, keys


def _s3(head):
    return boto3.client(
        "s3", endpoint_url=head.s3, region_name="us-east-1", aws_access_key_id="k",
        aws_secret_access_key="s",
    )  # fmt: skip


def _submitted(result) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return re.search(r"submitted job (\S+) to ", result.stdout).group(1)


@pytest.mark.rehearsal
def test_restart_only_mid_sweep_then_resume_from_s3(head):
    """`ray up --restart-only` (cluster.yaml's `ray stop`, then its start commands) while
    a sweep runs; `hmtl submit --resume` finishes it from S3, every epoch logged once."""
    name, storage = "restarted", f"s3://{BUCKET}/hmtl"
    # Sixteen trials, two at a time: the head restarts while later ones have not run yet.
    submit = [
        "submit", "quickstart", "--smoke", "--name", name, "--num-samples", "16",
        "--address", head.address, "--storage", storage, "--tracking-uri",
        "http://127.0.0.1:5000",
    ]  # fmt: skip
    job = _submitted(_hmtl(head, *submit))
    s3, prefix = _s3(head), f"hmtl/sweeps/{name}/"
    deadline = time.monotonic() + 600
    while not any(
        "checkpoint" in o["Key"]
        for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    ):
        assert time.monotonic() < deadline, "no checkpoint in S3"
        time.sleep(2)
    TIMELINE.mark("first checkpoint of the sweep in S3")
    with TIMELINE.step("ray up --restart-only mid-sweep"):
        head.ray("up", "-y", "--restart-only", "--no-config-cache")
    _wait_ok(f"{head.address}/api/version", head)
    # The job went with the head's Ray; the sweep in the bucket is unfinished.
    status = _hmtl(head, "status", f"s3://{BUCKET}/{prefix.rstrip('/')}", s3=True)
    assert status.returncode == 0 and "16 TERMINATED" not in status.stdout, status
    with TIMELINE.step("hmtl submit --resume after the restart, to the end"):
        resume = ["submit", "--resume", f"s3://{BUCKET}/{prefix.rstrip('/')}"]
        job = _submitted(_hmtl(head, *resume, "--address", head.address))
        logs = _hmtl(head, "logs", job, "--address", head.address, "--follow")
    assert logs.stdout.endswith(f"\njob {job}: SUCCEEDED\n"), logs.stdout[-3000:]
    client = MlflowClient(head.mlflow)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], "tags.`hmtl.role` = 'trial'")
    finished = _hmtl(head, "status", f"s3://{BUCKET}/{prefix.rstrip('/')}", s3=True).stdout
    trial_ids = set(re.findall(r"^([0-9a-f]{8})  ", finished, re.MULTILINE))
    logged = {r.data.tags.get("hmtl.trial_id") for r in runs}
    assert len(trial_ids) == 16 and trial_ids == logged, (
        f"trials without an MLflow run: {sorted(trial_ids - logged)}"
    )
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
        # Every epoch once: no gap, no repeat (ASHA may stop a trial after its first epoch).
        assert sorted(steps) == list(range(1, len(steps) + 1)) and steps, steps


def _keys(head, prefix: str) -> dict[str, str]:
    pages = _s3(head).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}


@pytest.mark.rehearsal
def test_a_study_stopped_in_its_second_stage_resumes_from_s3(head):
    """The shipped two-stage study hmtl_vs_pretraining (SimCLR pre-training, then 4 arms x
    augmentation levels; `--smoke`: 1 + 16 trials) submitted as a job, stopped while its
    second stage trains, resubmitted with --resume: the first stage is not run again, no
    trial twice, and the report lands in the bucket and in MLflow."""
    study, storage = "hmtl_vs_pretraining-smoke", f"s3://{BUCKET}/hmtl"  # --smoke's name
    prefix = f"hmtl/studies/{study}/"
    submit = [
        "submit", "hmtl_vs_pretraining", "--smoke", "--address", head.address,
        "--storage", storage, "--tracking-uri", "http://127.0.0.1:5000",
    ]  # fmt: skip
    job = _submitted(_hmtl(head, *submit))
    deadline = time.monotonic() + 900
    while f"{prefix}sweeps/compare/hmtl-sweep.json" not in _keys(head, prefix):
        assert time.monotonic() < deadline, _hmtl(head, "logs", job, "--address", head.address)
        time.sleep(1)
    TIMELINE.mark("study: second stage started; stopping the job")
    first = {k: v for k, v in _keys(head, f"{prefix}sweeps/pretrain/").items()}
    stopped = _hmtl(head, "stop", job, "--address", head.address)
    assert stopped.stdout == f"job {job}: STOPPED\n", stopped.stdout + stopped.stderr
    with TIMELINE.step("hmtl submit --resume of the study, to the end"):
        job = _submitted(_hmtl(head, "submit", "--resume", f"s3://{BUCKET}/{prefix.rstrip('/')}",
                               "--address", head.address))  # fmt: skip
        logs = _hmtl(head, "logs", job, "--address", head.address, "--follow")
    assert logs.stdout.endswith(f"\njob {job}: SUCCEEDED\n"), logs.stdout[-3000:]
    after = _keys(head, prefix)
    assert {k: after.get(k) for k in first} == first  # the first stage was not run again
    # With object storage the report is kept in MLflow, whose artifacts are in the bucket.
    assert any("/artifacts/report/" in k for k in _keys(head, "hmtl/mlflow/"))
    client = MlflowClient(head.mlflow)
    trials = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], "tags.`hmtl.role` = 'trial'"
    )
    for run in trials:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
        assert len(steps) == len(set(steps)), (run.info.run_name, steps)  # no epoch twice
    reported = [
        r for r in client.search_runs([e.experiment_id for e in client.search_experiments()])
        if any(a.path == "report" for a in client.list_artifacts(r.info.run_id))
    ]  # fmt: skip
    assert reported, "no MLflow run holds the study's report"
