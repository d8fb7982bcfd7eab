"""`hmtl train --tracking-uri`: the cost metrics reach the run folder and the MLflow run."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from hmtl.orchestration.cli.main import main
from hmtl.orchestration.platform.cost import PRICE_ENV, ray_rate
from hmtl.trainables.accounting import DEVICE_SECONDS, IMAGES_SEEN, USD, WALL_SECONDS

pytestmark = pytest.mark.integration


def test_hmtl_train_logs_cost_to_its_folder_and_mlflow(tiny_config, monkeypatch, tmp_path) -> None:
    cfg = tiny_config("runtime.device=cpu", "runtime.num_threads=1", "schedule.epochs=1")
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    monkeypatch.setenv(PRICE_ENV, "7.2")
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ["train", str(path), "--out", str(tmp_path / "run"), "--tracking-uri", tracking]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    (m,) = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert m[DEVICE_SECONDS] == pytest.approx(m[WALL_SECONDS])  # one thread: one core
    assert m[USD] == pytest.approx(7.2 / os.cpu_count() * m[WALL_SECONDS] / 3600)
    (run,) = MlflowClient(tracking).search_runs(["0", "1"])  # the run TrackedSession made
    assert run.data.metrics[DEVICE_SECONDS] == pytest.approx(m[DEVICE_SECONDS])
    assert run.data.metrics[IMAGES_SEEN] == m[IMAGES_SEEN] == 512


def test_a_trial_pays_its_share_of_the_ray_node_it_runs_on(local_ray, monkeypatch):
    # Local Ray's node has no price label, so the variable prices it (read where the rate is
    # computed: a trial's own process on a cluster, this test's driver here).
    monkeypatch.setenv(PRICE_ENV, "3.0")
    rate = ray_rate(cpus=1, gpus=0, workers=2)
    (node,) = [n for n in local_ray.nodes() if n["Alive"]]
    assert node["Resources"]["CPU"] == 2
    assert rate.devices == 2 and rate.usd_per_hour == pytest.approx(3.0 * (1 / 2) * 2)
    monkeypatch.delenv(PRICE_ENV)
    assert ray_rate(cpus=1, gpus=0).usd_per_hour is None
