"""`hmtl status`: the trials of a sweep, read from its storage without touching Ray."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from orchestration.space import validate_space
from orchestration.store import Store
from orchestration.sweep import read_manifest


@dataclass
class TrialRow:
    trial_id: str
    state: str
    epoch: int
    metric: float | None
    params: dict[str, Any]


def trial_rows(path: str) -> tuple[list[TrialRow], str, str]:
    """Every trial of the sweep at `path` with its state and last metric; plus metric, mode."""
    from ray.tune import ExperimentAnalysis

    space = validate_space(read_manifest(path)["space"])
    metric, mode = space.metrics[0], space.modes[0]
    sweep = Store.open(path)
    analysis = ExperimentAnalysis(sweep.root, storage_filesystem=sweep.filesystem)
    rows = []
    for trial in analysis.trials:
        last = trial.last_result or {}
        value = last.get(metric)
        rows.append(
            TrialRow(
                trial.trial_id,
                trial.status,
                int(last.get("epoch", 0)),
                None if value is None or not math.isfinite(value) else float(value),
                dict(trial.config),
            )
        )
    return rows, metric, mode


def status_text(path: str) -> str:
    rows, metric, mode = trial_rows(path)
    keys = sorted({k for row in rows for k in row.params})
    lines = [
        f"sweep {path}: {len(rows)} trials ("
        + ", ".join(f"{n} {s}" for s, n in _counts(rows).items())
        + ")",
        "",
    ]
    header = ["trial", "state", "epoch", metric, *[k.rsplit(".", 1)[-1] for k in keys]]
    table = [header] + [
        [
            r.trial_id,
            r.state,
            str(r.epoch),
            "-" if r.metric is None else f"{r.metric:.4f}",
            *[_short(r.params.get(k)) for k in keys],
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in table
    ]
    scored = [r for r in rows if r.metric is not None]
    if scored:
        best = (max if mode == "max" else min)(scored, key=lambda r: r.metric)
        lines += [
            "",
            f"best so far: trial {best.trial_id}, {metric} = {best.metric:.4f} "
            f"(epoch {best.epoch}, {best.state})",
        ]
    return "\n".join(lines)


def _counts(rows: list[TrialRow]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    return counts


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
