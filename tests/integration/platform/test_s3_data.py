"""Prepared datasets on S3: a real S3 endpoint (moto_server on 127.0.0.1) through pyarrow."""

import json
import socket

import boto3
import numpy as np
import pytest
from click.testing import CliRunner
from helpers import moto_auth

from hmtl.orchestration.cli.main import main
from hmtl.trainables.config import DataConfig
from hmtl.trainables.data import readers
from hmtl.trainables.data.dataset import load_splits
from hmtl.trainables.data.prepare import prepare
from hmtl.trainables.data.prepared import read_prepared
from hmtl.trainables.data.readers.base import Record
from hmtl.trainables.data.storage import StorageError

pytestmark = pytest.mark.integration


class FakeReader:
    name = "fake"

    def __init__(self, n=24, seed=0):
        rng = np.random.default_rng(seed)
        self.records = [
            Record(
                rng.integers(0, 256, (8, 8), dtype=np.uint8),
                i % 8,
                labels={"identity": i // 3, "yaw": float(i)},
                where=f"faces.csv line {i + 2}",
            )
            for i in range(n)
        ]

    def scan(self, source, options):
        yield from self.records

    def count(self, source, options):
        return len(self.records)


@pytest.fixture
def source(monkeypatch, tmp_path):
    monkeypatch.setattr(readers, "get_reader", lambda name: FakeReader())
    monkeypatch.setenv("HMTL_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "src").mkdir()
    return tmp_path / "src"


def keys(s3, prefix):
    client = boto3.client("s3", endpoint_url=s3.endpoint)
    listing = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def dead_endpoint():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_s3_round_trip_matches_local_and_reads_again_from_the_cache(s3_server, source, tmp_path):
    local = prepare("kdef", source, tmp_path / "local", rows_per_shard=10, progress=False)
    remote = prepare("kdef", source, s3_server.uri("rt/datasets"), rows_per_shard=10)
    fingerprint = local.card["fingerprint"]
    assert remote.card["fingerprint"] == fingerprint and not remote.reused
    assert remote.uri == s3_server.uri(f"rt/datasets/kdef/{fingerprint}")
    stored = keys(s3_server, "rt/")
    assert [k for k in stored if ".tmp-" in k] == []
    published = [k for k in stored if k.startswith(f"rt/datasets/kdef/{fingerprint}/")]
    assert sorted(k.rsplit("/", 1)[1] for k in published) == sorted(
        [*remote.card["shards"], "card.json"]
    )

    want, got = read_prepared(local.uri), read_prepared(remote.uri)
    np.testing.assert_array_equal(got.images, want.images)
    for name in want.labels:
        np.testing.assert_array_equal(got.labels[name], want.labels[name])
    assert (tmp_path / "cache" / fingerprint / "card.json").is_file()

    # The same URI on an endpoint nobody listens on: served from the node cache, no request.
    offline = remote.uri.replace(s3_server.endpoint, dead_endpoint())
    np.testing.assert_array_equal(read_prepared(offline).images, want.images)
    cfg = DataConfig(source=offline, image_size=48, val_fraction=0.2, test_fraction=0.2)
    splits = load_splits(cfg)
    assert len(splits.train) + len(splits.val) + len(splits.test) == 24

    again = prepare("kdef", source, s3_server.uri("rt/datasets"), rows_per_shard=3)
    assert again.reused and again.uri == remote.uri
    assert keys(s3_server, "rt/") == stored


def test_unreachable_endpoint_is_one_clear_error(source):
    uri = f"s3://hmtl-test/x?endpoint_override={dead_endpoint()}"
    result = CliRunner().invoke(main, ["data", "prepare", "kdef", str(source), "--out", uri])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert result.output.startswith(f"hmtl: error: {uri}: creating the dataset folder failed")
    assert "cannot reach the storage endpoint" in result.output
    # The first touch fails fast; trials' reads (the default) would ride out an outage.
    with pytest.raises(StorageError, match="reading the dataset card failed: cannot reach"):
        read_prepared(uri.replace("/x?", "/x/kdef/abc?"), fail_fast=True)


def test_missing_bucket_is_one_clear_error(s3_server, source):
    uri = f"s3://no-such-bucket/d?endpoint_override={s3_server.endpoint}"
    with pytest.raises(StorageError, match=r"no-such-bucket/d.*bucket .*does not exist"):
        prepare("kdef", source, uri, progress=False)
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist"):
        read_prepared(uri)


def test_unwritable_store_publishes_nothing(s3_server, source, monkeypatch):
    """A read-only IAM user (moto enforces IAM once auth is switched on)."""
    iam = boto3.client("iam", endpoint_url=s3_server.endpoint)
    iam.create_user(UserName="reader")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:Get*", "s3:List*", "s3:HeadBucket"], "Resource": "*"}
        ],
    }
    iam.put_user_policy(UserName="reader", PolicyName="ro", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="reader")["AccessKey"]

    moto_auth(s3_server.endpoint, b"0")
    try:
        with monkeypatch.context() as mp:
            mp.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
            mp.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
            with pytest.raises(StorageError, match=r"ro/datasets.*access denied") as err:
                prepare("kdef", source, s3_server.uri("ro/datasets"), progress=False)
            assert key["SecretAccessKey"] not in str(err.value)
    finally:
        moto_auth(s3_server.endpoint, b"inf")
    assert keys(s3_server, "ro/") == []
