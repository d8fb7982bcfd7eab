"""The `Session`: how `train` talks to whatever runs it, without knowing what that is.

`train` reports metrics (and a checkpoint folder) once per epoch and asks for the
checkpoint to resume from. `LocalSession` serves a plain process (`hmtl train`,
tests); `orchestration/sweep/worker.py` provides the Ray Train one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from hmtl.trainables.accounting import CostRate

CHECKPOINT_PREFIX = "checkpoint_"


@runtime_checkable
class Session(Protocol):
    rank: int
    world_size: int
    device: torch.device | None
    """The device this worker trains on; None lets the config choose."""

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        """Publish one epoch's metrics and, optionally, a checkpoint folder it may take over."""

    def latest_checkpoint(self) -> str | None:
        """The folder of the checkpoint to resume from, or None to start fresh."""

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """Wrap the model for data-parallel training (identity for one process)."""


class LocalSession:
    """A single-process session that keeps checkpoints as `out_dir/checkpoint_<epoch>`.

    Each reported checkpoint is copied under a temporary name and renamed into place,
    so a crash never leaves a folder that looks complete. Metrics are appended to
    `out_dir/metrics.jsonl`, and a one-line summary per epoch goes to `log`.

    With a `cost_rate` (what the process holds; `hmtl train` sets it), `train`'s reports
    carry ``cost/device_seconds`` and ``cost/usd`` (trainables/accounting.py).
    """

    cost_rate: CostRate | None = None

    def __init__(
        self,
        out_dir: str | os.PathLike,
        resume_from: str | os.PathLike | None = None,
        log: Callable[[str], None] | None = print,
        keep: int | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.resume_from = str(resume_from) if resume_from is not None else None
        self.log = log
        self.keep = keep
        self.rank = 0
        self.world_size = 1
        self.device: torch.device | None = None
        self.history: list[dict[str, Any]] = []

    def checkpoints(self) -> list[Path]:
        """Published checkpoints in this session's folder, oldest first."""
        found = [p for p in self.out_dir.glob(f"{CHECKPOINT_PREFIX}*") if p.is_dir()]
        return sorted(found, key=lambda p: p.name)

    def latest_checkpoint(self) -> str | None:
        published = self.checkpoints()
        if published:
            return str(published[-1])
        return self.resume_from

    def prepare_model(self, model: nn.Module) -> nn.Module:
        return model

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        self.history.append(metrics)
        with open(self.out_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(metrics) + "\n")
        if checkpoint_dir is not None:
            self._publish(Path(checkpoint_dir), int(metrics.get("epoch", len(self.history))))
        if self.log is not None:
            self.log(format_progress(metrics))

    def _publish(self, source: Path, epoch: int) -> None:
        final = self.out_dir / f"{CHECKPOINT_PREFIX}{epoch:06d}"
        staging = self.out_dir / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
        shutil.copytree(source, staging)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
        if self.keep is not None:
            for old in self.checkpoints()[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)


def format_progress(metrics: dict[str, Any]) -> str:
    """One progress line: the epoch, then losses and the headline validation metrics."""
    shown = ["train/loss", "val/accuracy", "val/balanced_accuracy", "val/macro_f1"]
    shown.append("val/knn_accuracy")  # pre-training runs have no main-task metrics
    parts = [f"epoch {metrics.get('epoch', '?'):>3}"]
    for key in [*shown, "lr", "train/images_per_sec"]:
        value = metrics.get(key)
        if isinstance(value, float) and math.isfinite(value):
            parts.append(f"{key} {value:.4g}")
    return "  ".join(parts)
