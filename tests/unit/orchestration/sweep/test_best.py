"""One definition of best: a trial is judged by its best epoch and that epoch's checkpoint.

The designed case: trial `early` peaks at epoch 1 (0.50) then declines to 0.20; trial
`steady` climbs to 0.45 and ends higher than `early` ends. By the definition, `early` wins
with 0.50 and its epoch-1 checkpoint, in the sweep summary, `hmtl status` and the report's
rows alike (the summary used to print early's last value and last checkpoint; status used
to name `steady`).
"""

import pandas as pd
import pytest
from ray.train import Checkpoint
from ray.tune import Result

from hmtl.orchestration.cli.sweep import sweep_summary
from hmtl.orchestration.platform.store import Store
from hmtl.orchestration.sweep.best import Peak, best_trial, trial_peak
from hmtl.orchestration.sweep.run import summarize
from hmtl.orchestration.sweep.space import load_space
from hmtl.orchestration.sweep.status import TrialRow, best_row, rows_text

METRIC = "val/balanced_accuracy"
CURVES = {"early": [0.50, 0.30, 0.20], "steady": [0.35, 0.40, 0.45]}


def _rows(trial, curve):
    return [{"trial_id": trial, "epoch": e, METRIC: v} for e, v in enumerate(curve, 1)]


def _checkpoints(root, trial, curve):
    out = []
    for epoch, value in enumerate(curve, 1):
        folder = root / trial / f"checkpoint_{epoch - 1:06d}"
        folder.mkdir(parents=True)
        out.append((str(folder), {"epoch": epoch, METRIC: value}))
    return out


def test_a_trial_that_peaks_early_is_judged_by_its_peak(tmp_path):
    peaks = {
        t: trial_peak(_rows(t, c), _checkpoints(tmp_path, t, c), METRIC, "max")
        for t, c in CURVES.items()
    }
    assert peaks["early"] == Peak(1, 0.50, str(tmp_path / "early" / "checkpoint_000000"))
    assert peaks["steady"].epoch == 3
    assert best_trial(peaks, "max")[0] == "early"
    assert trial_peak(_rows("early", CURVES["early"]), [], METRIC, "min").epoch == 3


def test_min_mode_peak_and_ties():
    rows = [{"epoch": 1, "train/loss": 2.0}, {"epoch": 2, "train/loss": 1.0}]
    rows += [{"epoch": 3, "train/loss": 1.0}, {"epoch": 4, "train/loss": float("nan")}]
    peak = trial_peak(rows, [], "train/loss", "min")
    assert (peak.epoch, peak.value, peak.checkpoint) == (2, 1.0, None)  # earlier of a tie
    assert trial_peak([{"epoch": 1}], [], "train/loss", "min") is None
    tie = {"a": Peak(1, 0.5, None), "b": Peak(2, 0.5, None), "c": None}
    assert best_trial(tie, "max")[0] == "a" and best_trial({"c": None}, "max") is None


def test_only_checkpointed_epochs_count_when_some_are(tmp_path):
    # checkpoint_every: 2 -- epoch 1 scored best but left no checkpoint to hand over.
    rows = _rows("t", [0.9, 0.6, 0.7])
    checkpoints = [(str(tmp_path / "c2"), {"epoch": 2}), (str(tmp_path / "c3"), {"epoch": 3})]
    assert trial_peak(rows, checkpoints, METRIC, "max") == Peak(3, 0.7, str(tmp_path / "c3"))
    # TorchTrainer trials report the checkpoint's path with the epoch's metrics.
    ddp = [
        {**row, "checkpoint_path": f"bucket/t/train/checkpoint_{i}"} for i, row in enumerate(rows)
    ]
    assert trial_peak(ddp, [], METRIC, "max").checkpoint == "bucket/t/train/checkpoint_0"


def test_summary_and_status_name_the_same_trial_epoch_and_checkpoint(tmp_path):
    space = load_space("quickstart").model_copy(update={"name": "designed"})
    results = []
    for trial, curve in CURVES.items():
        rows = _rows(trial, curve)
        checkpoints = [
            (Checkpoint.from_directory(p), m) for p, m in _checkpoints(tmp_path, trial, curve)
        ]
        results.append(
            Result(
                metrics=rows[-1],
                checkpoint=checkpoints[-1][0],
                error=None,
                path=str(tmp_path / trial),
                metrics_dataframe=pd.DataFrame(rows),
                best_checkpoints=checkpoints,
            )
        )
    result = summarize(space, results, Store.open(str(tmp_path)))
    early_first = str(tmp_path / "early" / "checkpoint_000000")
    assert (result.best_trial, result.best_epoch) == ("early", 1)
    assert result.best_metrics[METRIC] == 0.50 and result.best_checkpoint == early_first
    assert result.epochs_run == 6

    text = sweep_summary(result, METRIC)
    assert f"best trial    early   {METRIC} = 0.5000 at epoch 1" in text
    assert f"checkpoint    {early_first}   (epoch 1)" in text

    rows = [
        TrialRow(t, "TERMINATED", 3, trial_peak(_rows(t, c), [], METRIC, "max"), {})
        for t, c in CURVES.items()
    ]
    assert best_row(rows, "max").trial_id == "early"
    status = rows_text("sweeps/designed", rows, METRIC, "max")
    assert f"best so far: trial early, {METRIC} = 0.5000 at epoch 1" in status


@pytest.mark.parametrize("mode", ["max", "min"])
def test_no_scored_epoch_means_no_best(mode):
    assert best_trial({"a": trial_peak([], [], METRIC, mode)}, mode) is None
