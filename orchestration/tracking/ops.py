"""The MLflow calls of a sweep as named operations with JSON arguments.

The sweep driver never calls MLflow itself: it queues `(name, args)` pairs
(orchestration/tracking/queue.py) and a worker thread delivers them, possibly much later
and possibly from a spool file after a restart. So an operation names its trial by Tune
trial id, never by MLflow run id (the run may not exist yet while the server is away), and
`Delivery.run(trial_id)` finds or creates the run when the operation is delivered.

Every operation may be delivered more than once (a request whose answer was lost, a spool
replayed twice) and must leave MLflow as if it ran once: runs are found by their tags
before one is created, a metric is logged only for a step after the last one stored for
that (run, key), tags and run states are overwrites.

Adding an operation is one decorated function taking the `Delivery` and JSON arguments:

    @tracking_op("log_model")
    def _(delivery, trial_id, path): log_model(delivery.client, delivery.run(trial_id), path)
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from hmtl.orchestration.platform.store import Store
from hmtl.orchestration.tracking.artifacts import fetch, trial_artifacts
from hmtl.orchestration.tracking.native import (
    finish_sweep,
    log_trial_outputs,
    tag_training_experiment,
)
from hmtl.orchestration.tracking.tags import (
    MAX_PARAM_LENGTH,
    PARENT_TAG,
    ROLE_TAG,
    SWEEP_TAG,
    TRIAL_TAG,
    checkpoint_index,
    git_commit,
)
from hmtl.trainables.active.state import MAP_FILE

OPS: dict[str, Callable[..., None]] = {}


def tracking_op(name: str) -> Callable:
    """Register `fn(delivery, **json_args)` as the operation `name`."""

    def register(fn: Callable[..., None]) -> Callable[..., None]:
        OPS[name] = fn
        return fn

    return register


class Delivery:
    """What operations run against: the client, the sweep's experiment, its parent run, the
    trial-id -> run-id map (resolved lazily, cached for the worker's lifetime) and the
    filesystem the sweep's checkpoints are on (None: local paths)."""

    def __init__(
        self,
        tracking_uri: str,
        sweep: str,
        artifact_root: str | None = None,
        filesystem: Any = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        """`context`: a sweep inside a study (tracking/callback.py's MlflowCallback)."""
        context = context or {}
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.sweep = sweep
        self.experiment = context.get("experiment") or sweep
        self.labels: dict[str, str] = dict(context.get("labels") or {})
        self.above: str | None = context.get("parent")
        self.artifact_root = artifact_root
        self.filesystem = filesystem
        self._experiment_id: str | None = None
        self._parent_id: str | None = None
        self._runs: dict[str, str] = {}
        self._steps: dict[str, dict[str, int]] = {}

    def apply(self, name: str, args: dict[str, Any]) -> None:
        OPS[name](self, **args)

    def forget(self) -> None:
        """After a failed request: metrics may have been stored although the answer was
        lost, so the next delivery asks the server which steps it has. (Ids are cached only
        once an answer arrived, so they stay valid.)"""
        self._steps.clear()

    @property
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            found = self.client.get_experiment_by_name(self.experiment)
            self._experiment_id = (
                found.experiment_id
                if found
                else self.client.create_experiment(
                    self.experiment, artifact_location=self.artifact_root
                )
            )
            tag_training_experiment(self.client, self._experiment_id)  # the UI's runs view
        return self._experiment_id

    @property
    def parent_id(self) -> str:
        if self._parent_id is None:
            found = self._find({ROLE_TAG: "sweep"})
            if found:
                self.client.update_run(found, status="RUNNING")
            tags = {ROLE_TAG: "sweep", **({PARENT_TAG: self.above} if self.above else {})}
            self._parent_id = found or self._create(tags, self.sweep)
        return self._parent_id

    def run(self, trial_id: str) -> str:
        """The child run of a trial, created if the server has none yet."""
        if trial_id not in self._runs:
            found = self._find({TRIAL_TAG: trial_id})
            tags = {
                TRIAL_TAG: trial_id,
                ROLE_TAG: "trial",
                PARENT_TAG: self.parent_id,
                "hmtl.git_commit": git_commit(),
                "hmtl.host": socket.gethostname(),
            }
            self._runs[trial_id] = found or self._create(tags, f"trial-{trial_id}")
        return self._runs[trial_id]

    def _find(self, tags: dict[str, str]) -> str | None:
        """Runs are found by tags: a create whose answer was lost is found, not repeated."""
        query = " and ".join(
            f"tags.`{k}` = '{v}'" for k, v in {SWEEP_TAG: self.sweep, **tags}.items()
        )
        runs = self.client.search_runs([self.experiment_id], query, max_results=1)
        return runs[0].info.run_id if runs else None

    def _create(self, tags: dict[str, str], run_name: str) -> str:
        tags = {SWEEP_TAG: self.sweep, **self.labels, **tags}
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=tags)
        return run.info.run_id

    def last_steps(self, run_id: str) -> dict[str, int]:
        """Metric key -> the newest step stored on the run (MLflow keeps it per key)."""
        if run_id not in self._steps:
            metrics = self.client.get_run(run_id).data._metric_objs
            self._steps[run_id] = {m.key: m.step for m in metrics}
        return self._steps[run_id]


@tracking_op("trial_start")
def _trial_start(delivery: Delivery, trial_id: str, params: dict[str, Any]) -> None:
    """The trial's run (found or created) with its params, marked running. Logging the
    same params again is allowed, so a resumed trial or a replay changes nothing."""
    run_id = delivery.run(trial_id)
    delivery.client.log_batch(
        run_id, params=[Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in sorted(params.items())]
    )
    delivery.client.update_run(run_id, status="RUNNING")


ROW_OPS = ("log_epoch", "tag")
"""Operations that only add rows (metrics, tags) to runs: consecutive ones are delivered
together, one request per run, so a backlog after an outage goes out in a few requests."""


def log_rows(delivery: Delivery, ops: list[dict[str, Any]]) -> None:
    """Deliver consecutive `log_epoch` and `tag` operations. A metric key is sent only for a
    step after the last one stored for that run, so a replay (or a trial resumed from an
    older checkpoint) adds nothing; tags are overwrites."""
    rows: dict[str, tuple[list[Metric], dict[str, str]]] = {}
    newest: dict[str, dict[str, int]] = {}
    for op in ops:
        args = op["args"]
        run_id = delivery.run(args["trial_id"])
        metrics, tags = rows.setdefault(run_id, ([], {}))
        tags.update({k: str(v) for k, v in args["tags"].items()})
        if op["op"] == "log_epoch":
            last = newest.setdefault(run_id, dict(delivery.last_steps(run_id)))
            step = args["step"]
            for key, value in sorted(args["metrics"].items()):
                if step > last.get(key, -1):  # from step 0: an active run's first cycle
                    metrics.append(Metric(key, float(value), args["timestamp_ms"], step))
                    last[key] = step
    for run_id, (metrics, tags) in rows.items():
        tag_rows = [RunTag(k, v) for k, v in tags.items()]
        for start in range(0, len(tag_rows), 100):  # MLflow's limits per request
            delivery.client.log_batch(run_id, tags=tag_rows[start : start + 100])
        stored = delivery.last_steps(run_id)
        for start in range(0, len(metrics), 900):
            chunk = metrics[start : start + 900]
            delivery.client.log_batch(run_id, metrics=chunk)
            for metric in chunk:
                stored[metric.key] = max(stored.get(metric.key, -1), metric.step)


@tracking_op("log_epoch")
def _log_epoch(delivery: Delivery, **args: Any) -> None:
    """One epoch: `trial_id`, `step`, `timestamp_ms`, `metrics` and `tags`."""
    log_rows(delivery, [{"op": "log_epoch", "args": args}])


@tracking_op("tag")
def _tag(delivery: Delivery, **args: Any) -> None:
    """Tags on a trial's run: `trial_id`, `tags`."""
    log_rows(delivery, [{"op": "tag", "args": args}])


@tracking_op("finish")
def _finish(delivery: Delivery, trial_id: str | None, status: str = "FINISHED") -> None:
    """End a trial's run, or the sweep's parent run when `trial_id` is None."""
    run_id = delivery.parent_id if trial_id is None else delivery.run(trial_id)
    delivery.client.set_terminated(run_id, status=status)


@tracking_op("trial_artifacts")
def _trial_artifacts(delivery: Delivery, trial_id: str, metric: str, mode: str) -> None:
    """Config, card, confusion matrices, checkpoint index and the best checkpoint, once:
    a run that already names its best checkpoint is left alone."""
    client, run_id = delivery.client, delivery.run(trial_id)
    tags = client.get_run(run_id).data.tags
    if "hmtl.best_checkpoint" in tags:
        return
    index = checkpoint_index(tags)
    if not index:
        return
    history = {m.step: m.value for m in client.get_metric_history(run_id, metric)}
    sign = 1 if mode == "max" else -1
    # The one definition of best (orchestration/sweep/best.py): the best epoch among those with a
    # checkpoint, the earliest on a tie.
    scored = sorted(e for e in index if e in history)
    best = max(scored, key=lambda e: sign * history[e]) if scored else max(index)
    with tempfile.TemporaryDirectory(prefix="hmtl-artifacts-") as scratch:
        folder = trial_artifacts(index, best, Path(scratch), delivery.filesystem)
        client.log_artifacts(run_id, str(folder))
        log_trial_outputs(client, run_id, folder, delivery.parent_id)  # dataset input, model
    client.log_batch(
        run_id,
        tags=[RunTag("hmtl.best_epoch", str(best)), RunTag("hmtl.best_checkpoint", index[best])],
    )


@tracking_op("active_artifacts")
def _active_artifacts(delivery: Delivery, trial_id: str, metric: str, mode: str) -> None:
    """An active-learning trial's labelled map after each cycle (`active/cycle_<n>/`, as
    `hmtl active` logs them), read from its cycle checkpoints, once."""

    client, run_id = delivery.client, delivery.run(trial_id)
    tags = client.get_run(run_id).data.tags
    if "hmtl.labelled_maps" in tags:
        return
    index = checkpoint_index(tags)
    with tempfile.TemporaryDirectory(prefix="hmtl-artifacts-") as scratch:
        for cycle, uri in sorted(index.items()):
            folder = fetch(uri, Path(scratch, str(cycle)), delivery.filesystem)
            client.log_artifact(run_id, str(folder / MAP_FILE), f"active/cycle_{cycle:03d}")
    client.set_tag(run_id, "hmtl.labelled_maps", f"active/ ({len(index)} cycles)")


@tracking_op("finish_sweep")
def _finish_sweep(delivery: Delivery, sweep_uri: str, sweep_root: str, tracking_uri: str) -> None:
    """The sweep's answer on its parent run (summary, registered model, report files), read
    from the sweep's storage (`sweep_root` on the delivery's filesystem) when delivered."""
    finish_sweep(
        delivery.client,
        delivery.parent_id,
        None,
        Store(sweep_uri, delivery.filesystem, sweep_root),
        tracking_uri,
    )
