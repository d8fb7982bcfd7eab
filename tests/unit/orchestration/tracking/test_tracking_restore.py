"""A sweep restored after its driver died, against a real SQLite MLflow: a trial that ended
before the killed driver's queue delivered anything still gets its whole run.

The restored trial is what Tune hands the callback after `Tuner.restore`: its id, config and
status, with its stored results (`result.json`) and checkpoints in the sweep's storage.
"""

import json
import pickle
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from hmtl.orchestration.platform.store import Store
from hmtl.orchestration.sweep.space import validate_space
from hmtl.orchestration.tracking.callback import MlflowCallback
from hmtl.orchestration.tracking.ops import OPS
from hmtl.orchestration.tracking.tags import CHECKPOINT_TAG, ROLE_TAG, SWEEP_TAG, TRIAL_TAG
from hmtl.trainables.checkpoint import save_checkpoint

SWEEP = "restored"
TRIAL = "0a1b2c3d"
EPOCHS = 2


@pytest.fixture(scope="module")
def sqlite_uri(tmp_path_factory):
    """One SQLite store for the module: creating its schema takes a few seconds."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    MlflowClient(uri).search_experiments(max_results=1)
    return uri


def stored_trial(store: Store) -> SimpleNamespace:
    """A finished trial as the sweep's storage holds it: Tune's `result.json` (one line per
    epoch, the last one cut short by the kill) and a checkpoint folder per epoch."""
    folder = store.child("sweeps", SWEEP, f"trial-{TRIAL}")
    lines = []
    for epoch in range(1, EPOCHS + 1):
        name = f"checkpoint_{epoch - 1:06d}"
        state = {"config": {"data": {"classes": 3}}, "metrics": {}, "epoch": epoch}
        state.update(model={}, optimizer={}, scheduler={}, rng={})  # no classifier to log
        save_checkpoint(folder.path(name), state)
        result = {
            "trial_id": TRIAL,
            "epoch": epoch,
            "train/loss": 1.0 / epoch,
            "val/balanced_accuracy": 0.2 * epoch,
            "checkpoint_dir_name": name,
        }
        lines.append(json.dumps(result) + "\n")
    store.write_text(f"sweeps/{SWEEP}/trial-{TRIAL}/result.json", "".join(lines) + '{"epo')
    return SimpleNamespace(
        trial_id=TRIAL, config={"optim.lr": 0.005}, status="TERMINATED", last_result=result
    )


def test_a_trial_restored_as_finished_without_a_run_gets_its_whole_run(
    sqlite_uri, tmp_path, monkeypatch
):
    monkeypatch.setenv("HMTL_TRACKING_BUDGET_S", "20")
    # The sweep's summary reads a whole sweep's storage (manifest, Tune's state), which this
    # fabricated one lacks; the trial's run is what is checked here.
    monkeypatch.setitem(OPS, "finish_sweep", lambda delivery, **args: None)
    space = validate_space(
        {
            "name": SWEEP,
            "num_samples": 2,
            "metric": "val/balanced_accuracy",
            "base": {"schedule": {"epochs": EPOCHS}},
            "space": {"optim.lr": "loguniform(1e-3, 1e-2)"},
        }
    )
    store = Store.open(str(tmp_path / "runs"))
    trial = stored_trial(store)
    artifacts = (tmp_path / "mlflow-artifacts").as_uri()
    saved = pickle.dumps(MlflowCallback(sqlite_uri, space, artifacts, store))  # Tune's state

    # Two resumes in a row (the second one after the first delivered): one run, each once.
    for _ in range(2):
        restored = pickle.loads(saved)  # a new driver: its queue is empty, it saw nothing
        restored.setup()
        restored.on_experiment_end([trial])

    client = MlflowClient(sqlite_uri)
    experiment = client.get_experiment_by_name(SWEEP)
    runs = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'trial'")
    assert [r.data.tags[TRIAL_TAG] for r in runs] == [TRIAL]
    run = runs[0]
    assert run.data.tags[SWEEP_TAG] == SWEEP and run.info.status == "FINISHED"
    assert run.data.params["optim.lr"] == "0.005"  # the params of an uninterrupted trial
    assert run.data.params["schedule.epochs"] == str(EPOCHS)
    for key in ("train/loss", "val/balanced_accuracy"):
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert sorted(steps) == [1, 2], (key, steps)  # every epoch once
    checkpoints = {k: v for k, v in run.data.tags.items() if k.startswith(CHECKPOINT_TAG)}
    assert sorted(checkpoints) == [f"{CHECKPOINT_TAG}0001", f"{CHECKPOINT_TAG}0002"]
    assert checkpoints[f"{CHECKPOINT_TAG}0002"].endswith(f"trial-{TRIAL}/checkpoint_000001")
    assert run.data.tags["hmtl.best_epoch"] == "2"  # its best checkpoint was logged too
