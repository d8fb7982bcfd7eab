"""`model.pretrained` sources resolved before training starts, and the lineage they leave.

A source is a state-dict file, an hmtl checkpoint folder, an `s3://` URI of either, or
`runs:/<mlflow run id>`: that run's best checkpoint, found through its tags (`hmtl.best_checkpoint`,
else the `hmtl.checkpoint.NNNN` index judged by orchestration/sweep/best.py). Resolution happens
here, at the boundary (trainables never imports mlflow): the reference becomes a location
(a local path or a URI), the location a local copy, and the copy's SHA-256 identifies what
was loaded. The reference itself stays in the config, so checkpoints and params keep it.

The run that trains from a source is tagged `hmtl.pretrained_from` (the reference, redacted)
and `hmtl.pretrained_sha256`, and its description links the source run, so any result leads
back to the pre-training that fed it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pyarrow.fs as pafs

from hmtl.orchestration.sweep.best import trial_peak
from hmtl.orchestration.tracking.probe import TrackingError, fast_fail, probe
from hmtl.orchestration.tracking.tags import (
    BEST_EPOCH_TAG,
    BEST_TAG,
    CHECKPOINT_TAG,
    FROM_TAG,
    NOTE_TAG,
    SHA_TAG,
    checkpoint_index,
    redact_uri,
)
from hmtl.trainables.checkpoint import CHECKPOINT_FILE
from hmtl.trainables.data.storage import filesystem_for, redact, storage_error
from hmtl.trainables.models import PretrainedError, check_pretrained

RUNS_PREFIX = "runs:/"
BEST_METRICS = ("val/accuracy", "val/knn_accuracy")
"""What "best" is judged by, in order: a labelled run's accuracy, else a pre-training run's
k-NN accuracy; a run that reported neither gives its last checkpoint."""


@dataclass(frozen=True)
class Source:
    """A resolved `model.pretrained`: the reference as written, where its weights are read
    from (a path or a URI), their SHA-256, and the tracked run it came from, if any."""

    reference: str
    location: str
    sha256: str
    run_id: str | None = None
    experiment_id: str | None = None

    def tags(self) -> dict[str, str]:
        """The lineage tags of a run trained from this source (description included)."""
        shown = redact(self.reference)
        if self.run_id:
            link = f"#/experiments/{self.experiment_id}/runs/{self.run_id}"
            note = (
                f"Fine-tuned from run [{self.run_id}]({link}) (`{shown}`): the backbone of its "
                f"best checkpoint `{redact(self.location)}`, sha256 `{self.sha256}`."
            )
        else:
            note = f"Fine-tuned from `{shown}` (backbone weights, sha256 `{self.sha256}`)."
        return {FROM_TAG: shown, SHA_TAG: self.sha256, NOTE_TAG: note}


def is_run_reference(reference: str | None) -> bool:
    return bool(reference) and reference.startswith(RUNS_PREFIX)


@contextmanager
def resolved(
    reference: str, tracking_uri: str | None, origin: str | None = None
) -> Iterator[tuple[Source, str]]:
    """(the Source, a local file or folder holding its weights) while the block runs; a
    fetched copy is removed on the way out. A relative local path is read against `origin`
    (default: the working folder) and kept absolute. Raises one-line PretrainedError or
    StorageError."""
    location, run_id, experiment_id = locate(reference, tracking_uri)
    if "://" not in location:  # absolute, so trials running elsewhere read the same file
        location = str(Path(origin or os.getcwd(), location).absolute())
    with local_copy(location, reference) as local:
        yield Source(reference, location, sha256_of(local), run_id, experiment_id), local


def resolve_all(
    references: list[str | None],
    tracking_uri: str | None,
    origin: str | None = None,
    check: Callable[[str, str], None] | None = None,
) -> dict[str, Source]:
    """Each distinct reference (None skipped) resolved once, and `check(reference, local
    copy)` run on it (a sweep's shape check before Ray starts); reference -> Source."""
    sources: dict[str, Source] = {}
    for reference in references:
        if reference is None or reference in sources:
            continue
        with resolved(reference, tracking_uri, origin) as (source, local):
            if check is not None:
                check(reference, local)
        sources[reference] = source
    return sources


@contextmanager
def weights_of(source: Source | None) -> Iterator[str | None]:
    """A local copy of a resolved source's weights while the block runs (None: no source).
    Trials and Train workers call this where they run, so a URI is fetched on their node;
    a copy whose SHA-256 is not the one the run is tagged with is refused."""
    if source is None:
        yield None
        return
    with local_copy(source.location, source.reference) as local:
        if sha256_of(local) != source.sha256:
            raise PretrainedError(
                f"model.pretrained: {redact(source.reference)}: {redact(source.location)} "
                "changed since the sweep resolved it (its sha256 differs)"
            )
        yield local


def locate(reference: str, tracking_uri: str | None) -> tuple[str, str | None, str | None]:
    """(location, run id, experiment id) of a reference; only `runs:/` asks MLflow."""
    if not is_run_reference(reference):
        return reference, None, None
    where = f"model.pretrained: {reference}"
    run_id = reference[len(RUNS_PREFIX) :].strip("/")
    if not run_id or "/" in run_id:
        raise PretrainedError(f"{where}: expected runs:/<run id> (a run's best checkpoint)")
    if not tracking_uri:
        raise PretrainedError(
            f"{where}: a runs:/ source needs --tracking-uri (the MLflow that tracked the run)"
        )
    run, client = _get_run(run_id, tracking_uri, where)
    found = best_checkpoint(client, run)
    if found is None:
        raise PretrainedError(
            f"{where}: the run has no checkpoint (no {BEST_TAG} or {CHECKPOINT_TAG}NNNN tag)"
        )
    return found[1], run_id, run.info.experiment_id


def _get_run(run_id: str, tracking_uri: str, where: str):
    """The MLflow run and a client, or a one-line PretrainedError (no such run, no server)."""
    # Lazy: trial processes import this module; only a runs:/ reference needs MLflow.
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    shown = redact_uri(tracking_uri)
    if tracking_uri.startswith("sqlite:///"):
        database = Path(tracking_uri[len("sqlite:///") :])
        if not database.is_file():  # MLflow would create an empty database there
            raise PretrainedError(
                f"{where}: no MLflow database at {database} (give the --tracking-uri that "
                "tracked the run)"
            )
    try:
        probe(tracking_uri)
        client = MlflowClient(shown)
        with fast_fail(10):
            return client.get_run(run_id), client
    except TrackingError as err:
        raise PretrainedError(f"{where}: {err}") from None
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise PretrainedError(f"{where}: no such run in MLflow at {shown}") from None
        first = str(err).strip().splitlines()[0] if str(err).strip() else err.error_code
        raise PretrainedError(f"{where}: MLflow at {shown} failed ({first})") from None


def best_checkpoint(client, run) -> tuple[int, str] | None:
    """(epoch, checkpoint location) of a run's best checkpoint, None if it has none: the
    `hmtl.best_checkpoint` tag when set, else orchestration/sweep/best.py's peak over the run's
    checkpoint tags by the first of BEST_METRICS it logged, else its last checkpoint."""
    tags = run.data.tags
    if BEST_TAG in tags:
        return int(tags.get(BEST_EPOCH_TAG, 0)), tags[BEST_TAG]
    index = checkpoint_index(tags)
    if not index:
        return None
    metric = next((m for m in BEST_METRICS if m in run.data.metrics), None)
    if metric is not None:
        history = client.get_metric_history(run.info.run_id, metric)
        rows = [{"epoch": m.step, metric: m.value} for m in history]
        checkpoints = [(path, {"epoch": epoch}) for epoch, path in sorted(index.items())]
        peak = trial_peak(rows, checkpoints, metric, "max")
        if peak is not None and peak.checkpoint is not None:
            return peak.epoch, peak.checkpoint
    last = max(index)
    return last, index[last]


@contextmanager
def local_copy(location: str, reference: str) -> Iterator[str]:
    """A local file or folder with the weights at `location` while the block runs. A local
    path is used in place; a URI is fetched through the storage layer (its retries and
    redaction) into a `hmtl-pretrained-*` scratch folder, removed on the way out. Of a
    checkpoint folder only `checkpoint.pt` is fetched."""
    where = f"model.pretrained: {redact(reference)}"
    if reference != location:
        where += f" (checkpoint {redact(location)})"
    if "://" not in location or location.startswith("file://"):
        path = Path(location.removeprefix("file://"))
        if not path.exists():
            raise PretrainedError(f"{where}: no such file or folder")
        if path.is_dir() and not (path / CHECKPOINT_FILE).is_file():
            raise PretrainedError(f"{where}: a folder without {CHECKPOINT_FILE}")
        yield str(path)
        return

    filesystem, path = filesystem_for(location)
    scratch = Path(tempfile.mkdtemp(prefix="hmtl-pretrained-"))
    try:
        try:
            kind = filesystem.get_file_info(path).type
            if kind == pafs.FileType.Directory:
                path = f"{path}/{CHECKPOINT_FILE}"
                kind = filesystem.get_file_info(path).type
                target = scratch / "checkpoint"
                target.mkdir()
                local = target / CHECKPOINT_FILE
            else:
                target = local = scratch / (PurePosixPath(path).name or "weights.pt")
            if kind != pafs.FileType.File:
                raise PretrainedError(f"{where}: no such file or checkpoint folder")
            pafs.copy_files(
                path,
                str(local),
                source_filesystem=filesystem,
                destination_filesystem=pafs.LocalFileSystem(),
            )
        except OSError as err:  # pyarrow's errors for a missing bucket or endpoint
            raise storage_error(location, err, "reading") from None
        yield str(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def sha256_of(local: str | Path) -> str:
    """SHA-256 of a weights file, or of a checkpoint folder's checkpoint.pt."""
    path = Path(local)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sweep_sources(
    space, tracking_uri: str | None, origin: str | None = None, check_shapes: bool = True
) -> dict[str, Source]:
    """The sources of a sweep's trials (the base's `model.pretrained`, or every choice when
    it is searched, plus those its explicit trials set, e.g. a study arm's), resolved and,
    with `check_shapes`, loaded into the base backbone once before Ray starts. Raises the
    one-line errors of :func:`resolved`."""
    # Lazy: keeps optuna out of `hmtl train` and `hmtl active`, which never search.
    from optuna.distributions import CategoricalDistribution

    base = space.trial_config({})
    references = [base.model.pretrained]
    searched = space.distributions().get("model.pretrained")
    if isinstance(searched, CategoricalDistribution):
        references = list(searched.choices)
    for point in space.trials or []:
        if point.overrides.get("model.pretrained") not in (None, *references):
            references.append(point.overrides["model.pretrained"])

    def check(reference: str, local: str) -> None:
        if check_shapes:
            model = base.model.model_copy(update={"pretrained": reference})
            check_pretrained(model, base.data.channels, local)

    return resolve_all(references, tracking_uri, origin, check)
