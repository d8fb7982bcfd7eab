"""`hmtl train --tracking-uri`: the cost metrics reach the run folder and the MLflow run."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from orchestration.cli import main
from orchestration.cost import PRICE_ENV
from trainables.accounting import DEVICE_SECONDS, IMAGES_SEEN, USD, WALL_SECONDS

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
