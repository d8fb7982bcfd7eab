"""`hmtl active --tracking-uri`: one MLflow run, cycle-stepped metrics, a labelled map per cycle."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from hmtl.orchestration.cli.main import main

pytestmark = pytest.mark.integration


def test_tracked_active_run_logs_cycles_as_steps_and_labelled_maps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root for a SQLite store is ./mlruns
    tree = {
        "strategy": "coreset",
        "cycles": 3,
        "train": {
            "data": {
                "cache_dir": str(tmp_path / "datasets"),
                "image_size": 48,
                "batch_size": 32,
                "synthetic": {"num_samples": 320, "num_identities": 20},
            },
            "model": {"width": 8},
            "schedule": {"epochs": 1, "warmup_epochs": 0.0},
            "runtime": {"device": "cpu", "num_threads": 1},
        },
    }
    config = tmp_path / "active.yaml"
    config.write_text(yaml.safe_dump(tree))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "run"
    result = CliRunner().invoke(
        main, ["active", str(config), "--out", str(out), "--tracking-uri", uri]
    )
    assert result.exit_code == 0, result.output

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("hmtl-active")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["active.strategy"] == "coreset"
    history = client.get_metric_history(run.info.run_id, "al/test_accuracy")
    assert sorted(m.step for m in history) == [0, 1, 2]
    fractions = client.get_metric_history(run.info.run_id, "al/labelled_fraction")
    assert [m.value for m in sorted(fractions, key=lambda m: m.step)] == sorted(
        m.value for m in fractions
    )
    local = client.download_artifacts(run.info.run_id, "active/cycle_002", str(tmp_path / "a"))
    final = json.loads((Path(local) / "labelled_map.json").read_text())
    assert {c for c in final if c >= 0} == {0, 1, 2}

    # A run killed inside its last cycle: `--resume` continues the same MLflow run.
    shutil.rmtree(out / "checkpoint_000002")
    again = CliRunner().invoke(
        main, ["active", str(config), "--out", str(out), "--tracking-uri", uri, "--resume"]
    )
    assert again.exit_code == 0, again.output
    (same,) = client.search_runs([experiment.experiment_id])
    assert same.info.run_id == run.info.run_id and same.info.status == "FINISHED"
    steps = {m.step for m in client.get_metric_history(run.info.run_id, "al/test_accuracy")}
    assert steps == {0, 1, 2}
