"""Sweeps and studies as Ray jobs: `hmtl submit`, `hmtl logs`, `hmtl stop` through the jobs API.

A job is `python -m hmtl sweep ...`, `study ...` (or `resume ...`) run on the cluster's head
node, with the project folder uploaded as its working directory (data, run folders and the
virtual environment left out). The sweep's driver joins the cluster with `--address auto`.

Token authentication (Ray 2.60): the dashboard, which serves the jobs API, answers 401
without an `Authorization: Bearer <token>` header and 403 with a wrong token. The token is
read here the way Ray reads it, first found wins: `RAY_AUTH_TOKEN` (the token itself),
`RAY_AUTH_TOKEN_PATH` (a file; set but unreadable is an error, as in Ray), then
`~/.ray/auth_token` (what `ray get-auth-token --generate` writes). Unlike `ray job submit`,
`RAY_AUTH_MODE=token` need not be set on the client; `RAY_AUTH_MODE=disabled` sends nothing.
The token travels only in that header: never in the job's entrypoint, environment or
metadata, and never in a message.

Nodes share nothing but object storage, so a local storage path is refused before
submitting when the cluster has more than one alive node (counted with the state API,
`GET /api/v0/nodes`, on the same address and token). A single-node cluster may use a local
path, which is a path on the head node; a relative one (the default `hmtl-runs` too) lands
in Ray's unpacked copy of the project under the head's Ray session folder, which Ray may
delete. An autoscaling cluster scaled down to its head counts as one node.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import requests
import yaml
from ray.exceptions import AuthenticationError
from ray.job_submission import JobSubmissionClient
from ray.util.state import StateApiClient
from ray.util.state.common import ListApiOptions, StateResource

import hmtl
from hmtl.orchestration.sweep.space import SpaceError, load_space
from hmtl.trainables.data.storage import is_remote, redact

# Left out of the upload (gitignore patterns, relative to the project folder; Ray also
# honours the project's .gitignore). A leading "/" anchors a pattern at the project root:
# a bare "data" would also drop the `trainables/data` package.
EXCLUDES = [
    "/.venv/",
    "/.git/",
    "/hmtl-runs/",
    "/data/",
    "/datasets/",
    "/mlruns/",
    "/mlflow-artifacts/",
    "/build/",
    "/dist/",
    "*.egg-info/",
    "__pycache__/",
    ".pytest_cache/",
    ".ruff_cache/",
    "*.parquet",
    "*.db",
    "*.log",
]
NOT_UPLOADED = {".venv", ".git", "hmtl-runs", "data", "datasets", "mlruns", "build", "dist"}
# Non-secret settings passed on to the job when set here. AWS credentials and the Ray token
# are never among them: the cluster has its own (instance profile, token file).
FORWARDED_ENV = ("HMTL_S3_ENDPOINT",)
TOKEN_SOURCES = "RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token"
REQUEST_TIMEOUT_S = 15


class JobError(Exception):
    """A submission, log or stop request that cannot be done, as one line for the user."""


@dataclass(frozen=True)
class Submission:
    job_id: str
    address: str
    command: str
    """The hmtl command the job runs (shown to the user)."""
    nodes: int
    note: str | None
    """Where a local storage path really lives, when one is used."""


# ------------------------------------------------------------------ address and token


def normalize_address(address: str) -> str:
    """The jobs API URL: `http://HOST:PORT` (a bare HOST:PORT gets `http://`)."""
    text = address.strip().rstrip("/")
    if "://" not in text:
        text = f"http://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise JobError(
            f"--address {address}: give the Ray dashboard's URL, e.g. http://127.0.0.1:8265 "
            "(through `ray dashboard cluster.yaml` on a cluster)"
        )
    return text


def auth_token() -> str | None:
    """The cluster token, from where Ray 2.60 looks for it (see the module docstring)."""
    if os.environ.get("RAY_AUTH_MODE", "").strip().lower() == "disabled":
        return None
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if token:
        return token
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        try:
            token = Path(path).expanduser().read_text().strip()
        except OSError:
            token = ""
        if not token:
            raise JobError(f"RAY_AUTH_TOKEN_PATH={path}: the token file cannot be read or is empty")
        return token
    try:
        return (Path.home() / ".ray" / "auth_token").read_text().strip() or None
    except OSError:
        return None


def auth_headers() -> dict[str, str]:
    token = auth_token()
    return {"Authorization": f"Bearer {token}"} if token else {}


def _check_reachable(address: str, headers: dict[str, str]) -> None:
    """Fail fast, with a timeout and one line, on an unreachable or refusing jobs API."""

    try:
        response = requests.get(
            f"{address}/api/version", headers=headers, timeout=REQUEST_TIMEOUT_S
        )
    except requests.RequestException:
        raise JobError(
            f"cannot reach the Ray jobs API at {address} (is the cluster up, and on a cluster "
            "the `ray dashboard cluster.yaml` tunnel open?)"
        ) from None
    if response.status_code in (401, 403):
        raise JobError(_auth_message(address, response.status_code, bool(headers)))
    if response.status_code != 200:
        raise JobError(
            f"{address} answered HTTP {response.status_code} to /api/version: "
            "not a Ray dashboard (jobs API)?"
        )


def _auth_message(address: str, status: int, sent: bool) -> str:
    if status == 403 or sent:
        return f"{address} refused the request: authentication failed (the token was rejected)"
    return (
        f"{address} refused the request: authentication required and no token found "
        f"(set {TOKEN_SOURCES})"
    )


def _warn_plain_http(address: str, headers: dict[str, str], warn: Callable[[str], None]) -> None:
    parts = urlsplit(address)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if headers and parts.scheme == "http" and not loopback:
        warn(
            f"warning: sending the cluster token over plain HTTP to {parts.hostname}; "
            "reach the dashboard through `ray dashboard cluster.yaml` (an SSH tunnel) instead"
        )


def client(address: str, warn: Callable[[str], None] | None = None):
    """A `JobSubmissionClient` for `address` that presents the cluster token, if any."""

    address = normalize_address(address)
    headers = auth_headers()
    if warn is not None:
        _warn_plain_http(address, headers, warn)
    _check_reachable(address, headers)
    with _errors(address, headers):
        return JobSubmissionClient(address, headers=headers)


class _errors:
    """Turn the SDK's exceptions into one-line `JobError`s: our own words for connection,
    authentication and unknown-job failures; otherwise the first line of the SDK's message,
    with anything that looks like a token removed."""

    def __init__(self, address: str, headers: dict[str, str], job_id: str | None = None):
        self.address, self.sent, self.job_id = address, bool(headers), job_id

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if err is None or isinstance(err, JobError):
            return False

        if isinstance(err, AuthenticationError):
            status = 403 if "Authentication failed" in err.message else 401
            raise JobError(_auth_message(self.address, status, self.sent)) from None
        if isinstance(err, requests.RequestException | ConnectionError):
            raise JobError(f"lost the connection to the Ray jobs API at {self.address}") from None
        text = str(err)
        if self.job_id and ("404" in text or "does not exist" in text):
            raise JobError(f"no job {self.job_id} on {self.address}") from None
        if isinstance(err, RuntimeError | ValueError):
            first = _scrub(text.strip().splitlines()[0] if text.strip() else type(err).__name__)
            raise JobError(f"{self.address}: {first}") from None
        return False


def _scrub(text: str) -> str:
    """`text` without the token, should a server message ever echo it."""
    try:
        token = auth_token()
    except JobError:
        token = None
    text = re.sub(r"(?i)(bearer\s+)\S+", r"\1<redacted>", text)
    return text.replace(token, "<redacted>") if token else text


# ------------------------------------------------------------------ cluster and storage


def node_count(address: str) -> int:
    """Alive nodes of the cluster, from the state API the dashboard serves."""

    address = normalize_address(address)
    headers = auth_headers()
    with _errors(address, headers):
        nodes = StateApiClient(address, headers=headers).list(
            StateResource.NODES,
            options=ListApiOptions(filters=[("state", "=", "ALIVE")], timeout=REQUEST_TIMEOUT_S),
            raise_on_missing_output=False,
        )
    return len(nodes)


def check_storage(storage: str | None, nodes: int, option: str = "--storage") -> str | None:
    """Refuse local storage on a multi-node cluster; say where local storage lands otherwise.

    Returns a note for the user when the storage is a path on the head node."""

    if storage is not None and redact(storage) != storage:
        raise JobError(
            f"{option} {redact(storage)}: credentials do not belong in a URI (it would be "
            "visible in the job's command line); the cluster uses its own AWS credentials"
        )
    if storage is not None and is_remote(storage):
        return None
    if storage is not None and "://" in storage and not storage.startswith("file://"):
        raise JobError(f"{option} {storage}: unsupported storage scheme (use a path or s3://)")
    if nodes > 1:
        if storage is None:
            raise JobError(
                f"--storage s3://... is required on a cluster of {nodes} nodes "
                "(nodes share nothing but object storage)"
            )
        raise JobError(
            f"{option} {storage}: a local path, but the cluster has {nodes} nodes, which share "
            "nothing but object storage; use s3://..."
        )
    shown = storage or "hmtl-runs"
    local = shown[len("file://") :] if shown.startswith("file://") else shown
    if os.path.isabs(os.path.expanduser(local)):
        return f"storage {shown} is a folder on the head node"
    return (
        f"storage {shown} is relative to the job's working directory on the head node (Ray's "
        "unpacked copy of the project, which Ray may delete): give an absolute path or "
        "s3://... to keep the results"
    )


# ------------------------------------------------------------------ what the job runs


def project_root() -> Path:
    """The project folder uploaded as the job's working directory (a source checkout)."""

    root = Path(hmtl.__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file() or not (root / "search_spaces").is_dir():
        raise JobError(
            f"{root}: not a project checkout; `hmtl submit` uploads the project's source, so "
            "run it from a checkout (pip install -e .)"
        )
    return root


def _in_project(given: str, path: Path, root: Path) -> str:
    """`path` relative to the project folder (what the job gets), or JobError."""
    try:
        relative = path.resolve().relative_to(root)
    except ValueError:
        raise JobError(
            f"{given}: outside the project folder {root}, which is what the job gets; "
            "copy the file into the project (e.g. search_spaces/) and submit that path"
        ) from None
    if relative.parts[0] in NOT_UPLOADED or "__pycache__" in relative.parts:
        raise JobError(
            f"{given}: inside {relative.parts[0]}/, which is not uploaded with the job; "
            "move it elsewhere in the project (e.g. search_spaces/)"
        )
    return relative.as_posix()


def space_argument(space: str, root: Path) -> str:
    """SPACE as the job will see it: a shipped name, or a path relative to the project.

    The space is loaded and validated here first, so a broken one is refused before
    anything is submitted."""

    path = Path(space).expanduser()
    # A shipped name is passed as it is (load_space lists the names when it is not one).
    argument = _in_project(space, path, root) if path.is_file() else space
    try:
        load_space(str(path) if path.is_file() else space)
    except SpaceError as err:
        raise JobError(str(err)) from None
    return argument


def is_study(name: str) -> bool:
    """Whether WORK names a study (a shipped study, or a file with `stages`), not a space."""
    path = Path(name).expanduser()
    if not path.is_file():  # shipped studies: search_spaces/studies/<name>.yaml
        return (resources.files("hmtl.search_spaces") / "studies" / f"{name}.yaml").is_file()
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return False  # load_space says what is wrong with it
    return isinstance(raw, dict) and "stages" in raw


def study_argument(study: str, root: Path) -> str:
    """STUDY as the job will see it (as `space_argument`), validated here first."""
    # Lazy: keeps matplotlib (the study package) out of sweep submissions.
    from hmtl.orchestration.study.checks import StudyError
    from hmtl.orchestration.study.spec import load_study

    path = Path(study).expanduser()
    argument = _in_project(study, path, root) if path.is_file() else study
    try:
        load_study(str(path) if path.is_file() else study)
    except StudyError as err:
        raise JobError(str(err)) from None
    return argument


def study_command(
    study: str, storage: str | None, tracking_uri: str | None, smoke: bool = False
) -> list[str]:
    """The `hmtl study` arguments the job runs (after `python -m hmtl`)."""
    _check_tracking(storage, tracking_uri)
    args = ["study", study, "--address", "auto"]
    if storage is not None:
        args += ["--storage", storage]
    if tracking_uri is not None:
        args += ["--tracking-uri", tracking_uri]
    if smoke:
        args.append("--smoke")
    return args


def _check_tracking(storage: str | None, tracking_uri: str | None) -> None:
    if storage is not None and "://" in storage and tracking_uri is None:
        raise JobError(
            f"--storage {storage.split('?', 1)[0]}: object storage needs --tracking-uri "
            "(an MLflow server); the SQLite default lives in a local storage folder"
        )
    if tracking_uri is not None:
        parts = urlsplit(tracking_uri)
        if parts.username or parts.password:
            raise JobError(
                "--tracking-uri: credentials do not belong in the URI (it would be visible in "
                "the job's command line); set MLFLOW_TRACKING_USERNAME/PASSWORD on the cluster"
            )


def sweep_command(
    space: str,
    storage: str | None,
    tracking_uri: str | None,
    name: str | None = None,
    num_samples: int | None = None,
    smoke: bool = False,
) -> list[str]:
    """The `hmtl sweep` arguments the job runs (after `python -m hmtl`)."""
    if name is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise JobError(f"--name {name!r}: use letters, digits, '_', '.' and '-' only")
    _check_tracking(storage, tracking_uri)
    args = ["sweep", space, "--address", "auto"]
    if storage is not None:
        args += ["--storage", storage]
    if tracking_uri is not None:
        args += ["--tracking-uri", tracking_uri]
    if name is not None:
        args += ["--name", name]
    if num_samples is not None:
        args += ["--num-samples", str(num_samples)]
    if smoke:
        args.append("--smoke")
    return args


def resume_command(uri: str) -> list[str]:
    """`hmtl resume` of a sweep or a study folder (it tells them apart itself)."""
    return ["resume", uri, "--address", "auto"]


def runtime_env(root: Path) -> dict:
    env_vars = {"PYTHONUNBUFFERED": "1"}
    env_vars.update({k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)})
    return {"working_dir": str(root), "excludes": list(EXCLUDES), "env_vars": env_vars}


