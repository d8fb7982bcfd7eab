"""Compute at equal budget: an arm that starts from an earlier stage's checkpoint also
spent that stage's compute.

HMTL trains once; pre-train -> fine-tune trains twice. A fair "at equal compute" column
adds the feeding stage's best trial's `cost/*` (the run whose checkpoint the arm loads) to
every trial of the fed arm before the report is built. A cost either side did not report
(`cost/device_seconds` comes from the trial's compute accounting) makes the sum None:
no number beats a number that leaves the pre-training out.
"""

from __future__ import annotations

from typing import Any

from ray.tune import ExperimentAnalysis

from hmtl.orchestration.study.refs import REFERENCE
from hmtl.orchestration.sweep.best import finite, frame_rows
from hmtl.orchestration.sweep.status import best_row, trial_rows
from hmtl.trainables.accounting import last_paid

ADDED = ("cost/device_seconds", "cost/images_seen")
"""The costs that add up across stages (`wall_s` stays the trial's own: it times a trial,
not the budget behind it)."""


def fed_arms(raw: dict[str, Any], arms: list[str]) -> dict[str, str]:
    """Arm -> the earlier stage whose `best_checkpoint` it loads (from the arm's overrides,
    else the stage's own), for the arms of a grid stage as written (`raw`)."""
    stage_wide = _source(raw.get("overrides") or {})
    written = raw.get("arms") or {}
    out = {}
    for arm in arms:
        overrides = written.get(arm)
        found = _source(overrides) if isinstance(overrides, dict) else None
        if found or stage_wide:
            out[arm] = found or stage_wide
    return out


def _source(overrides: dict[str, Any]) -> str | None:
    value = overrides.get("model.pretrained")
    match = REFERENCE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return None
    stage, _, field = match.group(1).partition(".")
    return stage if field == "best_checkpoint" else None


def with_fed_costs(
    rows: list[dict], fed: dict[str, str], upstream: dict[str, dict[str, float | None]]
) -> list[dict]:
    """Copies of `rows` with each fed arm's costs raised by its feeding stage's costs."""
    out = []
    for row in rows:
        row = dict(row)
        source = upstream.get(fed.get(row["arm"], ""))
        if row["arm"] in fed:
            for key in ADDED:
                mine, theirs = row.get(key), (source or {}).get(key)
                row[key] = None if mine is None or theirs is None else mine + theirs
        out.append(row)
    return out


def best_trial_costs(sweep) -> dict[str, float | None]:
    """The `cost/*` the best trial of the stage stored at `sweep` reported last, with the
    work it lost to restarts."""

    rows, _, mode = trial_rows(sweep)
    best = best_row(rows, mode)
    if best is None:
        return dict.fromkeys(ADDED)
    analysis = ExperimentAnalysis(sweep.root, storage_filesystem=sweep.filesystem)
    # With the work lost to restarts.
    last = last_paid(frame_rows(analysis.trial_dataframes.get(best.trial_id)))
    return {key: finite(last.get(key)) for key in ADDED}
