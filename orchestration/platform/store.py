"""Where a sweep keeps its state: a local folder or `s3://bucket/prefix`, one interface.

Ray takes a local folder as a plain path and object storage as a pyarrow filesystem plus a
path without the scheme (pyarrow ignores `AWS_ENDPOINT_URL`, so an S3-compatible endpoint
has to travel inside the filesystem object). The endpoint and credential rules are those
of `hmtl.trainables.data.storage`: endpoint from the URI's `?endpoint_override=` or
`HMTL_S3_ENDPOINT`, credentials only from the AWS chain, never in a URI.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import pyarrow.fs as pafs

from hmtl.trainables.data.retrying import without_retries
from hmtl.trainables.data.storage import StorageError, filesystem_for, redact, storage_error


@dataclass(frozen=True)
class Store:
    uri: str
    """As given, fit for messages (no credentials, no query)."""
    filesystem: pafs.FileSystem | None
    """None for a local folder (Ray then works with plain paths)."""
    root: str
    """The folder on that filesystem: an absolute local path, or `bucket/prefix`."""

    @classmethod
    def open(cls, uri: str | Store) -> Store:
        if isinstance(uri, Store):
            return uri  # already open: keeps an endpoint a display URI would not carry
        fs, root = filesystem_for(uri)
        remote = not isinstance(fs, pafs.LocalFileSystem)
        shown = redact(uri).split("?", 1)[0].rstrip("/")
        return cls(shown if remote else root, fs if remote else None, root.rstrip("/"))

    @property
    def remote(self) -> bool:
        return self.filesystem is not None

    @property
    def fs(self) -> pafs.FileSystem:
        return self.filesystem or pafs.LocalFileSystem()

    def path(self, *names: str) -> str:
        return "/".join([self.root, *names])

    def child(self, *names: str) -> Store:
        """The folder `names` under this store, on the same filesystem."""
        return Store(self.display(*names), self.filesystem, self.path(*names))

    def display(self, *names: str) -> str:
        """A path under the store as a user would type it (`s3://...` or a local path)."""
        return "/".join([self.uri, *names])

    def as_uri(self, path: str) -> str:
        """A path Ray reported on this store's filesystem, as a URI a user can pass on
        (paths on object storage come without their scheme)."""
        return f"s3://{path}" if self.remote and "://" not in path else path

    def write_text(self, name: str, text: str) -> None:
        """Write `name` under a temporary name, then move it into place."""
        target = self.path(name)
        partial = f"{target}.partial-{uuid.uuid4().hex[:8]}"
        try:
            self.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
            with self.fs.open_output_stream(partial) as out:
                out.write(text.encode())
            self.fs.move(partial, target)
        except (OSError, ValueError) as err:
            raise storage_error(self.display(name), err, "writing") from None

    def read_text(self, name: str, fail_fast: bool = False) -> str:
        """The text of `name`; `fail_fast` for a command's first touch of the store, where an
        unreachable endpoint is reported at once instead of waited out."""
        fs = without_retries(self.fs) if fail_fast else self.fs
        try:
            with fs.open_input_stream(self.path(name)) as f:
                return f.read().decode()
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as err:
            raise storage_error(self.display(name), err, "reading") from None

    def check_writable(self) -> None:
        """Fail fast, with one line, on a missing bucket, denied access or an unreachable
        endpoint, by writing and removing a probe object."""
        probe = f".hmtl-write-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        fs = without_retries(self.fs)  # an outage at the start is reported, not waited out
        try:
            fs.create_dir(self.root, recursive=True)
            with fs.open_output_stream(self.path(probe)) as out:
                out.write(b"")
            fs.delete_file(self.path(probe))
        except (OSError, ValueError) as err:
            raise storage_error(self.uri, err, "writing") from None


__all__ = ["StorageError", "Store"]
