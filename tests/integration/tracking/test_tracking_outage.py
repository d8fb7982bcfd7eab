"""MLflow outages during a sweep, against a real `mlflow server` (SQLite, 127.0.0.1) that is
stopped and started again on the same port.

- Stopped for 5 s mid-sweep: training does not wait (epoch results keep reaching the
  driver while the server is down) and every epoch and checkpoint tag arrives once. What
  an outage costs in wall time is measured, not asserted: benchmarks/mlflow_outage.py
  runs the same sweep with and without a 60 s outage and prints the ratio.
- Stopped past the (test-short) budget until the sweep is over: the tracking calls go to
  the spool beside the sweep, the summary counts them, `hmtl resume` replays them, and
  nothing is missing or logged twice.
"""

import pytest
from helpers import tiny_space
from mlflow.tracking import MlflowClient
from mlflow_server import MlflowServer, OutageAtFirstResult, epochs_lasting

from hmtl.orchestration.cli.sweep import sweep_summary
from hmtl.orchestration.platform.store import Store
from hmtl.orchestration.sweep.run import resume_sweep, run_sweep
from hmtl.orchestration.tracking.queue import BUDGET_ENV, Spool
from hmtl.orchestration.tracking.tags import ROLE_TAG

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-outage"))
    server.start()
    yield server
    server.stop()


def assert_tracked_once(uri: str, sweep: str, epochs: int, trials: int) -> None:
    """Every trial has a finished run with each epoch's metrics once, a checkpoint tag per
    epoch and its best checkpoint (logged when the trial ended)."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(sweep)
    runs = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'trial'")
    assert len(runs) == trials
    for run in runs:
        for key in ("train/loss", "val/balanced_accuracy"):
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
            assert steps == list(range(1, epochs + 1)), (run.info.run_name, key)
        tags = run.data.tags
        assert {f"hmtl.checkpoint.{e:04d}" for e in range(1, epochs + 1)} <= set(tags)
        assert tags["hmtl.best_checkpoint"] and run.info.status == "FINISHED"
    parent = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'sweep'")
    assert len(parent) == 1 and parent[0].info.status == "FINISHED"


def test_training_goes_on_while_mlflow_is_down_and_every_epoch_arrives_once(
    local_ray, server, tmp_path, capfd
):
    """The sweep is sized to outlast the outage on this machine (two trials side by side,
    about 11 s each): results must keep arriving while the server is down, which they
    cannot if any tracking call blocks Tune's driver loop."""
    storage, epochs, trials = str(tmp_path / "runs"), epochs_lasting(tmp_path, 11), 2
    outage = OutageAtFirstResult(server, 5.0)
    space = tiny_space(tmp_path, name="out-hit", epochs=epochs, num_samples=trials)
    result = run_sweep(space, storage, server.url, verbose=0, callbacks=[outage])
    assert result.errors == 0 and result.undelivered == 0
    outage.thread.join()
    down, up = outage.window
    assert up - down >= 4, f"the server was down only {up - down:.0f} s"
    assert up < outage.trained, "the server came back after training ended"
    during = [t for t in outage.results if down < t < up]
    assert len(during) >= 2, f"{len(during)} epoch results in {up - down:.0f} s down"
    assert_tracked_once(server.url, "out-hit", epochs, trials)
    err = capfd.readouterr().err
    assert err.count(f"MLflow at {server.url} is unreachable") == 1
    assert err.count(f"MLflow at {server.url} is reachable again") == 1


def test_outage_past_budget_spools_and_resume_replays_once(
    local_ray, server, tmp_path, monkeypatch
):
    monkeypatch.setenv(BUDGET_ENV, "3")
    storage, epochs, trials = str(tmp_path / "runs"), 2, 2
    space = tiny_space(tmp_path, name="out-spool", epochs=epochs, num_samples=trials)
    outage = OutageAtFirstResult(server, None)  # stopped until the sweep is over
    try:
        result = run_sweep(space, storage, server.url, verbose=0, callbacks=[outage])
    finally:
        if outage.thread is not None:
            outage.thread.join()
        server.start()
    spool = Spool(Store.open(storage), "out-spool")
    assert result.undelivered == len(spool.load()) > 0
    summary = sweep_summary(result, space.metrics[0])
    assert f"{result.undelivered} MLflow calls not delivered yet, spooled in {spool.where}" in (
        summary
    )

    resumed = resume_sweep(result.path, verbose=0)
    assert resumed.undelivered == 0 and spool.load() == []
    assert_tracked_once(server.url, "out-spool", epochs, trials)
