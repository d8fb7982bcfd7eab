"""Storage retries: which failures are waited out, for how long, and what survives pickling."""

import itertools
import pickle
import time

import pyarrow.fs as pafs
import pytest

from hmtl.trainables.data import retrying
from hmtl.trainables.data.retrying import (
    RetryingS3,
    call_with_retries,
    is_transient,
    without_retries,
)
from hmtl.trainables.data.storage import StorageError, filesystem_for

REFUSED = OSError(
    "When getting information for key 'k' in bucket 'b': AWS Error NETWORK_CONNECTION "
    "during HeadObject operation: curlCode: 7, Couldn't connect to server"
)


@pytest.fixture(autouse=True)
def short_delays(monkeypatch):
    monkeypatch.setattr(retrying, "FIRST_DELAY_S", 0.005)
    monkeypatch.setattr(retrying, "MAX_DELAY_S", 0.02)


def failing(times: int, error: OSError):
    calls = []

    def call():
        calls.append(time.monotonic())
        if len(calls) <= times:
            raise error
        return "stored"

    return call, calls


def test_transient_failures_are_retried_until_the_call_succeeds():
    call, calls = failing(3, REFUSED)
    assert call_with_retries(call, "writing", budget=5) == "stored"
    assert len(calls) == 4
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert all(gap >= 0.0025 for gap in gaps)  # at least half of each doubling delay


def test_a_failure_outlasting_the_budget_is_raised():
    call, calls = failing(10**6, REFUSED)
    start = time.monotonic()
    with pytest.raises(OSError, match="NETWORK_CONNECTION"):
        call_with_retries(call, "writing", budget=0.1)
    assert 0.1 <= time.monotonic() - start < 1
    assert len(calls) > 2


@pytest.mark.parametrize(
    "error",
    [
        FileNotFoundError("no such key"),
        PermissionError("denied"),
        OSError("AWS Error ACCESS_DENIED during PutObject operation: Access Denied"),
        OSError("AWS Error NO_SUCH_BUCKET during HeadBucket operation"),
    ],
)
def test_permanent_failures_are_raised_at_once(error):
    call, calls = failing(1, error)
    with pytest.raises(type(error)):
        call_with_retries(call, "writing", budget=5)
    assert len(calls) == 1
    assert not is_transient(error)


@pytest.mark.parametrize(
    "message",
    [
        "AWS Error SERVICE_UNAVAILABLE during PutObject operation",
        "AWS Error SLOW_DOWN during PutObject operation: Please reduce your request rate",
        "curlCode: 28, Timeout was reached",
    ],
)
def test_busy_or_slow_servers_count_as_transient(message):
    assert is_transient(OSError(message))


def test_the_s3_filesystem_keeps_its_budget_and_endpoint_through_pickling(monkeypatch):
    monkeypatch.setenv(retrying.BUDGET_ENV, "42")
    fs, path = filesystem_for("s3://bucket/runs?endpoint_override=http://127.0.0.1:9")
    assert path == "bucket/runs" and fs.type_name == "py::hmtl-s3"
    copy = pickle.loads(pickle.dumps(fs))
    assert copy == fs
    assert copy.handler.budget == 42.0
    assert copy.handler.options["endpoint_override"] == "127.0.0.1:9"
    assert not any("key" in name or "token" in name for name in copy.handler.options)
    assert isinstance(without_retries(copy), pafs.S3FileSystem)


def test_local_folders_are_not_wrapped(tmp_path):
    fs, _ = filesystem_for(tmp_path)
    assert isinstance(fs, pafs.LocalFileSystem) and without_retries(fs) is fs


def test_a_budget_that_is_not_a_number_is_refused(monkeypatch):
    monkeypatch.setenv(retrying.BUDGET_ENV, "soon")
    with pytest.raises(StorageError, match="HMTL_STORAGE_RETRY_S='soon'"):
        filesystem_for("s3://bucket/runs?endpoint_override=http://127.0.0.1:9")


def test_handlers_compare_by_their_options():
    a = RetryingS3({"endpoint_override": "127.0.0.1:9"}, 5)
    assert a == RetryingS3({"endpoint_override": "127.0.0.1:9"}, 5)
    assert a != RetryingS3({"endpoint_override": "127.0.0.1:10"}, 5)
