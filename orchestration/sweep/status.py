"""`hmtl status`: the trials of a sweep, read from its storage without touching Ray.

Each trial is judged by its peak (orchestration/sweep/best.py): the best epoch and that epoch's
checkpoint, the same definition the sweep summary, the report and MLflow use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hmtl.orchestration.platform.store import Store
from hmtl.orchestration.sweep.best import Peak, best_trial, frame_rows, metric_history, trial_peak
from hmtl.orchestration.sweep.manifest import read_manifest
from hmtl.orchestration.sweep.space import validate_space


@dataclass
class TrialRow:
    trial_id: str
    state: str
    epoch: int
    """The last epoch the trial reached."""
    peak: Peak | None
    params: dict[str, Any]
    history: dict[int, float] = field(default_factory=dict)
    """The metric at every epoch that reported it (what the report's rungs read)."""

    @property
    def metric(self) -> float | None:
        """The trial's score: the metric at its best epoch."""
        return self.peak.value if self.peak else None


def trial_rows(path: str | Store) -> tuple[list[TrialRow], str, str]:
    """Every trial of the sweep at `path` with its state, peak and history; plus metric, mode."""
    # Lazy: keeps ray out of `hmtl status` and of validating a study file.
    from ray.tune import ExperimentAnalysis

    space = validate_space(read_manifest(path)["space"])
    metric, mode = space.metrics[0], space.modes[0]
    sweep = Store.open(path)
    analysis = ExperimentAnalysis(sweep.root, storage_filesystem=sweep.filesystem)
    rows = []
    for trial in analysis.trials:
        results = frame_rows(analysis.trial_dataframes.get(trial.trial_id))
        checkpoints = [
            (sweep.as_uri(c.checkpoint.path), c.metrics)
            for c in trial.run_metadata.checkpoint_manager.best_checkpoint_results
        ]
        peak = trial_peak(results, checkpoints, metric, mode)
        if peak and peak.checkpoint:  # a TorchTrainer trial's reported path lacks the scheme
            peak = Peak(peak.epoch, peak.value, sweep.as_uri(peak.checkpoint))
        rows.append(
            TrialRow(
                trial.trial_id,
                trial.status,
                int((trial.last_result or {}).get("epoch", 0)),
                peak,
                dict(trial.config),
                metric_history(results, metric),
            )
        )
    return rows, metric, mode


def best_row(rows: list[TrialRow], mode: str) -> TrialRow | None:
    found = best_trial({r.trial_id: r.peak for r in rows}, mode)
    return next(r for r in rows if r.trial_id == found[0]) if found else None


def status_text(path: str) -> str:
    rows, metric, mode = trial_rows(path)
    return rows_text(path, rows, metric, mode)


def rows_text(path: str, rows: list[TrialRow], metric: str, mode: str) -> str:
    """The status table: one line a trial, its best epoch's value, then the best trial."""
    keys = sorted({k for row in rows for k in row.params})
    lines = [
        f"sweep {path}: {len(rows)} trials ("
        + ", ".join(f"{n} {s}" for s, n in state_counts([r.state for r in rows]).items())
        + ")",
        "",
    ]
    header = ["trial", "state", "epochs", f"best {metric}", "at epoch"]
    header += [k.rsplit(".", 1)[-1] for k in keys]
    table = [header] + [
        [
            r.trial_id,
            r.state,
            str(r.epoch),
            "-" if r.peak is None else f"{r.peak.value:.4f}",
            "-" if r.peak is None else str(r.peak.epoch),
            *[_short(r.params.get(k)) for k in keys],
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines += [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in table
    ]
    best = best_row(rows, mode)
    if best is not None:
        lines += [
            "",
            f"best so far: trial {best.trial_id}, {metric} = {best.peak.value:.4f} "
            f"at epoch {best.peak.epoch} ({best.state})",
            f"  checkpoint {best.peak.checkpoint or '-'}",
        ]
    return "\n".join(lines)


def state_counts(states: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for state in states:
        counts[state] = counts.get(state, 0) + 1
    return counts


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
