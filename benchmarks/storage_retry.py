"""How long S3 calls wait out an unreachable endpoint, and what the retrying wrapper costs.

1. Give-up time against a refused port (127.0.0.1, nothing listening): one `get_file_info`
   through pyarrow's `S3FileSystem` with `AwsStandardS3RetryStrategy` and
   `AwsDefaultS3RetryStrategy` at several `max_attempts`, against hmtl's `RetryingS3`
   (trainables/data/retrying.py) with a budget of --budget seconds. Standard's delays are
   random: --reps runs each, median (one run at 8 attempts and more, they take minutes).
2. Upload of a checkpoint-like folder (--mb MiB of random bytes in `checkpoint.pt` plus a
   small JSON file) to a local moto_server with `pyarrow.fs.copy_files` and 64 MiB chunks,
   as Ray's storage code does: the plain `S3FileSystem` (`use_threads=False`, Ray's
   setting for it) against `RetryingS3` (Ray leaves threads on for other filesystems; the
   wrapper spools each file, then uploads it whole). Order alternates; medians; ratio.

    python benchmarks/storage_retry.py [--reps 3] [--mb 64] [--budget 20]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import boto3
import pyarrow.fs as pafs
from checkpoint_io import BUCKET, fake_aws_env, start_moto

from hmtl.trainables.data.retrying import RetryingS3


def give_up_s(fs: pafs.FileSystem) -> float:
    start = time.monotonic()
    with contextlib.suppress(OSError):
        fs.get_file_info("bucket/key")
    return time.monotonic() - start


def refused(strategy: pafs.S3RetryStrategy) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        endpoint_override="127.0.0.1:9", scheme="http", region="us-east-1",
        retry_strategy=strategy,
    )  # fmt: skip


def part_give_up(reps: int, budget: float) -> None:
    print("1. give-up time against a refused port (seconds)")
    rows = [
        (f"pyarrow {name} max_attempts={n}", lambda cls=cls, n=n: refused(cls(max_attempts=n)))
        for name, cls in (
            ("AwsStandardS3RetryStrategy", pafs.AwsStandardS3RetryStrategy),
            ("AwsDefaultS3RetryStrategy", pafs.AwsDefaultS3RetryStrategy),
        )
        for n in (3, 6, 8, 10)
    ]
    options = {"endpoint_override": "127.0.0.1:9", "scheme": "http", "region": "us-east-1"}
    rows.append(
        (
            f"hmtl RetryingS3 budget={budget:g}",
            lambda: pafs.PyFileSystem(RetryingS3(options, budget)),
        )
    )
    for label, make in rows:
        n = reps if "=3" in label or "=6" in label else 1
        times = [give_up_s(make()) for _ in range(n)]
        print(
            f"  {label:<48} median {statistics.median(times):7.2f}  runs {len(times)}", flush=True
        )


def part_upload(endpoint: str, reps: int, mb: int) -> None:
    host = endpoint.removeprefix("http://")
    plain = pafs.S3FileSystem(endpoint_override=host, scheme="http", region="us-east-1")
    options = {"endpoint_override": host, "scheme": "http", "region": "us-east-1"}
    wrapped = pafs.PyFileSystem(RetryingS3(options, 180.0))
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "checkpoint.pt").write_bytes(os.urandom(mb * 1024 * 1024))
        Path(folder, "metrics.json").write_text('{"epoch": 1}')
        local = pafs.LocalFileSystem()
        times: dict[str, list[float]] = {"plain": [], "retrying": []}
        for rep in range(reps + 1):  # the first round warms up and is not counted
            order = ["plain", "retrying"] if rep % 2 else ["retrying", "plain"]
            for name in order:
                fs, threads = (plain, False) if name == "plain" else (wrapped, True)
                start = time.monotonic()
                pafs.copy_files(
                    folder, f"{BUCKET}/{name}/{rep}", source_filesystem=local,
                    destination_filesystem=fs, chunk_size=64 * 1024 * 1024, use_threads=threads,
                )  # fmt: skip
                if rep:
                    times[name].append(time.monotonic() - start)
    p, r = statistics.median(times["plain"]), statistics.median(times["retrying"])
    print(f"2. upload of a {mb} MiB checkpoint folder to moto (median of {reps})")
    print(f"  plain S3FileSystem {p:6.2f} s   RetryingS3 {r:6.2f} s   retrying/plain {r / p:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--mb", type=int, default=64)
    parser.add_argument("--budget", type=float, default=20.0)
    args = parser.parse_args()
    fake_aws_env()
    with tempfile.TemporaryDirectory() as root:
        proc, endpoint = start_moto(Path(root))
        try:
            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
            part_upload(endpoint, args.reps, args.mb)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    part_give_up(args.reps, args.budget)


if __name__ == "__main__":
    main()
