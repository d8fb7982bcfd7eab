"""Sweeps on real local Ray: trials, checkpoints, ASHA pruning recorded in Optuna, refusal."""

from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from helpers import tiny_space
from mlflow.tracking import MlflowClient
from ray.tune import Callback

from hmtl.orchestration.cli.main import main
from hmtl.orchestration.sweep.run import run_sweep, sweep_path
from hmtl.orchestration.sweep.search import HmtlOptunaSearch
from hmtl.orchestration.tracking.callback import default_tracking_uri
from hmtl.orchestration.tracking.tags import ROLE_TAG
from hmtl.search_spaces import shipped


@pytest.fixture(scope="module", autouse=True)
def _optuna_mirror_on(optuna_mirror):
    """This file checks the sweep's Optuna database: the mirror is on for it."""


pytestmark = pytest.mark.integration


def _trial_runs(tracking_uri, sweep):
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(sweep)
    runs = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'trial'")
    return client, runs


def test_three_trials_two_epochs_with_checkpoints_and_runs(local_ray, tmp_path):
    space = tiny_space(tmp_path)
    tracking = default_tracking_uri(str(tmp_path))
    result = run_sweep(space, str(tmp_path), tracking)
    assert result.trials == 3 and result.errors == 0
    assert result.best_trial is not None and Path(result.best_checkpoint).is_dir()
    trial_dirs = sorted(Path(sweep_path(str(tmp_path), "it-sweep")).glob("trial-*"))
    assert len(trial_dirs) == 3
    for trial_dir in trial_dirs:
        assert len(list(trial_dir.glob("checkpoint_*/checkpoint.pt"))) == 2
    client, runs = _trial_runs(tracking, "it-sweep")
    assert len(runs) == 3
    for run in runs:
        history = client.get_metric_history(run.info.run_id, "val/balanced_accuracy")
        assert sorted(m.step for m in history) == [1, 2]
        assert run.data.params["schedule.epochs"] == "2"
        # Compute accounting: one 1-CPU worker, so CPU core-seconds equal wall seconds.
        cost = client.get_metric_history(run.info.run_id, "cost/device_seconds")
        seconds = [m.value for m in sorted(cost, key=lambda m: m.step)]
        assert len(seconds) == 2 and 0 < seconds[0] < seconds[1]
        assert seconds[1] == pytest.approx(run.data.metrics["time/wall_seconds"])
        assert run.data.metrics["cost/images_seen"] > 0