def submit(
    address: str,
    command: list[str],
    storage: str | None,
    storage_option: str = "--storage",
    warn: Callable[[str], None] | None = None,
) -> Submission:
    """Check the storage against the cluster, then submit `hmtl <command>` as a job."""
    root = project_root()
    jobs = client(address, warn)
    address = normalize_address(address)
    nodes = node_count(address)
    note = check_storage(storage, nodes, storage_option)
    entrypoint = shlex.join(["python", "-m", "hmtl", *command])
    with _errors(address, auth_headers()):
        job_id = jobs.submit_job(
            entrypoint=entrypoint,
            runtime_env=runtime_env(root),
            metadata={"hmtl": command[0]},
        )
    return Submission(job_id, address, shlex.join(["hmtl", *command]), nodes, note)


# ------------------------------------------------------------------ following and stopping


def status(address: str, job_id: str) -> str:
    jobs = client(address)
    with _errors(normalize_address(address), auth_headers(), job_id):
        return str(jobs.get_job_status(job_id).value)


def logs(address: str, job_id: str) -> str:
    jobs = client(address)
    with _errors(normalize_address(address), auth_headers(), job_id):
        jobs.get_job_status(job_id)  # an unknown id is a 404 here
        return jobs.get_job_logs(job_id)


def follow_logs(address: str, job_id: str, echo: Callable[[str], None]) -> str:
    """Stream the job's logs to `echo` until it ends; return its final status."""
    jobs = client(address)
    address = normalize_address(address)
    with _errors(address, auth_headers(), job_id):
        jobs.get_job_status(job_id)

        async def tail() -> None:
            async for chunk in jobs.tail_job_logs(job_id):
                echo(chunk)

        try:
            asyncio.run(tail())
        except Exception as err:  # aiohttp's errors: fall back to polling the full log
            if _is_sdk_error(err):
                raise
            return _poll_logs(jobs, job_id, echo)
        return str(jobs.get_job_status(job_id).value)


def _is_sdk_error(err: Exception) -> bool:

    return isinstance(err, AuthenticationError | JobError)


def _poll_logs(jobs, job_id: str, echo: Callable[[str], None], every_s: float = 2.0) -> str:
    shown = 0
    while True:
        state = jobs.get_job_status(job_id)
        text = jobs.get_job_logs(job_id)
        if len(text) > shown:
            echo(text[shown:])
            shown = len(text)
        if state.is_terminal():
            return str(state.value)
        time.sleep(every_s)


def stop(address: str, job_id: str, wait_s: float = 60) -> str:
    """Ask the job to stop and wait (up to `wait_s`) for its final status."""
    jobs = client(address)
    with _errors(normalize_address(address), auth_headers(), job_id):
        state = jobs.get_job_status(job_id)
        if not state.is_terminal():
            jobs.stop_job(job_id)
            deadline = time.monotonic() + wait_s
            while not state.is_terminal() and time.monotonic() < deadline:
                time.sleep(1)
                state = jobs.get_job_status(job_id)
        return str(state.value)
