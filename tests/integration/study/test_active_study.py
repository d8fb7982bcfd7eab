"""An `active` study stage on local Ray with SQLite MLflow: 3 strategies x 2 seeds, each one
Tune trial running the active-learning loop (2 cycles of 1 epoch on a few hundred faces);
its per-cycle rows, its trials' tags and per-cycle MLflow metrics, and its report; and a
study killed inside the stage, resumed."""

import csv
import json
from pathlib import Path

import kill
import pytest
import yaml
from mlflow.tracking import MlflowClient
from ray.tune.trainable.metadata import _TrainingRunMetadata

from hmtl.orchestration.platform.store import Store
from hmtl.orchestration.study.engine import resume_study, run_study
from hmtl.orchestration.study.report.active import active_rows
from hmtl.orchestration.study.spec import load_study
from hmtl.orchestration.tracking.callback import default_tracking_uri
from hmtl.orchestration.tracking.tags import ROLE_TAG

pytestmark = pytest.mark.integration

STRATEGIES = ["random", "margin", "coreset"]


def _study_file(
    tmp_path: Path, strategies: list[str] = STRATEGIES, cycles: int = 2, repeats: int = 2
) -> Path:
    base = {
        "data": {
            "image_size": 48,
            "batch_size": 32,
            "cache_dir": str(tmp_path / "datasets"),
            "synthetic": {"num_samples": 400, "num_identities": 20},
        },
        "model": {"width": 8},
        "schedule": {"epochs": 1, "warmup_epochs": 0.0},
        "runtime": {"device": "cpu", "num_threads": 1},
    }
    stage = {
        "name": "al",
        "kind": "active",
        "strategies": strategies,
        "loop": {"initial_fraction": 0.2, "budget_fraction": 0.1, "cycles": cycles},
        "repeats": repeats,
    }
    raw = {"name": "it-active", "metric": "test/accuracy", "base": base, "stages": [stage]}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_active_stage_runs_strategies_by_seed_with_tags_metrics_and_report(local_ray, tmp_path):
    storage = tmp_path / "runs"
    tracking = default_tracking_uri(str(storage))
    spec = load_study(_study_file(tmp_path))
    result = run_study(spec, str(storage), tracking, echo=lambda line: None)
    assert result.stopped_at is None and result.outputs["al"]["trials"] == 6

    study_path = storage / "studies" / "it-active"
    rows = active_rows(Store.open(str(study_path / "sweeps" / "al")), spec.metric, None)
    runs = {(r["strategy"], r["seed"]) for r in rows}
    assert runs == {(s, seed) for s in STRATEGIES for seed in (0, 1)}
    assert all(r["finished"] and 0.0 <= r["value"] <= 1.0 for r in rows)
    for strategy, seed in runs:
        mine = sorted(
            (r["cycle"], r["labelled_fraction"])
            for r in rows
            if (r["strategy"], r["seed"]) == (strategy, seed)
        )
        assert [c for c, _ in mine] == [0, 1]
        assert mine[1][1] > mine[0][1]  # the budget was labelled between the cycles

    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("it-active")
    trials = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'trial'")
    tagged = sorted((t.data.tags["hmtl.arm"], t.data.tags["hmtl.seed"]) for t in trials)
    assert tagged == sorted((s, str(seed)) for s in STRATEGIES for seed in (0, 1))
    assert {t.data.tags["hmtl.study"] for t in trials} == {"it-active"}
    assert {t.data.tags["hmtl.stage"] for t in trials} == {"al"}
    history = client.get_metric_history(trials[0].info.run_id, "al/test_accuracy")
    assert sorted(m.step for m in history) == [0, 1]  # the cycle is the step
    assert {t.data.params["active.strategy"] for t in trials} == set(STRATEGIES)
    maps = [a.path for a in client.list_artifacts(trials[0].info.run_id, "active/cycle_001")]
    assert maps == ["active/cycle_001/labelled_map.json"]

    folder = study_path / "report" / "al"
    for name in ("report.md", "curves.png", "curves.csv", "auc.csv", "trials.csv"):
        assert (folder / name).is_file(), name
    with (folder / "auc.csv").open() as f:
        auc = {r["strategy"]: r for r in csv.DictReader(f)}
    assert set(auc) == set(STRATEGIES) and auc["random"]["diff"] == ""
    assert all(auc[s]["n"] == "2" and auc[s]["diff"] != "" for s in ("margin", "coreset"))
    assert "AUC - random" in result.markdown and "coreset" in result.markdown


def _checkpointed(stage: Path) -> list[str]:
    """Trial ids with a registered checkpoint in Tune's saved experiment state: what a
    restored trial is handed back. (Not `last_result`'s checkpoint_dir_name: Tune records the
    result before the save task registers its checkpoint, and can save its state in between.)"""
    found = []
    for path in stage.glob("experiment_state-*.json"):
        try:
            trials = json.loads(path.read_text())["trial_data"]
        except (json.JSONDecodeError, KeyError, OSError):
            continue  # being rewritten
        for trial, runtime in trials:
            manager = _TrainingRunMetadata.from_json_state(runtime).checkpoint_manager
            if manager is not None and manager.latest_checkpoint_result is not None:
                found.append(json.loads(trial)["trial_id"])
    return found


@pytest.mark.slow
def test_killed_active_stage_resumes_each_trial_from_its_last_cycle(local_ray, tmp_path):
    path = _study_file(tmp_path, strategies=["random", "margin"], cycles=3, repeats=1)
    storage = tmp_path / "runs"
    study_path = storage / "studies" / "it-active"
    stage = study_path / "sweeps" / "al"
    address = local_ray.get_runtime_context().gcs_address
    proc = kill.start("study", str(path), "--storage", str(storage), "--address", address)
    # Kill once Tune's saved state holds a cycle checkpoint.
    started = kill.kill_when(
        proc,
        lambda: [stage / f"trial-{t}" for t in _checkpointed(stage)],
        "an active-learning cycle checkpoint in Tune's state",
    )

    known = started[0]  # the trial whose cycle checkpoint Tune had recorded at the kill

    result = resume_study(str(study_path), address=address, echo=lambda line: None)

    assert result.stopped_at is None and result.outputs["al"]["trials"] == 2
    for trial in stage.glob("trial-*"):
        lines = (trial / "result.json").read_text().splitlines()
        cycles = [json.loads(line)["al/cycle"] for line in lines if line.strip()]
        assert sorted(set(cycles)) == [0, 1, 2], (trial.name, cycles)
        if trial == known:  # resumed from its checkpoint: its first cycle never ran again
            assert cycles.count(0) == 1, cycles
    client = MlflowClient(default_tracking_uri(str(storage)))
    experiment = client.get_experiment_by_name("it-active")
    trials = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'trial'")
    assert len(trials) == 2
    for run in trials:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "al/test_accuracy")]
        assert sorted(steps) == [0, 1, 2] and run.info.status == "FINISHED"
