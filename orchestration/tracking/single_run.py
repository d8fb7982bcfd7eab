"""`hmtl train` with tracking: one MLflow run for one training, optionally continuing a trial.

`hmtl train --resume` may point at a checkpoint on object storage (it is fetched to a local
folder first). A run that continues a sweep's trial is a new run, in the sweep's
experiment, tagged with the run it came from (found by the sweep name and trial id in
the checkpoint's path: `.../sweeps/<sweep>/trial-<id>/...`).
"""

from __future__ import annotations

import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from hmtl.orchestration.tracking.artifacts import fetch
from hmtl.orchestration.tracking.callback import CHECKPOINT_TAG
from hmtl.orchestration.tracking.native import training_experiment
from hmtl.orchestration.tracking.pretrained import best_checkpoint
from hmtl.orchestration.tracking.probe import create_local_store
from hmtl.orchestration.tracking.tags import (
    BEST_EPOCH_TAG,
    BEST_TAG,
    MAX_PARAM_LENGTH,
    RESUMED_FROM_TAG,
    SWEEP_TAG,
    TRIAL_TAG,
    git_commit,
    redact_uri,
)
from hmtl.trainables.checkpoint import CheckpointError
from hmtl.trainables.config import TrainConfig
from hmtl.trainables.data.dataset import refuse_unlabelled
from hmtl.trainables.data.prepared import DatasetError
from hmtl.trainables.data.storage import redact, storage_error
from hmtl.trainables.models import check_pretrained
from hmtl.trainables.runtime.device import check_device
from hmtl.trainables.session import LocalSession

TRIAL_PATH = re.compile(r"/sweeps/([^/]+)/trial-([^/]+)/")


@contextmanager
def local_checkpoint(uri: str | None) -> Iterator[str | None]:
    """A local folder holding the checkpoint at `uri` while the block runs (None stays None).

    A remote checkpoint is fetched into a `hmtl-train-*` scratch folder in the temp
    directory, removed on the way out whether the block succeeded or failed."""
    if uri is None or "://" not in uri:
        yield uri
        return
    scratch = Path(tempfile.mkdtemp(prefix="hmtl-train-"))
    try:
        try:
            local = fetch(uri, scratch / "resume-from")
        except FileNotFoundError:
            raise CheckpointError(f"--resume {redact(uri)}: no such checkpoint") from None
        except OSError as err:  # pyarrow's errors for a missing bucket or endpoint
            raise storage_error(uri, err, "reading") from None
        yield str(local)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def check_inputs(cfg: TrainConfig, weights: str | None = None, resuming: bool = False) -> None:
    """Refuse, before a run folder or an MLflow run exists, what `train` would refuse only
    later: a missing local dataset folder, `runtime.device: cuda` without CUDA, or
    `model.pretrained` weights it cannot load (`weights`: their local copy; a resumed run
    loads none, its checkpoint has them)."""
    check_device(cfg.runtime)
    source = cfg.data.source
    if source != "synthetic" and "://" not in source and not Path(source).exists():
        raise DatasetError(f"data.source: {source}: no such dataset folder")
    if source != "synthetic" and "://" not in source and not Path(source, "card.json").is_file():
        raise DatasetError(
            f"data.source: {source}: no dataset card (card.json); is it a prepared dataset? "
            "(hmtl data prepare)"
        )
    refuse_unlabelled(cfg.data, cfg.tasks.main.enabled())
    if not resuming:
        check_pretrained(cfg.model, cfg.data.channels, weights)


def origin_run(client: MlflowClient, checkpoint_uri: str) -> tuple[str, str] | None:
    """(experiment id, run id) of the sweep trial a checkpoint belongs to, if tracked."""
    match = TRIAL_PATH.search(checkpoint_uri.replace("\\", "/"))
    if not match:
        return None
    sweep, trial = match.groups()
    experiment = client.get_experiment_by_name(sweep)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        f"tags.`{SWEEP_TAG}` = '{sweep}' and tags.`{TRIAL_TAG}` = '{trial}'",
        max_results=1,
    )
    return (experiment.experiment_id, runs[0].info.run_id) if runs else None


class TrackedSession(LocalSession):
    """A LocalSession that also logs every epoch (metrics, checkpoint URI) to one MLflow run."""

    def __init__(
        self,
        out_dir,
        cfg: TrainConfig,
        tracking_uri: str,
        resume_from: str | None = None,
        origin_uri: str | None = None,
        log=print,
        experiment: str = "hmtl-train",
        lineage: dict[str, str] | None = None,
    ):
        """`resume_from` is the local checkpoint folder; `origin_uri` where it came from;
        `lineage` the tags of the pre-trained source (orchestration/tracking/pretrained.py)."""
        super().__init__(out_dir, resume_from=resume_from, log=log)
        create_local_store(tracking_uri)  # a SQLite database whole or absent, made fast
        self.client = MlflowClient(redact_uri(tracking_uri))
        tags = {"hmtl.git_commit": git_commit(), "hmtl.host": socket.gethostname()}
        tags.update(lineage or {})
        origin = origin_run(self.client, origin_uri) if origin_uri else None
        if origin:
            experiment_id, tags[RESUMED_FROM_TAG] = origin
        else:
            experiment_id = training_experiment(self.client, experiment, tracking_uri)
        if origin_uri:
            tags["hmtl.resumed_from_checkpoint"] = origin_uri
        self.run_id = self.client.create_run(
            experiment_id, run_name=Path(out_dir).name, tags=tags
        ).info.run_id
        self.client.log_batch(
            self.run_id,
            params=[Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in sorted(cfg.flat().items())],
        )

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        super().report(metrics, checkpoint_dir)
        step = int(metrics.get("epoch", 0))
        stamp = int(time.time() * 1000)
        numbers = [
            Metric(k, float(v), stamp, step)
            for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and k != "epoch"
        ]
        tags = []
        if checkpoint_dir is not None:
            # Absolute, so `runs:/<id>` finds the checkpoint from any working folder.
            where = str(Path(self.latest_checkpoint()).resolve())
            tags.append(RunTag(f"{CHECKPOINT_TAG}{step:04d}", where))
        self.client.log_batch(self.run_id, metrics=numbers, tags=tags)

    def finish(self, status: str = "FINISHED") -> None:
        """End the run; a finished one also names its best checkpoint, as a sweep's trial
        runs do (`hmtl.best_checkpoint`, `hmtl.best_epoch`), for `runs:/<id>` sources."""
        if status == "FINISHED":
            found = best_checkpoint(self.client, self.client.get_run(self.run_id))
            if found is not None:
                epoch, where = found
                best = [RunTag(BEST_EPOCH_TAG, str(epoch)), RunTag(BEST_TAG, where)]
                self.client.log_batch(self.run_id, tags=best)
        self.client.set_terminated(self.run_id, status=status)
