"""MLflow tracking of a sweep from the process that drives it.

One experiment per sweep, one parent run per sweep, one child run per trial tagged with
the sweep name and the Tune trial id. Runs are found again by those tags, so a resumed
sweep keeps logging into the runs it had (MLflow cannot create a run with a chosen id).
Metrics arrive once per epoch from Tune (rank 0's report only) and are logged in one
batch with the epoch as step.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from ray.tune import Callback

from orchestration.space import SearchSpace

SWEEP_TAG = "hmtl.sweep"
TRIAL_TAG = "hmtl.trial_id"
ROLE_TAG = "hmtl.role"
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


class SweepTracker:
    """Finds or creates the sweep's experiment, parent run and per-trial child runs."""

    def __init__(self, tracking_uri: str, sweep: str) -> None:
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.sweep = sweep
        experiment = self.client.get_experiment_by_name(sweep)
        self.experiment_id = (
            experiment.experiment_id if experiment else self.client.create_experiment(sweep)
        )
        self.parent_id = self._find_or_create({ROLE_TAG: "sweep"}, run_name=sweep)
        self._children: dict[str, str] = {}

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
        else:
            self.client.update_run(run_id, status="RUNNING")
        self._children[trial_id] = run_id
        return run_id

    def log_epoch(self, run_id: str, metrics: dict[str, Any]) -> None:
        step = int(metrics.get("epoch", 0))
        stamp = int(time.time() * 1000)
        batch = [
            Metric(k, float(v), stamp, step)
            for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and k != "epoch"
        ]
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    def tag(self, run_id: str, tags: dict[str, str]) -> None:
        self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])


class MlflowCallback(Callback):
    """Tune callback: a child run per trial, a metric row per epoch, the status at the end."""

    REPORTED = ("epoch", "lr")

    def __init__(self, tracking_uri: str, space: SearchSpace) -> None:
        self.tracking_uri = tracking_uri
        self.space = space
        self.sweep = space.name
        self._tracker: SweepTracker | None = None

    @property
    def tracker(self) -> SweepTracker:
        if self._tracker is None:
            self._tracker = SweepTracker(self.tracking_uri, self.sweep)
        return self._tracker

    def _run(self, trial) -> str:
        cfg = self.space.trial_config(trial.config)
        return self.tracker.trial_run(trial.trial_id, cfg.flat())

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._run(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        metrics = {k: v for k, v in result.items() if "/" in k or k in self.REPORTED}
        self.tracker.log_epoch(self._run(trial), metrics)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.tracker.finish(self._run(trial))

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.tracker.finish(self._run(trial), "FAILED")

    def on_experiment_end(self, trials, **info) -> None:
        self.tracker.finish(self.tracker.parent_id)


def default_tracking_uri(storage: str) -> str:
    """SQLite next to a local storage folder (the embedded default)."""
    return f"sqlite:///{os.path.abspath(os.path.join(storage, 'mlflow.db'))}"
