"""The one definition of "best", shared by the sweep summary, `hmtl status`, `hmtl report`
and the MLflow parent run.

A trial's *peak* is its best epoch: the epoch whose value of the space's (first) metric is
best under the space's mode, among the epochs that left a checkpoint, together with that
epoch's checkpoint. (Every epoch leaves one by default, `runtime.checkpoint_every: 1`; a
trial none of whose scored epochs left a checkpoint is judged on all its epochs, with no
checkpoint.) Ties go to the earlier epoch. The best trial is the one with the best peak;
ties go to the trial listed first. A trial that peaked early and then declined is judged
by its peak, and the answer is the checkpoint of that epoch, not the last one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Peak:
    epoch: int
    value: float
    checkpoint: str | None


def trial_peak(
    rows: list[dict[str, Any]],
    checkpoints: list[tuple[str, dict[str, Any]]],
    metric: str,
    mode: str,
) -> Peak | None:
    """The peak of one trial from its reported rows (one dict per epoch, as in Tune's
    `result.json`) and its checkpoints as (path, metrics reported with it); None when no
    epoch reported a finite value of `metric`."""
    values = metric_history(rows, metric)
    paths: dict[int, str] = {}
    for row in rows:
        epoch = _int(row.get("epoch"))
        if epoch is not None and isinstance(row.get("checkpoint_path"), str):
            paths[epoch] = row["checkpoint_path"]  # TorchTrainer trials report the path
    for path, metrics in checkpoints:
        epoch = _int(metrics.get("epoch"))
        if epoch is not None:
            paths[epoch] = path
            if epoch not in values and finite(metrics.get(metric)) is not None:
                values[epoch] = finite(metrics[metric])
    if not values:
        return None
    candidates = [e for e in values if e in paths] or list(values)
    sign = 1.0 if mode == "max" else -1.0
    epoch = max(sorted(candidates), key=lambda e: (sign * values[e], -e))
    return Peak(epoch, values[epoch], paths.get(epoch))


def best_trial(peaks: dict[str, Peak | None], mode: str) -> tuple[str, Peak] | None:
    """The trial with the best peak (the first listed among equals); None if none has one."""
    sign = 1.0 if mode == "max" else -1.0
    scored = [(tid, p) for tid, p in peaks.items() if p is not None]
    if not scored:
        return None
    order = {tid: i for i, (tid, _) in enumerate(scored)}
    return max(scored, key=lambda item: (sign * item[1].value, -order[item[0]]))


def metric_history(rows: list[dict[str, Any]], metric: str) -> dict[int, float]:
    """Epoch -> the metric's finite value, from a trial's reported rows."""
    out = {}
    for row in rows:
        epoch, value = _int(row.get("epoch")), finite(row.get(metric))
        if epoch is not None and value is not None:
            out[epoch] = value
    return out


def frame_rows(frame) -> list[dict[str, Any]]:
    """Rows of a pandas DataFrame of a trial's results (empty or None: no rows)."""
    if frame is None or len(frame) == 0:
        return []
    return frame.to_dict("records")


def finite(value: Any) -> float | None:
    """A real number as float; None for missing, NaN, infinite, booleans and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    number = finite(value)
    return None if number is None else int(number)
