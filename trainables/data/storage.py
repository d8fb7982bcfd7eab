"""Where datasets live: a local folder or `s3://bucket/prefix`, behind one pyarrow filesystem.

S3-compatible stores (MinIO, a test's moto server) need an endpoint, which pyarrow does not
take from `AWS_ENDPOINT_URL`. It comes from, in this order:

1. the URI's query: `s3://bucket/prefix?endpoint_override=http://127.0.0.1:9000`
   (also `region=` and `scheme=`), handy for a one-off command;
2. the `HMTL_S3_ENDPOINT` environment variable (e.g. `http://minio.internal:9000`), the
   setting for a whole cluster, so configs and cards keep plain `s3://` URIs.

Every S3 call retries transient failures for `HMTL_STORAGE_RETRY_S` seconds (see
`retrying.py`); preflight checks use `without_retries` and fail within seconds.

Credentials come only from the standard AWS chain (environment, profile, instance role).
A URI that carries them (`s3://KEY:SECRET@bucket`, `?access_key=`, `?secret_key=`,
`?session_token=`) is refused, so they never reach a card, a log line or an MLflow param.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pyarrow.fs as pafs

from hmtl.trainables.data.retrying import RetryingS3, retry_budget
from hmtl.trainables.settings import settings

_ALLOWED_QUERY = {"endpoint_override", "region", "scheme"}
_SECRET_QUERY = {"access_key", "secret_key", "session_token"}


class StorageError(ValueError):
    """A store that cannot be used (unreachable, no bucket, not writable), as one line."""


def is_remote(uri: str | os.PathLike) -> bool:
    return str(uri).startswith("s3://")


def filesystem_for(uri: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem for `uri` and the path to use on it.

    Local paths (plain or `file://`) give a LocalFileSystem and an absolute path; `s3://`
    URIs an S3FileSystem behind `RetryingS3` and `bucket/prefix`. Other schemes are a
    StorageError.
    """
    text = str(uri)
    if text.startswith("file://"):
        text = text[len("file://") :]
    if "://" not in text:
        return pafs.LocalFileSystem(), str(Path(text).expanduser().absolute())
    parts = urlsplit(text)
    if parts.scheme != "s3":
        raise StorageError(f"{redact(text)}: unsupported storage scheme (use a path or s3://)")
    if "@" in parts.netloc:
        raise StorageError(
            f"{redact(text)}: credentials do not belong in a URI; use the AWS credential chain"
        )
    if not parts.netloc:
        raise StorageError(f"{redact(text)}: no bucket in the URI")
    query = dict(parse_qsl(parts.query))
    secret = _SECRET_QUERY & set(query)
    if secret:
        raise StorageError(
            f"{redact(text)}: credentials ({', '.join(sorted(secret))}) do not belong in a URI; "
            "use the AWS credential chain"
        )
    unknown = set(query) - _ALLOWED_QUERY
    if unknown:
        raise StorageError(
            f"{redact(text)}: unknown URI option(s) {', '.join(sorted(unknown))} "
            f"(valid: {', '.join(sorted(_ALLOWED_QUERY))})"
        )
    path = f"{parts.netloc}/{parts.path.strip('/')}".rstrip("/")
    endpoint = query.get("endpoint_override") or settings().s3_endpoint
    region = (
        query.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    )
    try:
        budget = retry_budget()
    except ValueError as err:  # HMTL_STORAGE_RETRY_S
        raise StorageError(str(err)) from None
    options: dict = {"connect_timeout": 5.0, "request_timeout": 60.0}
    if endpoint:
        scheme, _, host = endpoint.rpartition("://")
        options["endpoint_override"] = host or endpoint
        options["scheme"] = query.get("scheme") or scheme or "https"
        options["region"] = region or "us-east-1"
    else:
        if query.get("scheme"):
            options["scheme"] = query["scheme"]
        if region:
            options["region"] = region
        else:
            # Unresolvable: let the first request report what is wrong with the bucket.
            with contextlib.suppress(OSError):
                options["region"] = pafs.resolve_s3_region(parts.netloc)
    # Outages are ridden out call by call; `without_retries` gives the fail-fast client.
    return pafs.PyFileSystem(RetryingS3(options, budget)), path


def join(uri: str | os.PathLike, *names: str) -> str:
    """`uri` with path components appended, keeping an S3 URI's query at the end."""
    text = str(uri)
    if not is_remote(text):
        return str(Path(text, *names))
    base, sep, query = text.partition("?")
    return "/".join([base.rstrip("/"), *names]) + (sep + query if sep else "")


def redact(uri: str | os.PathLike) -> str:
    """`uri` fit for messages and cards: user info and secret query values removed."""
    text = re.sub(r"(://)[^/@]*@", r"\1", str(uri))
    return re.sub(r"([?&](?:access_key|secret_key|session_token)=)[^&]*", r"\1<redacted>", text)


def cache_root() -> Path:
    """The node-local cache of datasets read from object storage, one folder per fingerprint.

    `HMTL_CACHE_DIR` if set, else `~/.cache/hmtl/datasets`; shared by every worker on a node.
    """
    return Path(settings().cache_dir or Path.home() / ".cache" / "hmtl" / "datasets")


def storage_error(uri: str | os.PathLike, err: BaseException, doing: str) -> StorageError:
    """A one-line StorageError for a pyarrow/OS failure while `doing` something with `uri`."""
    text = str(err)
    if "NETWORK_CONNECTION" in text or "Could not connect" in text or "curlCode" in text:
        why = "cannot reach the storage endpoint"
    elif "NO_SUCH_BUCKET" in text or re.search(
        r"bucket (does not exist|'.*' not found)", text, re.I
    ):
        why = "the bucket does not exist"
    elif "ACCESS_DENIED" in text or isinstance(err, PermissionError):
        why = "access denied (not writable or not readable with these credentials)"
    elif isinstance(err, (NotADirectoryError, FileExistsError)):
        why = "a file is in the way of the folder"
    else:
        why = text.splitlines()[0] if text else type(err).__name__
    return StorageError(f"{redact(uri)}: {doing} failed: {why}")
