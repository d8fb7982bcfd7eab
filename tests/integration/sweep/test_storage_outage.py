"""Object storage going away and coming back, through a loopback proxy in front of moto.

The filesystem retries transient failures for its budget (`HMTL_STORAGE_RETRY_S`), survives
pickling (what Ray does to it), and preflight still fails within seconds.
"""

import pickle
import threading
import time
from urllib.parse import urlsplit

import pytest
from tcp_proxy import TcpProxy

from hmtl.orchestration.platform.store import Store
from hmtl.trainables.data.retrying import BUDGET_ENV
from hmtl.trainables.data.storage import StorageError

pytestmark = pytest.mark.integration


@pytest.fixture
def proxy(s3_server):
    parts = urlsplit(s3_server.endpoint)
    with TcpProxy((parts.hostname, parts.port)) as proxy:
        yield proxy


def _store(s3_server, proxy, prefix: str) -> Store:
    return Store.open(f"s3://{s3_server.bucket}/{prefix}?endpoint_override={proxy.endpoint}")


def _reopen_after(proxy: TcpProxy, seconds: float) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), proxy.open()), daemon=True)
    thread.start()
    return thread


def test_a_write_during_an_outage_lands_once_the_store_is_back(s3_server, proxy, monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, "30")
    store = _store(s3_server, proxy, "outage-write")
    # What Ray does to the filesystem before a trial uses it.
    fs = pickle.loads(pickle.dumps(store.filesystem))
    store = Store(store.uri, fs, store.root)
    proxy.close()
    reopened = _reopen_after(proxy, 3)
    start = time.monotonic()
    store.write_text("state.json", '{"epoch": 2}')
    assert time.monotonic() - start >= 2.5
    reopened.join()
    assert store.read_text("state.json") == '{"epoch": 2}'


def test_an_upload_that_outlasts_the_budget_fails_and_keeps_what_was_stored(
    s3_server, proxy, monkeypatch
):
    monkeypatch.setenv(BUDGET_ENV, "2")
    store = _store(s3_server, proxy, "outage-budget")
    store.write_text("checkpoint.pt", "epoch 1")
    start = time.monotonic()
    with (
        pytest.raises(OSError, match="NETWORK_CONNECTION"),
        store.fs.open_output_stream(store.path("checkpoint.pt")) as out,
    ):
        out.write(b"epoch 2")
        proxy.close()  # the store goes away while the upload is under way
    assert 1.5 <= time.monotonic() - start < 15
    proxy.open()
    assert store.read_text("checkpoint.pt") == "epoch 1"


def test_preflight_fails_within_seconds_despite_the_budget(s3_server, proxy, monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, "180")
    store = _store(s3_server, proxy, "outage-preflight")
    proxy.close()
    start = time.monotonic()
    with pytest.raises(StorageError, match="cannot reach the storage endpoint"):
        store.check_writable()
    assert time.monotonic() - start < 10


def test_a_budget_that_is_not_a_number_is_one_line(s3_server, monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, "two minutes")
    with pytest.raises(StorageError, match=f"{BUDGET_ENV}='two minutes': not a number"):
        Store.open(s3_server.uri("anything"))


@pytest.mark.slow
def test_a_sweep_rides_out_a_storage_outage(local_ray, s3_server, proxy, tmp_path):
    """Storage refused for 6 s once the first checkpoint is stored (a refused connection
    fails in milliseconds, so any outage past a client's own few retries proves the budget
    works): every trial still finishes, every epoch is reported once, and nobody has to run
    `hmtl resume`."""
    import boto3
    from helpers import tiny_space
    from mlflow.tracking import MlflowClient

    from hmtl.orchestration.sweep.run import run_sweep
    from hmtl.orchestration.tracking.tags import ROLE_TAG

    epochs, outage = 5, {}
    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint)  # moto itself, not the proxy

    def cut_storage_once_training_checkpoints() -> None:
        while "start" not in outage:
            listed = s3.list_objects_v2(Bucket=s3_server.bucket, Prefix="outage-sweep/")
            if any("/checkpoint_" in o["Key"] for o in listed.get("Contents", [])):
                proxy.close()
                outage["start"] = time.monotonic()
            time.sleep(0.2)
        time.sleep(6)
        proxy.open()
        outage["end"] = time.monotonic()

    watcher = threading.Thread(target=cut_storage_once_training_checkpoints, daemon=True)
    watcher.start()
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    storage = f"s3://{s3_server.bucket}/outage-sweep?endpoint_override={proxy.endpoint}"
    space = tiny_space(tmp_path, name="it-outage", epochs=epochs, num_samples=2)
    started = time.monotonic()
    result = run_sweep(space, storage, tracking, verbose=0)
    finished = time.monotonic()
    print(f"sweep {finished - started:.0f} s, outage from {outage.get('start', 0) - started:.0f} s")
    watcher.join(timeout=60)

    assert "end" in outage and outage["end"] < finished, "the outage did not hit the sweep"
    assert (result.trials, result.errors) == (2, 0)
    client = MlflowClient(tracking)
    experiment = client.get_experiment_by_name("it-outage")
    runs = client.search_runs([experiment.experiment_id], f"tags.`{ROLE_TAG}` = 'trial'")
    assert len(runs) == 2
    for run in runs:
        history = client.get_metric_history(run.info.run_id, "val/balanced_accuracy")
        assert sorted(m.step for m in history) == list(range(1, epochs + 1))


def test_resume_of_an_unreachable_sweep_is_one_line_within_seconds(s3_server, proxy, monkeypatch):
    from click.testing import CliRunner

    from hmtl.orchestration.cli.main import main

    monkeypatch.setenv(BUDGET_ENV, "180")
    sweep = f"s3://{s3_server.bucket}/runs/sweeps/any?endpoint_override={proxy.endpoint}"
    proxy.close()
    start = time.monotonic()
    result = CliRunner().invoke(main, ["resume", sweep])
    assert result.exit_code == 2, result.output
    folder = f"s3://{s3_server.bucket}/runs/sweeps/any"
    assert result.output.strip().splitlines() == [
        f"hmtl: error: {folder}: cannot be read ({folder}/hmtl-study.json: reading failed: "
        "cannot reach the storage endpoint)"
    ]
    assert time.monotonic() - start < 10
