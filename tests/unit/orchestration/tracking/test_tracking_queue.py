"""The tracking queue against a real SQLite MLflow: order, idempotent delivery, the spool.

An outage is a real refused connection (an HTTP tracking URI on a closed loopback port);
the spool it leaves is then replayed into SQLite, twice, as after a crash mid-replay.
"""

import socket
import time

import pytest
from mlflow.tracking import MlflowClient

from hmtl.orchestration.platform.store import Store
from hmtl.orchestration.tracking.ops import Delivery, log_rows
from hmtl.orchestration.tracking.queue import Spool, TrackingQueue
from hmtl.orchestration.tracking.tags import ROLE_TAG, TRIAL_TAG


@pytest.fixture(scope="module")
def sqlite_uri(tmp_path_factory):
    """One SQLite store for the module: creating its schema takes a few seconds."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    MlflowClient(uri).search_experiments(max_results=1)
    return uri


def closed_port_uri() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def sweep_ops(trial: str, epochs: int) -> list[tuple[str, dict]]:
    """What the Tune callback queues for one trial of `epochs` epochs."""
    ops = [("trial_start", {"trial_id": trial, "params": {"optim.lr": 0.01}})]
    for epoch in range(1, epochs + 1):
        ops.append(
            (
                "log_epoch",
                {
                    "trial_id": trial,
                    "step": epoch,
                    "timestamp_ms": 1000 * epoch,
                    "metrics": {"train/loss": 1.0 / epoch, "val/accuracy": 0.1 * epoch},
                    "tags": {},
                },
            )
        )
        ops.append(("tag", {"trial_id": trial, "tags": {f"hmtl.checkpoint.{epoch:04d}": "x"}}))
    return [*ops, ("finish", {"trial_id": trial}), ("finish", {"trial_id": None})]


def queue_for(uri: str, sweep: str, root, lines: list[str], budget: float = 60.0):
    return TrackingQueue(
        lambda: Delivery(uri, sweep),
        Spool(Store.open(str(root)), sweep),
        uri,
        budget=budget,
        pause=(0.05, 0.1),
        notify=lines.append,
    )


def trial_runs(uri: str, sweep: str):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(sweep)
    return client, client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'trial'")


def assert_each_once(uri: str, sweep: str, trials: dict[str, int]) -> None:
    """One run per trial, each epoch's metrics once, every checkpoint tag, finished."""
    client, runs = trial_runs(uri, sweep)
    assert sorted(r.data.tags[TRIAL_TAG] for r in runs) == sorted(trials)
    for run in runs:
        epochs = trials[run.data.tags[TRIAL_TAG]]
        for key in ("train/loss", "val/accuracy"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert sorted(steps) == list(range(1, epochs + 1))
        assert {f"hmtl.checkpoint.{e:04d}" for e in range(1, epochs + 1)} <= set(run.data.tags)
        assert run.data.params == {"optim.lr": "0.01"}
        assert run.info.status == "FINISHED"


def test_queue_delivers_in_order_and_put_does_not_wait(sqlite_uri, tmp_path):
    lines: list[str] = []
    queue = queue_for(sqlite_uri, "q-order", tmp_path, lines)
    started = time.perf_counter()
    for name, args in sweep_ops("a", 3) + sweep_ops("b", 2):
        queue.put(name, **args)
    queued_in = time.perf_counter() - started
    assert queue.close() == 0
    assert queued_in < 0.5  # delivery (SQLite writes) happens on the worker thread
    assert_each_once(sqlite_uri, "q-order", {"a": 3, "b": 2})
    assert lines == [] and queue.dropped == 0


def test_delivering_everything_twice_adds_nothing(sqlite_uri):
    for _ in range(2):  # a second worker, as after a restart: nothing cached
        delivery = Delivery(sqlite_uri, "q-twice")
        for name, args in sweep_ops("a", 2) * 2:
            delivery.apply(name, args)
    assert_each_once(sqlite_uri, "q-twice", {"a": 2})


def test_outage_past_the_budget_spools_then_replays_once(sqlite_uri, tmp_path):
    down = closed_port_uri()
    lines: list[str] = []
    queue = queue_for(down, "q-spool", tmp_path, lines, budget=0.2)
    for name, args in sweep_ops("a", 2):
        queue.put(name, **args)
    assert queue.close() == len(sweep_ops("a", 2))
    spool = Spool(Store.open(str(tmp_path)), "q-spool")
    saved = spool.load()
    assert [op["op"] for op in saved] == [name for name, _ in sweep_ops("a", 2)]
    assert f"MLflow at {down} is unreachable" in lines[0]
    assert any("spooled to" in line and spool.where in line for line in lines)

    # The server is back (here: the SQLite store); a new worker replays the spool first.
    replay_lines: list[str] = []
    queue = queue_for(sqlite_uri, "q-spool", tmp_path, replay_lines)
    assert queue.close() == 0
    assert spool.load() == [] and queue.delivered == len(saved)
    spool.save(saved)  # a crash before the spool was removed: replayed again
    assert queue_for(sqlite_uri, "q-spool", tmp_path, replay_lines).close() == 0
    assert_each_once(sqlite_uri, "q-spool", {"a": 2})
    assert replay_lines == []


def test_rejected_operation_is_reported_and_skipped(sqlite_uri, tmp_path):
    lines: list[str] = []
    queue = queue_for(sqlite_uri, "q-reject", tmp_path, lines)
    queue.put("trial_start", trial_id="a", params={"optim.lr": 0.01})
    queue.put("trial_start", trial_id="a", params={"optim.lr": 0.02})  # params are immutable
    queue.put("finish", trial_id="a")
    assert queue.close() == 0
    assert queue.dropped == 1 and "rejected trial_start" in lines[0]
    _, runs = trial_runs(sqlite_uri, "q-reject")
    assert runs[0].info.status == "FINISHED"


def test_unknown_operation_and_unserialisable_arguments_fail_at_put(tmp_path):
    queue = queue_for(closed_port_uri(), "q-put", tmp_path, [])
    with pytest.raises(KeyError):
        queue.put("no_such_op", trial_id="a")
    with pytest.raises(TypeError):
        queue.put("tag", trial_id="a", tags={"k": object()})


def test_rows_of_a_replayed_and_resumed_trial_go_out_once(sqlite_uri):
    """Epochs 1-3 then 2-4 again (a trial resumed from an older checkpoint) in one batch."""
    delivery = Delivery(sqlite_uri, "q-rows")
    delivery.apply("trial_start", {"trial_id": "a", "params": {"optim.lr": 0.01}})
    epochs = [op for op in sweep_ops("a", 4) if op[0] in ("log_epoch", "tag")]
    rows = [{"op": name, "args": args} for name, args in epochs[:6] + epochs[2:]]
    log_rows(delivery, rows)
    log_rows(Delivery(sqlite_uri, "q-rows"), rows)
    delivery.apply("finish", {"trial_id": "a"})
    assert_each_once(sqlite_uri, "q-rows", {"a": 4})


def test_a_rejected_row_in_a_batch_loses_only_itself(sqlite_uri, tmp_path):
    """Epoch 3 carries a metric name MLflow refuses; epochs 1, 2 and 4 of the same batch
    are stored, the bad row is reported once."""
    lines: list[str] = []
    queue = queue_for(sqlite_uri, "q-bad-row", tmp_path, lines)
    for name, args in sweep_ops("a", 4):
        if name == "log_epoch" and args["step"] == 3:
            args["metrics"]["bad?name"] = 1.0
        queue.put(name, **args)
    assert queue.close() == 0
    assert queue.dropped == 1 and len(lines) == 1 and "rejected log_epoch" in lines[0]
    client, runs = trial_runs(sqlite_uri, "q-bad-row")
    steps = [m.step for m in client.get_metric_history(runs[0].info.run_id, "train/loss")]
    assert sorted(steps) == [1, 2, 4]
    assert {f"hmtl.checkpoint.{e:04d}" for e in (1, 2, 3, 4)} <= set(runs[0].data.tags)
    assert runs[0].info.status == "FINISHED"


def test_a_missing_checkpoint_is_skipped_not_retried(sqlite_uri, tmp_path):
    """A trial's checkpoint folder deleted before its artifacts were logged: a local file
    error, not an outage, so the queue reports it and delivers what follows at once (it
    used to retry it until the budget ran out, holding everything behind it)."""
    lines: list[str] = []
    queue = queue_for(sqlite_uri, "q-gone", tmp_path, lines, budget=600.0)
    queue.put("trial_start", trial_id="a", params={"optim.lr": 0.01})
    gone = str(tmp_path / "trial-a" / "checkpoint_000000")
    queue.put("tag", trial_id="a", tags={"hmtl.checkpoint.0001": gone})
    queue.put("trial_artifacts", trial_id="a", metric="val/accuracy", mode="max")
    queue.put("finish", trial_id="a")
    started = time.perf_counter()
    assert queue.close() == 0
    assert time.perf_counter() - started < 30
    assert queue.dropped == 1 and len(lines) == 1
    assert lines[0].startswith("hmtl: could not track trial_artifacts, skipped: ")
    _, runs = trial_runs(sqlite_uri, "q-gone")
    assert runs[0].info.status == "FINISHED"
