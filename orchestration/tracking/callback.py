"""MLflow tracking of a sweep, from the process that drives it.

One experiment per sweep, one parent run per sweep, one child run per trial tagged with
the sweep name, the Tune trial id, the git commit, the dataset fingerprint and the host.
Runs are found again by those tags, so a resumed sweep keeps logging into the runs it
had (MLflow cannot create a run with a chosen id), and epochs already logged are not
logged again: a resumed curve continues without gaps or repeats.

Metrics arrive once per epoch from Tune (rank 0's report only) and go out in one batch
with the epoch as step; `cost/*` include the work a trial lost to restarts, also logged on
its own as `cost/lost_*` and `time/lost_seconds` (trainables/accounting.py). Every
checkpoint is recorded on its run as a tag `hmtl.checkpoint.<epoch>` = URI (the
checkpoint index). When a trial ends, its best checkpoint is uploaded once, with the
resolved config, the dataset card and the confusion-matrix image.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ray.tune import Callback

from hmtl.orchestration.platform.store import StorageError, Store
from hmtl.orchestration.sweep.space import TRIAL_KEY, SearchSpace
from hmtl.orchestration.tracking.ops import Delivery
from hmtl.orchestration.tracking.probe import wait_for_tracking_store
from hmtl.orchestration.tracking.queue import Spool, TrackingQueue
from hmtl.orchestration.tracking.tags import CHECKPOINT_TAG, redact_uri
from hmtl.trainables.accounting import LostWork, paid
from hmtl.trainables.config import flatten


class MlflowCallback(Callback):
    """Tune callback: a child run per trial, a metric row per epoch, artifacts at the end.

    Every call is queued for the tracking worker (orchestration/tracking/queue.py), so the
    hooks return at once whatever MLflow is doing; trials are named by Tune trial id.
    """

    def __init__(
        self,
        tracking_uri: str,
        space: SearchSpace,
        artifact_root: str | None = None,
        store: Store | None = None,
        lineage: dict[str, dict[str, str]] | None = None,
        context: dict | None = None,
    ) -> None:
        """`store` is the sweep's storage root: where checkpoints and the spool live;
        `lineage` the tags of each `model.pretrained` reference
        (orchestration/tracking/pretrained.py).
        `context` places the sweep inside a study: `experiment` (the study's, instead of
        the sweep's own), `parent` (the study's run, above the sweep's) and `labels` (tags
        on the sweep's run and every trial's)."""
        self.tracking_uri = redact_uri(tracking_uri)
        self.lineage = lineage or {}
        self.space = space
        self.artifact_root = artifact_root
        self.store = store
        self._queue = None
        self._ended: set[str] = set()  # trials this driver saw end
        self._started: set[str] = set()  # trials whose start this driver queued
        self._lost: dict[str, LostWork] = {}  # work lost to restarts, by trial
        self.context = dict(context or {})

    def _uri(self, path: str) -> str:
        return self.store.as_uri(path) if self.store else path

    def __getstate__(self) -> dict:
        # Tune pickles callbacks into the experiment state; the worker thread stays behind,
        # and a restored driver has seen no trial start or end yet (nor any result: the
        # stored ones are read again as trials start).
        fresh = {"_queue": None, "_ended": set(), "_started": set(), "_lost": {}}
        return {**self.__dict__, **fresh}

    def __setstate__(self, state: dict) -> None:
        fresh = {"_ended": set(), "_started": set(), "_lost": {}, "context": {}}
        self.__dict__.update({**fresh, **state})

    @property
    def queue(self):
        if self._queue is None:
            filesystem = self.store.filesystem if self.store else None
            self._queue = TrackingQueue(
                lambda: self._delivery(filesystem),
                Spool(self.store or Store.open("hmtl-runs"), self.space.name),
                self.tracking_uri,
            )
        return self._queue

    def _delivery(self, filesystem):

        wait_for_tracking_store(self.tracking_uri)  # a SQLite database made beside Ray
        return Delivery(
            self.tracking_uri, self.space.name, self.artifact_root, filesystem, self.context
        )

    def setup(self, **info) -> None:
        self.queue.start()  # replays what an interrupted run left in the spool

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._queue_start(trial)
        self._replay_stored_results(trial)

    def _queue_start(self, trial) -> None:
        """The trial's run with its params, lineage and study tags (found or created)."""
        self._started.add(trial.trial_id)
        params = self.space.trial_config(trial.config).flat()
        loop = self.space.trial_loop(trial.config)  # an active-learning trial's own keys
        params.update({f"active.{k}": v for k, v in flatten(loop).items()})
        self.queue.put("trial_start", trial_id=trial.trial_id, params=params)
        # Where the trial's backbone came from: lineage tags and the run's description.
        lineage = getattr(self, "lineage", {}).get(params.get("model.pretrained"))
        if lineage:
            self.queue.put("tag", trial_id=trial.trial_id, tags=lineage)
        point = trial.config.get(TRIAL_KEY)
        if self.space.trials and point is not None:  # a study's arm, cell and seed
            tags = self.space.trials[int(point)].tags
            self.queue.put("tag", trial_id=trial.trial_id, tags=tags)

    def _replay_stored_results(self, trial) -> None:
        """Queue again what Tune stored of a trial's earlier epochs (its `result.json`).

        A driver killed while the queue was behind loses the operations it held; the trial
        then resumes after its checkpointed epochs, which Tune never reports again. Tune's
        stored results are the record: replaying them is free where MLflow has them already
        (a step is logged once) and fills in what was lost. A trial starting afresh has none.
        """
        if self.store is None:
            return
        name = f"sweeps/{self.space.name}/trial-{trial.trial_id}"
        try:
            lines = self.store.read_text(f"{name}/result.json").splitlines()
        except (FileNotFoundError, StorageError):
            return
        for line in lines:
            try:
                result = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by the kill
            self.on_trial_result(None, None, trial, result)
            if result.get("checkpoint_dir_name"):
                epoch = int(result.get("epoch", 0))
                path = self.store.path(name, result["checkpoint_dir_name"])
                tags = {f"{CHECKPOINT_TAG}{epoch:04d}": self._uri(path)}
                self.queue.put("tag", trial_id=trial.trial_id, tags=tags)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        metrics = {
            k: float(v)
            for k, v in result.items()
            if ("/" in k or k == "lr") and isinstance(v, int | float) and not isinstance(v, bool)
        }
        # Costs as paid: with the work lost to restarts (a killed worker, node or driver).
        lost = self._lost.setdefault(trial.trial_id, LostWork()).add(result)
        metrics.update(paid(metrics, lost))
        tags = {}
        if "data/fingerprint" in result:
            tags["hmtl.dataset_fingerprint"] = str(result["data/fingerprint"])
        if result.get("checkpoint_path"):  # TorchTrainer trials report their checkpoints
            tags[f"{CHECKPOINT_TAG}{int(result['epoch']):04d}"] = self._uri(
                result["checkpoint_path"]
            )
        self.queue.put(
            "log_epoch",
            trial_id=trial.trial_id,
            step=int(result.get("epoch", 0)),
            timestamp_ms=int(time.time() * 1000),
            metrics=metrics,
            tags=tags,
        )

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:
        epoch = int((trial.last_result or {}).get("epoch", 0))
        tags = {f"{CHECKPOINT_TAG}{epoch:04d}": self._uri(checkpoint.path)}
        self.queue.put("tag", trial_id=trial.trial_id, tags=tags)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._ended.add(trial.trial_id)
        metric, mode = self.space.metrics[0], self.space.modes[0]
        op = ARTIFACT_OPS[self.space.runs]
        self.queue.put(op, trial_id=trial.trial_id, metric=metric, mode=mode)
        self.queue.put("finish", trial_id=trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._ended.add(trial.trial_id)
        self.queue.put("finish", trial_id=trial.trial_id, status="FAILED")

    def on_experiment_end(self, trials, **info) -> None:
        # Trials that ended before a killed driver's queue delivered their operations are
        # not run again on resume, and Tune may end a restored trial without starting it: the
        # whole trial (its run, params and tags, every stored epoch and checkpoint, its end)
        # is queued again here from what Tune stored. Every operation is idempotent, so what
        # MLflow has already stays as it is.
        for trial in trials:
            if trial.trial_id in self._ended or trial.status not in ("TERMINATED", "ERROR"):
                continue
            if trial.trial_id not in self._started:
                self._queue_start(trial)
            self._replay_stored_results(trial)
            if trial.status == "TERMINATED":
                self.on_trial_complete(None, trials, trial)
            else:
                self.on_trial_error(None, trials, trial)
        if self.store is not None:
            sweep = self.store.child("sweeps", self.space.name)
            self.queue.put(
                "finish_sweep",
                sweep_uri=sweep.uri,
                sweep_root=sweep.root,
                tracking_uri=self.tracking_uri,
            )
        self.queue.put("finish", trial_id=None)
        self.queue.close()
        self._queue = None


ARTIFACT_OPS = {"train": "trial_artifacts", "active": "active_artifacts"}
"""What a finished trial logs, by what it ran (orchestration/tracking/ops.py)."""


def default_tracking_uri(storage: str) -> str:
    """SQLite next to a local storage folder (the embedded default)."""
    return f"sqlite:///{Path(storage).resolve() / 'mlflow.db'}"
