"""The `Session` of a trial that trains inside its own Tune function (one worker, no
TorchTrainer): the plain trial and the active-learning trial both hand it to trainables."""

from __future__ import annotations

import shutil
import time
from typing import Any

import pyarrow.fs as pafs
import ray.tune  # (2) Tune function API: report, get_checkpoint

from hmtl.orchestration.sweep.phases import TrialPhases
from hmtl.orchestration.sweep.worker import scalar_metrics
from hmtl.trainables.accounting import CostRate


class TuneSession:
    """A `Session` for a trial that trains inside its own Tune function."""

    rank = 0
    world_size = 1
    device = None

    def __init__(
        self, cost_rate: CostRate | None = None, phases: TrialPhases | None = None
    ) -> None:
        self._downloads: list[str] = []
        self.cost_rate = cost_rate
        self.phases = phases

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        entered = time.time()
        checkpoint = ray.tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.tune.report(scalar_metrics(metrics), checkpoint=checkpoint)  # (3) persisted by Tune
        if self.phases is not None:
            self.phases.report(entered, metrics)

    def latest_checkpoint(self) -> str | None:
        checkpoint = ray.tune.get_checkpoint()  # (4) set when the trial is restored
        if checkpoint is None:
            return None
        if isinstance(checkpoint.filesystem, pafs.LocalFileSystem):
            return checkpoint.path  # read in place: a copy per call is wasted time and disk
        folder = checkpoint.to_directory()
        self._downloads.append(folder)
        return folder

    def prepare_model(self, model):
        return model

    def close(self) -> None:
        """Remove the checkpoints this trial downloaded (its process may train others)."""
        for folder in self._downloads:
            shutil.rmtree(folder, ignore_errors=True)
