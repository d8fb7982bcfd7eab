"""Object storage that rides out outages: every S3 call retried with backoff and jitter.

pyarrow's own retry strategies cannot do this for Ray. Against a refused port
(benchmarks/storage_retry.py, BENCHMARKS.md) `AwsStandardS3RetryStrategy` gave up after
1-2 s with 3 attempts, 8-20 s with 6, ~50 s with 8 and ~70 s with 10 (random, capped
delays); `AwsDefaultS3RetryStrategy` after 0.16 s, 1.6 s, 6.4 s and 26 s (25 ms doubling, no
jitter): a budget only as an attempt count. Worse, an `S3FileSystem` pickles without its
retry strategy, so in the trial processes Ray ships it to it falls back to 3 attempts.

`RetryingS3` is a `pyarrow.fs.PyFileSystem` handler that keeps the S3 options (never
credentials: those come from the AWS chain in each process), builds the S3 client lazily
where it is unpickled, and retries each call that failed for a transient reason (no
connection, timeouts, 5xx) with exponential backoff and jitter until a budget of seconds is
spent: `HMTL_STORAGE_RETRY_S`, 180 by default, so a 2-minute outage is ridden out. Writes
are spooled (memory, then a temporary file) and uploaded on close, so an upload can be
replayed whole; a write that still fails after the budget raises, and what is already
stored is left as it was. Reads retry the open; a read cut mid-stream is not replayed.
"""

from __future__ import annotations

import logging
import random
import re
import tempfile
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.fs as pafs

from hmtl.trainables.settings import settings, variable

BUDGET_ENV = variable("storage_retry_s")  # HMTL_STORAGE_RETRY_S, 180 s by default
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 5.0
_SPOOL_IN_MEMORY = 16 * 1024 * 1024
_TRANSIENT = re.compile(
    r"NETWORK_CONNECTION|Could not connect|curlCode|Couldn't connect|Connection refused|"
    r"connection (reset|closed|aborted)|timed? ?out|REQUEST_TIMEOUT|SERVICE_UNAVAILABLE|"
    r"SLOW_DOWN|SlowDown|INTERNAL_FAILURE|THROTTLING|HTTP status 5\d\d",
    re.I,
)
T = TypeVar("T")
log = logging.getLogger(__name__)


def retry_budget() -> float:
    """Seconds a storage call keeps retrying a transient failure (`HMTL_STORAGE_RETRY_S`)."""
    return settings().storage_retry_s  # a SettingsError (a ValueError) for a bad value


def is_transient(err: BaseException) -> bool:
    """Whether a failed storage call may succeed later (network, timeout, server busy)."""
    return (
        isinstance(err, OSError)
        and not isinstance(err, FileNotFoundError | PermissionError | FileExistsError)
        and bool(_TRANSIENT.search(str(err)))
    )


def call_with_retries(call: Callable[[], T], what: str, budget: float | None = None) -> T:
    """`call()`, retried on transient failures with exponential backoff and jitter until
    `budget` seconds (default: `retry_budget()`) have passed since the first failure."""
    budget = retry_budget() if budget is None else budget
    deadline, delay = None, FIRST_DELAY_S
    while True:
        try:
            result = call()
        except OSError as err:
            if not is_transient(err):
                raise
            now = time.monotonic()
            if deadline is None:
                deadline = now + budget
                log.warning(
                    "object storage unreachable (%s); retrying for up to %.0f s", what, budget
                )
            if now >= deadline:
                raise
            # Equal jitter: callers that failed together do not come back in lockstep.
            time.sleep(min(random.uniform(delay / 2, delay), deadline - now))
            delay = min(delay * 2, MAX_DELAY_S)
            continue
        if deadline is not None:
            log.warning("object storage reachable again (%s)", what)
        return result


class RetryingS3(pafs.FileSystemHandler):
    """A PyFileSystem handler: S3 calls through `call_with_retries` (see the module doc)."""

    def __init__(self, options: dict[str, Any], budget: float | None = None):
        self.options, self.budget, self._fs = dict(options), budget, None

    def __getstate__(self) -> dict[str, Any]:
        return {"options": self.options, "budget": self.budget}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["options"], state["budget"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RetryingS3) and other.options == self.options

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.options.items())))

    @property
    def inner(self) -> pafs.S3FileSystem:
        """The S3 client itself: a few quick attempts per request, no backoff."""
        if self._fs is None:
            self._fs = pafs.S3FileSystem(
                **self.options,
                # Uploads run in the caller's thread: Ray's copy_files uses threads, and S3
                # background writes from them are the pyarrow issue Ray works around.
                background_writes=False,
                retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=3),
            )
        return self._fs

    def _retry(self, what: str, call: Callable[[], T]) -> T:
        return call_with_retries(call, what, self.budget)

    def get_type_name(self) -> str:
        return "hmtl-s3"

    def normalize_path(self, path):
        return self.inner.normalize_path(path)

    def get_file_info(self, paths):
        return self._retry("listing", lambda: self.inner.get_file_info(paths))

    def get_file_info_selector(self, selector):
        return self._retry(
            f"listing {selector.base_dir}", lambda: self.inner.get_file_info(selector)
        )

    def create_dir(self, path, recursive):
        self._retry(f"creating {path}", lambda: self.inner.create_dir(path, recursive=recursive))

    def delete_dir(self, path):
        self._retry(f"deleting {path}", lambda: self.inner.delete_dir(path))

    def delete_dir_contents(self, path, missing_dir_ok=False):
        self._retry(
            f"deleting {path}",
            lambda: self.inner.delete_dir_contents(path, missing_dir_ok=missing_dir_ok),
        )

    def delete_root_dir_contents(self):
        raise PermissionError("hmtl never empties a whole object store")

    def delete_file(self, path):
        self._retry(f"deleting {path}", lambda: self.inner.delete_file(path))

    def move(self, src, dest):
        self._retry(f"moving {src}", lambda: self.inner.move(src, dest))

    def copy_file(self, src, dest):
        self._retry(f"copying {src}", lambda: self.inner.copy_file(src, dest))

    def open_input_stream(self, path):
        return self._retry(f"reading {path}", lambda: self.inner.open_input_stream(path))

    def open_input_file(self, path):
        return self._retry(f"reading {path}", lambda: self.inner.open_input_file(path))

    def open_output_stream(self, path, metadata):
        return pa.PythonFile(_SpooledUpload(self, path, metadata), mode="w")

    def open_append_stream(self, path, metadata):
        raise NotImplementedError("object storage has no append")


class _SpooledUpload:
    """A write-only file that uploads its whole content on close, retried as one unit."""

    def __init__(self, handler: RetryingS3, path: str, metadata):
        self.handler, self.path, self.metadata = handler, path, metadata
        # Closed by close(), which pyarrow calls when the stream is closed.
        self.spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
        self.closed = False

    def write(self, data) -> int:
        return self.spool.write(data)

    def tell(self) -> int:
        return self.spool.tell()

    def flush(self) -> None:
        pass

    def _upload(self) -> None:
        self.spool.seek(0)
        with self.handler.inner.open_output_stream(self.path, metadata=self.metadata) as out:
            while chunk := self.spool.read(8 * 1024 * 1024):
                out.write(chunk)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.handler._retry(f"writing {self.path}", self._upload)
        finally:
            self.spool.close()


def without_retries(fs: pafs.FileSystem) -> pafs.FileSystem:
    """The same store failing within seconds: for preflight checks, where an unreachable
    endpoint must be one line now rather than a wait of minutes."""
    handler = getattr(fs, "handler", None)
    return handler.inner if isinstance(handler, RetryingS3) else fs