class LastResults(Callback):
    """Each trial's config and last result, as the sweep driver saw them."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[dict, dict]] = {}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.last[trial.trial_id] = (dict(trial.config), dict(result))


def test_a_reused_process_trains_a_config_as_a_fresh_one_did(local_ray, tmp_path):
    # One trial at a time, so every trial after the first runs in the process of the one
    # before (reuse_actors): the first two have the same values, the first in a fresh
    # process, the second in the same process after it.
    same = {"optim.lr": 0.003, "tasks.loss_weights.rotation": 0.5}
    space = tiny_space(
        tmp_path,
        name="it-reuse",
        num_samples=3,
        max_concurrent_trials=1,
        search={"sampler": "random", "seed": 0, "points_to_evaluate": [same, same]},
    )
    seen = LastResults()
    result = run_sweep(space, str(tmp_path), default_tracking_uri(str(tmp_path)), callbacks=[seen])
    assert result.trials == 3 and result.errors == 0
    assert len({r["pid"] for _, r in seen.last.values()}) == 1  # one process trained all three
    fresh, reused = [r for config, r in seen.last.values() if config == same]
    assert fresh["epoch"] == reused["epoch"] == 2
    for key in ("train/loss", "val/accuracy", "val/balanced_accuracy", "test/accuracy"):
        assert reused[key] == pytest.approx(fresh[key], rel=0, abs=1e-12), key


def test_asha_stop_is_recorded_as_pruned(local_ray, tmp_path):
    # Trials run one at a time; the second carries a huge jigsaw weight, so its train/loss
    # at the first rung is far worse than the first trial's and ASHA stops it there. The
    # third then trains in the stopped trial's process (reuse_actors) to the end.
    space = tiny_space(
        tmp_path,
        epochs=3,
        name="it-asha",
        num_samples=3,
        max_concurrent_trials=1,
        metric="train/loss",
        mode="min",
        scheduler={"type": "asha", "max_epochs": 3, "grace_period": 1, "reduction_factor": 2},
        search={
            "sampler": "tpe",
            "seed": 0,
            "points_to_evaluate": [
                {"tasks.loss_weights.jigsaw": 0},
                {"tasks.loss_weights.jigsaw": 50},
                {"tasks.loss_weights.jigsaw": 0},
            ],
        },
        space={"tasks.loss_weights.jigsaw": "choice(0, 50)"},
    )
    seen = LastResults()
    result = run_sweep(space, str(tmp_path), default_tracking_uri(str(tmp_path)), callbacks=[seen])
    assert result.trials == 3 and result.errors == 0
    assert len({r["pid"] for _, r in seen.last.values()}) == 1
    searcher = HmtlOptunaSearch(space, metric="train/loss", mode="min")
    searcher.restore_from_dir(sweep_path(str(tmp_path), "it-asha"))
    states = [t.state for t in searcher._ot_study.trials]
    complete, pruned = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED
    assert states == [complete, pruned, complete]
    pruned = searcher._ot_study.trials[1]
    assert pruned.params == {"tasks.loss_weights.jigsaw": 50}
    assert list(pruned.intermediate_values) == [1]

    # The same study in the Optuna database optuna-dashboard opens (beside mlflow.db), one
    # trial per Tune trial, with the same states, values and per-epoch values.
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    assert result.optuna_storage == storage and result.optuna_study == "it-asha"
    stored = optuna.load_study(study_name="it-asha", storage=storage)
    assert stored.metric_names == ["train/loss"]
    assert sorted(t.user_attrs["hmtl.trial_id"] for t in stored.trials) == sorted(seen.last)
    for kept, own in zip(stored.trials, searcher._ot_study.trials, strict=True):
        assert (kept.state, kept.values, kept.params) == (own.state, own.values, own.params)
        assert kept.intermediate_values == own.intermediate_values


def test_infeasible_request_is_refused_before_anything_starts(local_ray, tmp_path):
    path = tmp_path / "gpu.yaml"
    path.write_text(
        "name: too-big\nnum_samples: 1\nbase: demo\nresources: {gpus_per_worker: 2}\n"
        "space:\n  optim.lr: loguniform(1e-4, 1e-2)\n"
    )
    result = CliRunner().invoke(main, ["sweep", str(path), "--storage", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "2 GPUs per worker but the largest node has 0" in result.output
    assert not (tmp_path / "sweeps" / "too-big").exists()


@pytest.fixture(scope="module")
def smoke_storage(tmp_path_factory):
    """One storage folder for every shipped space's smoke sweep: the sweeps have their own
    names, and share the tracking database and the drawn faces rather than each making its
    own (a database's migration alone is about 2 s of CPU)."""
    return tmp_path_factory.mktemp("smoke")


@pytest.mark.parametrize("name", sorted(shipped()))
def test_every_shipped_space_runs_in_smoke_mode(local_ray, smoke_storage, name):
    result = CliRunner().invoke(main, ["sweep", name, "--smoke", "--storage", str(smoke_storage)])
    assert result.exit_code == 0, result.output
    assert f"sweep {name}-smoke: 2 trials, 0 errored" in result.output
    assert "best trial" in result.output


def test_two_worker_trial_runs_data_parallel_through_torchtrainer(local_ray, tmp_path):
    space = tiny_space(
        tmp_path,
        name="it-ddp",
        num_samples=1,
        resources={"workers_per_trial": 2, "cpus_per_worker": 0.5, "gpus_per_worker": 0},
    )
    result = run_sweep(space, str(tmp_path), default_tracking_uri(str(tmp_path)))
    assert result.trials == 1 and result.errors == 0
    assert result.best_epoch in (1, 2) and result.best_metrics["epoch"] == result.best_epoch
    (trial_dir,) = Path(sweep_path(str(tmp_path), "it-ddp")).glob("trial-*")
    assert len(list(trial_dir.glob("train/checkpoint_*/checkpoint.pt"))) == 2
    assert "/train/checkpoint_" in result.best_checkpoint
    # Two workers of 0.5 CPU: 1 core-second per wall second. Both ranks' images count: 2
    # steps of 64 faces and 64 rotated ones (the space searches a rotation weight) a rank.
    m = result.best_metrics
    assert m["cost/device_seconds"] == pytest.approx(m["time/wall_seconds"])
    assert m["cost/images_seen"] == 2 * 2 * (64 + 64) * m["epoch"]


def test_missing_dataset_is_refused_before_ray_starts(tmp_path):
    path = tmp_path / "fer.yaml"
    path.write_text(
        "name: fer\nnum_samples: 1\nbase: {data: {source: nowhere/fer2013}}\n"
        "space:\n  optim.lr: loguniform(1e-4, 1e-2)\n"
    )
    result = CliRunner().invoke(main, ["sweep", str(path), "--storage", str(tmp_path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert "data.source: nowhere/fer2013: no such file or folder" in lines[-1]
    assert "Traceback" not in result.output


def test_multi_objective_nsga2_sweep(local_ray, tmp_path):
    space = tiny_space(
        tmp_path,
        name="it-nsga2",
        num_samples=2,
        scheduler=None,
        metric=["val/balanced_accuracy", "train/images_per_sec"],
        mode=["max", "max"],
        search={"sampler": "nsga2", "seed": 0},
    )
    result = run_sweep(space, str(tmp_path), default_tracking_uri(str(tmp_path)))
    assert result.trials == 2 and result.errors == 0
    searcher = HmtlOptunaSearch(space, metric=space.metrics, mode=space.modes)
    searcher.restore_from_dir(sweep_path(str(tmp_path), "it-nsga2"))
    trials = searcher._ot_study.trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert all(len(t.values) == 2 for t in trials)
