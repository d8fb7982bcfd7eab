"""Looked at as a user would: `mlflow ui` on a finished tiny sweep, pages rendered by
headless Chromium, checked for the training-runs view, the dataset and the model.

Skipped where Chromium is absent (Debian: `apt-get install -y chromium`). The page hmtl
prints after a sweep is the one loaded here: MLflow 3.17's UI picks its GenAI or
machine-learning view by a sidebar switch or `?workflowType=`, not by the experiment tag.
"""

import html
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from helpers import tiny_space
from mlflow.tracking import MlflowClient

from hmtl.orchestration.sweep.run import run_sweep
from hmtl.orchestration.tracking.callback import default_tracking_uri
from hmtl.orchestration.tracking.native import training_view_path
from hmtl.orchestration.tracking.probe import create_local_store
from hmtl.orchestration.tracking.tags import ROLE_TAG

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _render(url: str, profile, expect: list[str], tries: int = 3) -> str:
    """The visible text of `url` once rendered (retried while an expected text is missing:
    the page fetches its data after it loads)."""
    for _ in range(tries):
        shutil.rmtree(profile, ignore_errors=True)
        dom = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=20000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", dom, flags=re.S)
        text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)))
        if all(needle in text for needle in expect):
            break
    return text


@pytest.fixture
def mlflow_ui(tmp_path):
    """Start `mlflow ui` on a SQLite store in tmp_path: yields a function of the store URI
    that launches it and returns a function waiting until it answers (its URL)."""
    procs = []

    def start(tracking_uri: str):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        log = open(tmp_path / "mlflow-ui.log", "wb")  # noqa: SIM115 - the server's lifetime
        cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri]
        cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
        url = f"http://127.0.0.1:{port}"

        def ready() -> str:
            deadline = time.monotonic() + 180  # slow to import on a loaded 2-core machine
            while True:
                try:
                    urllib.request.urlopen(f"{url}/health", timeout=2).close()
                    return url
                except OSError:
                    if procs[-1].poll() is not None or time.monotonic() > deadline:
                        pytest.fail((tmp_path / "mlflow-ui.log").read_text()[-2000:])
                    time.sleep(0.5)

        return ready

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
def test_the_ui_shows_training_runs_with_dataset_and_model(local_ray, tmp_path, mlflow_ui):
    space = tiny_space(tmp_path, name="it-ui", epochs=1, num_samples=2, max_concurrent_trials=1)
    tracking = default_tracking_uri(str(tmp_path))
    create_local_store(tracking)
    ready = mlflow_ui(tracking)  # the server starts (imports, seconds) while the sweep runs
    result = run_sweep(space, str(tmp_path), tracking, verbose=0)
    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("it-ui").experiment_id
    runs = client.search_runs([experiment], f"tags.`{ROLE_TAG}` = 'trial'")
    best = next(r for r in runs if r.data.tags["hmtl.trial_id"] == result.best_trial)
    dataset = best.inputs.dataset_inputs[0].dataset.name
    url = ready()
    profile = tmp_path / "chromium-profile"

    page = training_view_path(tracking, "it-ui")
    assert page == f"/#/experiments/{experiment}?workflowType=machine_learning"
    shown = _render(url + page, profile, ["Dataset", dataset])
    assert "Runs" in shown and "Token Usage" not in shown  # training runs, not GenAI overview
    # The trials fold under the parent run, whose Dataset cell names the sweep's dataset.
    assert "Dataset" in shown and dataset in shown and "3 matching runs" in shown

    models = f"{url}/#/experiments/{experiment}/models?workflowType=machine_learning"
    shown = _render(models, profile, ["Logged from", "expression-classifier"])
    assert shown.count("expression-classifier") == 2 and shown.count("Ready") == 2
    assert all(f"trial-{r.data.tags['hmtl.trial_id']}" in shown for r in runs)

    run = f"{url}/#/experiments/{experiment}/runs/{best.info.run_id}?workflowType=machine_learning"
    shown = _render(run, profile, ["Logged models (1)", dataset])
    assert "Logged models (1)" in shown and "expression-classifier" in shown
    assert "Datasets" in shown and dataset in shown
