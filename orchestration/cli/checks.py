"""The checks `sweep`, `study` and `resume` share, made locally before anything is imported
that is slow or asks the network, and the summary line's account of what was used."""

from __future__ import annotations

from hmtl.orchestration.cli.address import parse_address, ray_address
from hmtl.orchestration.cli.common import fail, tracking_problem
from hmtl.orchestration.cli.options import ADDRESS_ENV, from_env, source


def storage_problem(storage: str) -> str | None:
    """Why `--storage` cannot be a store (None when it may be), without asking the network:
    a scheme other than a path or s3://, or credentials in the URI."""
    # Lazy: keeps pyarrow out of `hmtl --help`.
    from hmtl.trainables.data.storage import StorageError, filesystem_for

    if "://" not in storage:
        return None
    try:
        filesystem_for(storage)  # builds no connection: S3 clients are made on first use
    except StorageError as err:
        return f"--storage {err}"
    return None


def local_checks(
    storage: str, tracking_uri: str | None, address: str | None, command: str
) -> str | None:
    """The checks every sweep-like command makes before reading its space or study: the
    forms of --address, --tracking-uri and --storage. Returns the Ray address to join."""
    joined = ray_address(parse_address(address, from_env("address")), command)
    problem = tracking_problem(tracking_uri, from_env("tracking_uri")) or storage_problem(storage)
    if problem:
        fail(problem)
    if "://" in storage and tracking_uri is None:
        fail(
            f"--storage {storage}: object storage needs --tracking-uri (an MLflow server); "
            "the SQLite default lives in a local storage folder"
        )
    return joined


def ray_line(joined: str | None) -> str:
    """The Ray the command uses, for its summary line, and where the address came from."""
    if joined is None:
        return "local (started here)"
    return f"{joined}{source('address', ADDRESS_ENV)}"


def folder_kind(path: str) -> str:
    """ "study" or "sweep": what the folder at `path` holds (by its manifest), or exit 2 in one
    line when it holds neither. `status`, `resume` and `report` take both."""
    # Lazy: keeps pyarrow out of `hmtl --help`.
    from hmtl.orchestration.platform.store import Store
    from hmtl.orchestration.study.manifest import STUDY_MANIFEST
    from hmtl.orchestration.sweep.manifest import MANIFEST
    from hmtl.trainables.data.storage import StorageError

    try:
        store = Store.open(path)
    except StorageError as err:
        fail(str(err))
    for kind, manifest in (("study", STUDY_MANIFEST), ("sweep", MANIFEST)):
        try:
            store.read_text(manifest, fail_fast=True)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except (OSError, ValueError) as err:
            fail(f"{store.uri}: cannot be read ({str(err).splitlines()[0]})")
        return kind
    fail(f"{store.uri}: not a sweep or study folder (no {MANIFEST} or {STUDY_MANIFEST})")
    raise AssertionError("unreachable")
