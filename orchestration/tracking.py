"""MLflow tracking of a sweep, from the process that drives it.

One experiment per sweep, one parent run per sweep, one child run per trial tagged with
the sweep name, the Tune trial id, the git commit, the dataset fingerprint and the host.
Runs are found again by those tags, so a resumed sweep keeps logging into the runs it
had (MLflow cannot create a run with a chosen id), and epochs already logged are not
logged again: a resumed curve continues without gaps or repeats.

Metrics arrive once per epoch from Tune (rank 0's report only) and go out in one batch
with the epoch as step. Every checkpoint is recorded on its run as a tag
`hmtl.checkpoint.<epoch>` = URI (the checkpoint index). When a trial ends, its best
checkpoint is uploaded once, with the resolved config, the dataset card and the
confusion-matrix image.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from ray.tune import Callback

from orchestration.artifacts import trial_artifacts
from orchestration.mlflow_native import finish_sweep, log_trial_outputs, tag_training_experiment
from orchestration.space import SearchSpace
from orchestration.store import Store

SWEEP_TAG = "hmtl.sweep"
TRIAL_TAG = "hmtl.trial_id"
ROLE_TAG = "hmtl.role"
CHECKPOINT_TAG = "hmtl.checkpoint."
PARENT_TAG = "mlflow.parentRunId"
MAX_PARAM_LENGTH = 6000


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def redact_uri(uri: str) -> str:
    """A URI without user:password@ (credentials come from the environment, never a URI)."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


class SweepTracker:
    """Finds or creates the sweep's experiment, parent run and per-trial child runs."""

    def __init__(self, tracking_uri: str, sweep: str, artifact_root: str | None = None) -> None:
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.sweep = sweep
        experiment = self.client.get_experiment_by_name(sweep)
        self.experiment_id = (
            experiment.experiment_id
            if experiment
            else self.client.create_experiment(sweep, artifact_location=artifact_root)
        )
        tag_training_experiment(self.client, self.experiment_id)
        self.parent_id = self._find_or_create({ROLE_TAG: "sweep"}, run_name=sweep)
        self._children: dict[str, str] = {}
        self._last_step: dict[str, int] = {}

    def _find(self, tags: dict[str, str]) -> str | None:
        query = " and ".join(
            f"tags.`{k}` = '{v}'" for k, v in {SWEEP_TAG: self.sweep, **tags}.items()
        )
        runs = self.client.search_runs([self.experiment_id], query, max_results=1)
        return runs[0].info.run_id if runs else None

    def _find_or_create(self, tags: dict[str, str], run_name: str) -> str:
        found = self._find(tags)
        if found:
            self.client.update_run(found, status="RUNNING")
            return found
        run = self.client.create_run(
            self.experiment_id, run_name=run_name, tags={SWEEP_TAG: self.sweep, **tags}
        )
        return run.info.run_id

    def trial_run(self, trial_id: str, params: dict[str, Any]) -> str:
        """The child run of a trial, created with its params the first time."""
        if trial_id in self._children:
            return self._children[trial_id]
        run_id = self._find({TRIAL_TAG: trial_id})
        if run_id is None:
            tags = {
                TRIAL_TAG: trial_id,
                ROLE_TAG: "trial",
                PARENT_TAG: self.parent_id,
                "hmtl.git_commit": git_commit(),
                "hmtl.host": socket.gethostname(),
            }
            run_id = self._find_or_create(tags, run_name=f"trial-{trial_id}")
            self.client.log_batch(
                run_id,
                params=[Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in sorted(params.items())],
            )
            self._last_step[run_id] = 0
        else:
            self.client.update_run(run_id, status="RUNNING")
            self._last_step[run_id] = self.last_logged_epoch(run_id)
        self._children[trial_id] = run_id
        return run_id

    def last_logged_epoch(self, run_id: str) -> int:
        history = self.client.get_metric_history(run_id, "train/loss")
        return max((m.step for m in history), default=0)

    def log_epoch(self, run_id: str, metrics: dict[str, Any], tags: dict[str, str]) -> bool:
        """Log one epoch's numbers (and tags) in one request; False if already logged."""
        step = int(metrics.get("epoch", 0))
        if step <= self._last_step.get(run_id, 0):
            return False  # replayed after a resume from an older checkpoint
        stamp = int(time.time() * 1000)
        batch = [
            Metric(k, float(v), stamp, step)
            for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and k != "epoch"
        ]
        self.client.log_batch(
            run_id, metrics=batch, tags=[RunTag(k, str(v)) for k, v in tags.items()]
        )
        self._last_step[run_id] = step
        return True

    def tag(self, run_id: str, tags: dict[str, str]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def checkpoint_index(self, run_id: str) -> dict[int, str]:
        """Epoch -> checkpoint URI, as recorded on the run."""
        tags = self.client.get_run(run_id).data.tags
        return {
            int(k[len(CHECKPOINT_TAG) :]): v
            for k, v in tags.items()
            if k.startswith(CHECKPOINT_TAG)
        }

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)


