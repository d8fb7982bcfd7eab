"""Kill a sweep mid-run and resume it: nothing lost, nothing repeated, same results."""

import json
from pathlib import Path

import kill
import optuna
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from hmtl.orchestration.cli.main import main
from hmtl.orchestration.sweep.run import resume_sweep, sweep_path
from hmtl.orchestration.tracking.callback import default_tracking_uri
from hmtl.orchestration.tracking.tags import ROLE_TAG
from hmtl.trainables.accounting import DEVICE_SECONDS, WALL_SECONDS, lost_work
from hmtl.trainables.config import build_config
from hmtl.trainables.session import LocalSession
from hmtl.trainables.train import train


@pytest.fixture(scope="module", autouse=True)
def _optuna_mirror_on(optuna_mirror):
    """This file checks the sweep's Optuna database: the mirror is on for it."""


pytestmark = [pytest.mark.integration, pytest.mark.slow]

BASE = {
    "data": {"image_size": 48, "batch_size": 32, "synthetic": {"num_samples": 800}},
    "model": {"width": 8},
    "schedule": {"epochs": 4, "warmup_epochs": 0.5},
    "runtime": {"device": "cpu", "num_threads": 1, "seed": 3},
}


def _write_space(tmp_path: Path) -> Path:
    import yaml

    base = {**BASE, "data": {**BASE["data"], "cache_dir": str(tmp_path / "datasets")}}
    space = {
        "name": "it-resume",
        "num_samples": 3,
        "max_concurrent_trials": 1,
        "scheduler": None,
        "search": {"sampler": "random", "seed": 0},
        "base": base,
        "space": {"optim.lr": "loguniform(1e-3, 1e-2)"},
    }
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def _checkpoints(sweep: Path) -> dict[str, int]:
    return {
        d.name: len(list(d.glob("checkpoint_*/checkpoint.pt")))
        for d in sorted(sweep.glob("trial-*"))
    }


def _state_names(sweep: Path, trial_dir: str) -> bool:
    trial_id = trial_dir.removeprefix("trial-")
    return any(trial_id in f.read_text() for f in sweep.glob("experiment_state-*.json"))


def _last_pid(trial_dir: Path) -> int:
    """The process that reported a trial's last result (Tune's result.json, one line each)."""
    return json.loads((trial_dir / "result.json").read_text().splitlines()[-1])["pid"]


def test_sigkill_then_resume_finishes_every_trial_once(local_ray, tmp_path):
    storage = tmp_path / "runs"
    sweep = Path(sweep_path(str(storage), "it-resume"))
    address = local_ray.get_runtime_context().gcs_address
    proc = kill.start(
        "sweep", str(_write_space(tmp_path)), "--storage", str(storage), "--address", address
    )

    def one_finished_one_running() -> bool:
        counts = _checkpoints(sweep)
        running = [t for t, n in counts.items() if 1 <= n < 4]
        # ... and Tune's state (snapshotted every second) already knows the running trial:
        # a trial killed within its first second is lost to the state and starts over.
        return 4 in counts.values() and bool(running) and _state_names(sweep, running[0])

    kill.kill_when(proc, one_finished_one_running, "one trial finished, another under way", 300)
    before = _checkpoints(sweep)
    finished = [t for t, n in before.items() if n == 4]

    result = resume_sweep(str(sweep), address=address)

    after = _checkpoints(sweep)
    assert result.trials == 3 and result.errors == 0
    assert sorted(after.values()) == [4, 4, 4]
    for trial in finished:  # finished trials were not rerun
        assert after[trial] == before[trial]
    tracking = default_tracking_uri(str(storage))
    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("it-resume")
    runs = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'trial'")
    assert len(runs) == 3
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
        assert sorted(steps) == [1, 2, 3, 4], steps  # no gaps, no repeats
        assert run.info.status == "FINISHED"
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {
            "config.yaml",
            "checkpoints.json",
            "best_checkpoint",
            "confusion_matrix_val.png",
        } <= artifacts

    # A resumed trial ends exactly where an uninterrupted one with the same seed ends, and
    # its process then trained the trial that had not started (reuse_actors).
    interrupted = next(t for t, n in before.items() if 1 <= n < 4)
    not_started = [t for t in after if before.get(t, 0) == 0]
    assert len(not_started) == 1
    assert _last_pid(sweep / not_started[0]) == _last_pid(sweep / interrupted)
    run = next(r for r in runs if f"trial-{r.data.tags['hmtl.trial_id']}" == interrupted)
    # The killed attempt's epoch in flight is paid for: its run's cost counts it (at most an
    # epoch; one more if Tune's state, snapshotted every second, missed the last checkpoint),
    # as read from Tune's stored rows; the trials that were not cut short lost none.
    rows = [json.loads(line) for line in (sweep / interrupted / "result.json").open()]
    lost = lost_work(rows)
    assert 0 < lost[WALL_SECONDS] <= 2 * max(r["time_this_iter_s"] for r in rows) + 1
    logged = client.get_metric_history(run.info.run_id, "cost/lost_device_seconds")
    assert logged and max(m.value for m in logged) == pytest.approx(lost[DEVICE_SECONDS])
    final = max(client.get_metric_history(run.info.run_id, DEVICE_SECONDS), key=lambda m: m.step)
    assert final.value == pytest.approx(rows[-1][DEVICE_SECONDS] + lost[DEVICE_SECONDS])
    for other in runs:
        if other.info.run_id != run.info.run_id:
            assert "cost/lost_device_seconds" not in other.data.metrics
    lr = float(run.data.params["optim.lr"])
    cfg = build_config(
        {
            **BASE,
            "data": {**BASE["data"], "cache_dir": str(tmp_path / "datasets")},
            "optim": {"lr": lr},
        }
    )
    alone = train(cfg, LocalSession(tmp_path / "alone", log=None))
    for key in ("val/balanced_accuracy", "val/accuracy", "train/loss"):
        logged = client.get_metric_history(run.info.run_id, key)
        assert max(logged, key=lambda m: m.step).value == pytest.approx(
            alone.metrics[key], rel=0, abs=1e-12
        )

    # The Optuna database holds each trial once: the killed one was continued, not added.
    study = optuna.load_study(study_name="it-resume", storage=result.optuna_storage)
    kept = {t.user_attrs["hmtl.trial_id"]: t for t in study.trials}
    assert len(study.trials) == 3 and sorted(f"trial-{t}" for t in kept) == sorted(after)
    assert {t.state for t in study.trials} == {optuna.trial.TrialState.COMPLETE}
    assert sorted(kept[interrupted.removeprefix("trial-")].intermediate_values) == [1, 2, 3, 4]

    status = CliRunner().invoke(main, ["status", str(sweep)])
    assert status.exit_code == 0
    assert "3 trials (3 TERMINATED)" in status.output and "best so far" in status.output
    listed = json.loads(CliRunner().invoke(main, ["status", str(sweep), "--json"]).stdout)
    assert listed["schema"] == "hmtl.sweep-status/1" and listed["states"] == {"TERMINATED": 3}
    assert listed["best"]["trial"] in {t["trial"] for t in listed["trials"]}
