"""Is the tracking server there, and does it let us in? Asked before Ray starts.

A sweep whose server is unreachable would start Ray, leave its trials pending and fail
minutes later with a long MLflow traceback; one cheap authenticated request with a short
timeout (searching for one experiment) turns that into one line before anything starts.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import threading
from pathlib import Path

from hmtl.orchestration.tracking.tags import redact_uri
from hmtl.trainables.data.storage import StorageError


class TrackingError(ValueError):
    """A tracking server that cannot be used, as one line naming it."""


@contextlib.contextmanager
def fast_fail(timeout: int):
    """MLflow's client without its own retries (minutes by default) and with a short
    timeout, for the duration of the block."""
    settings = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout),
    }
    saved = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def probe(tracking_uri: str, timeout: int = 5) -> None:
    """Raise TrackingError unless an HTTP tracking server answers an authenticated request.
    Other URIs (a SQLite file, the embedded default) are local and need no probe."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    # Lazy: keeps mlflow out of the checks that run before Ray starts.
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    shown = redact_uri(tracking_uri)
    try:
        with fast_fail(timeout):
            MlflowClient(tracking_uri).search_experiments(max_results=1)
    except MlflowException as err:
        status = err.get_http_status_code()
        if status in (401, 403):
            raise TrackingError(
                f"MLflow at {shown} refused the request (HTTP {status}): set "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"
            ) from None
        if "failed with exception" in str(err) or "timeout" in str(err):
            raise TrackingError(f"MLflow at {shown} is unreachable ({cause(err)})") from None
        raise TrackingError(
            f"MLflow at {shown} did not answer as a tracking server ({cause(err)})"
        ) from None
    except OSError as err:
        raise TrackingError(f"MLflow at {shown} is unreachable ({cause(err)})") from None


def cause(err: Exception) -> str:
    """The useful part of a connection error (`[Errno 111] Connection refused`, a timeout),
    else its last line."""
    text = str(err)
    found = re.search(r"\[Errno -?\d+\] [^'\")]+|timed out|Name or service not known", text)
    if found:
        return found.group(0).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    last = lines[-1] if lines else type(err).__name__
    return last if len(last) <= 160 else last[:157] + "..."


def sqlite_artifact_root(tracking_uri: str) -> str | None:
    """Where artifacts go for a SQLite tracking URI: beside the database, as `hmtl sweep`
    keeps them (MLflow's default, `./mlruns`, would litter the current folder); None (the
    server's own root) for a tracking server."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return (Path(tracking_uri[len("sqlite:///") :]).parent / "mlflow-artifacts").resolve().as_uri()


def create_local_store(tracking_uri: str) -> None:
    """Create a SQLite tracking database with its tables migrated, atomically.

    MLflow would create it on first use, in the tracking thread while the first trials run;
    a sweep killed during those seconds (many on a loaded machine) left a half-migrated
    database that no later client opens (`table _alembic_tmp_... already exists`), so
    `hmtl resume` could not track. Migrated in a temporary file and linked into place, a
    database is whole or absent. One that exists is MLflow's to open (and upgrade).

    Migrating an empty database takes MLflow 1 to 2 s of CPU; the first one made with this
    MLflow version is kept as a template (`empty_store`) and later ones are copies of it,
    with MLflow's Default experiment pointed beside the new database."""
    if not tracking_uri.startswith("sqlite:///"):
        return
    path = Path(tracking_uri[len("sqlite:///") :])
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        if not _copy_template(temp):
            _migrate(temp)
            _keep_template(temp)
        root = sqlite_artifact_root(tracking_uri)
        with contextlib.closing(sqlite3.connect(temp)) as db, db:
            db.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                       (f"{root}/0",))  # fmt: skip
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def empty_store() -> Path:
    """The template of an empty, migrated tracking database for this MLflow version, in the
    user's cache (`$XDG_CACHE_HOME/hmtl/mlflow`, else `~/.cache/hmtl/mlflow`)."""
    import mlflow  # lazy, as above

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "hmtl" / "mlflow" / f"empty-{mlflow.__version__}.db"


def _migrate(path: Path) -> None:
    # Lazy: keeps mlflow out of the checks that run before Ray starts.
    from mlflow.tracking import MlflowClient

    MlflowClient(f"sqlite:///{path}").search_experiments(max_results=1)


def _copy_template(temp: Path) -> bool:
    """Copy the template to `temp` if there is one that opens as MLflow's; False if not."""
    try:
        shutil.copyfile(empty_store(), temp)
        with contextlib.closing(sqlite3.connect(temp)) as db:
            found = db.execute("SELECT COUNT(*) FROM experiments WHERE experiment_id = 0")
            return found.fetchone()[0] == 1
    except (OSError, sqlite3.Error):
        temp.unlink(missing_ok=True)
        return False


def _keep_template(migrated: Path) -> None:
    """Keep a copy of a freshly migrated database as the template (best effort: a cache
    that cannot be written only costs the next database its migration)."""
    template = empty_store()
    scratch = template.with_name(f".{template.name}.{os.getpid()}-{threading.get_ident()}")
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(migrated, scratch)
        os.replace(scratch, template)
    except OSError:
        scratch.unlink(missing_ok=True)


_creating: dict[str, tuple[threading.Thread, list[Exception]]] = {}


def start_tracking_store(tracking_uri: str) -> None:
    """`create_local_store` in a thread, beside the first trials' start (it takes about 2 s
    of CPU); the sweep's tracking thread waits for it (`wait_for_tracking_store`)."""
    failed: list[Exception] = []

    def create() -> None:
        try:
            create_local_store(tracking_uri)
        except Exception as err:  # sqlite3/SQLAlchemy errors, e.g. a read-only folder
            failed.append(err)

    worker = threading.Thread(target=create, name="hmtl-tracking-store", daemon=True)
    _creating[tracking_uri] = (worker, failed)
    worker.start()


def wait_for_tracking_store(tracking_uri: str) -> None:
    """Wait until `start_tracking_store` is done with this URI (if it was started here);
    a failure is one TrackingError line."""
    worker, failed = _creating.get(tracking_uri, (None, []))
    if worker is not None:
        worker.join()
    if failed:
        line = (str(failed[0]).strip().splitlines() or [type(failed[0]).__name__])[0]
        raise TrackingError(f"--tracking-uri {redact_uri(tracking_uri)}: {line}")


def transient(err: Exception) -> bool:
    """Worth retrying: the server is unreachable, overloaded or failing (5xx), or refuses us
    for now (401/403/429). A request it understood and rejected (other 4xx) is not."""
    from mlflow.exceptions import MlflowException  # lazy: the CLI reads this module pre-MLflow

    if isinstance(err, MlflowException):
        status = err.get_http_status_code()
        return status >= 500 or status in (401, 403, 408, 429)
    if isinstance(err, StorageError):
        return True  # the spool's store may be away too
    # requests' and pyarrow's connection errors are OSErrors, and so are a missing or
    # unreadable local file (a trial's deleted checkpoint): asking again cannot bring it back,
    # and retried, it would hold every later operation behind it until the spool.
    return isinstance(err, OSError) and not isinstance(err, LOCAL_FILE_ERRORS)


LOCAL_FILE_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)