class MlflowCallback(Callback):
    """Tune callback: a child run per trial, a metric row per epoch, artifacts at the end."""

    def __init__(
        self,
        tracking_uri: str,
        space: SearchSpace,
        artifact_root: str | None = None,
        store: Store | None = None,
    ) -> None:
        """`store` is where the sweep keeps its checkpoints (None: plain local paths)."""
        self.tracking_uri = redact_uri(tracking_uri)
        self.space = space
        self.artifact_root = artifact_root
        self.store = store
        self._tracker: SweepTracker | None = None

    def _uri(self, path: str) -> str:
        return self.store.as_uri(path) if self.store else path

    def __getstate__(self) -> dict:
        # Tune pickles callbacks into the experiment state; the client stays behind.
        return {**self.__dict__, "_tracker": None}

    @property
    def tracker(self) -> SweepTracker:
        if self._tracker is None:
            self._tracker = SweepTracker(self.tracking_uri, self.space.name, self.artifact_root)
        return self._tracker

    def _run(self, trial) -> str:
        cfg = self.space.trial_config(trial.config)
        return self.tracker.trial_run(trial.trial_id, cfg.flat())

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._run(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        metrics = {k: v for k, v in result.items() if "/" in k or k in ("epoch", "lr")}
        tags = {}
        if "data/fingerprint" in result:
            tags["hmtl.dataset_fingerprint"] = result["data/fingerprint"]
        if result.get("checkpoint_path"):  # TorchTrainer trials report their checkpoints
            tags[f"{CHECKPOINT_TAG}{int(result['epoch']):04d}"] = self._uri(
                result["checkpoint_path"]
            )
        self.tracker.log_epoch(self._run(trial), metrics, tags)

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:
        epoch = int((trial.last_result or {}).get("epoch", 0))
        self.tracker.tag(
            self._run(trial), {f"{CHECKPOINT_TAG}{epoch:04d}": self._uri(checkpoint.path)}
        )

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        run_id = self._run(trial)
        self._log_artifacts(run_id)
        self.tracker.finish(run_id)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.tracker.finish(self._run(trial), "FAILED")

    def on_experiment_end(self, trials, **info) -> None:
        if self.store is not None:
            finish_sweep(
                self.tracker.client,
                self.tracker.parent_id,
                self.space,
                self.store.child("sweeps", self.space.name),
                self.tracking_uri,
            )
        self.tracker.finish(self.tracker.parent_id)

    def _log_artifacts(self, run_id: str) -> None:
        """Config, card, confusion matrices, checkpoint index and the best checkpoint, once."""
        client = self.tracker.client
        index = self.tracker.checkpoint_index(run_id)
        if not index:
            return
        history = {
            m.step: m.value for m in client.get_metric_history(run_id, self.space.metrics[0])
        }
        sign = 1 if self.space.modes[0] == "max" else -1
        scored = [e for e in index if e in history]
        best = max(scored, key=lambda e: sign * history[e]) if scored else max(index)
        with tempfile.TemporaryDirectory(prefix="hmtl-artifacts-") as scratch:
            folder = trial_artifacts(
                index, best, Path(scratch), self.store.filesystem if self.store else None
            )
            client.log_artifacts(run_id, str(folder))
            log_trial_outputs(client, run_id, folder, self.tracker.parent_id)
        client.log_batch(
            run_id,
            tags=[
                RunTag("hmtl.best_epoch", str(best)),
                RunTag("hmtl.best_checkpoint", index[best]),
            ],
        )


def default_tracking_uri(storage: str) -> str:
    """SQLite next to a local storage folder (the embedded default)."""
    return f"sqlite:///{Path(storage).resolve() / 'mlflow.db'}"
