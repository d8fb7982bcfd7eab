"""Work lost to restarts, read from a run's reported rows (trainables/accounting.py)."""

from __future__ import annotations

import pytest

from hmtl.trainables.accounting import (
    DEVICE_SECONDS,
    IMAGES_SEEN,
    LOST,
    USD,
    WALL_SECONDS,
    LostWork,
    lost_work,
    paid,
)


def row(epoch, wall, timestamp, epoch_s=10.0, restored=False):
    """A reported row of a run holding 2 devices at 3.6 USD/h, 100 images per wall second;
    `restored`: its process's first (Tune's `iterations_since_restore` is 1)."""
    return {
        "iterations_since_restore": 1 if restored or epoch == 1 else 2,
        "epoch": epoch,
        WALL_SECONDS: wall,
        DEVICE_SECONDS: 2.0 * wall,
        USD: 0.001 * wall,
        IMAGES_SEEN: 100.0 * wall,
        "timestamp": timestamp,
        "time_this_iter_s": epoch_s,
    }


# Checkpoints every 2 epochs. The first attempt reports epochs 1-3 (10 s each, from t=1000)
# and dies during epoch 4; the next resumes from epoch 2's checkpoint (wall 20 s).
FIRST = [row(1, 10.0, 1010), row(2, 20.0, 1020), row(3, 30.0, 1030)]


def test_an_uninterrupted_run_lost_nothing():
    rows = [*FIRST, row(4, 40.0, 1040)]
    assert lost_work(rows) == {}
    assert paid(rows[-1], lost_work(rows)) == {}


def test_redone_epochs_count_exactly_and_the_epoch_in_flight_at_most_one_epoch():
    # Started at t=1089 (its epoch 3 at t=1100 carries 11 s of its own wall: 1 s of set-up).
    resumed = row(3, 31.0, 1100, restored=True)
    lost = lost_work([*FIRST, resumed])
    # Epoch 3 redone (30 - 20 = 10 s) and epoch 4 in flight: 59 s from the last report to
    # the restart, capped at one epoch (10 s).
    assert lost[WALL_SECONDS] == pytest.approx(20.0)
    assert lost[DEVICE_SECONDS] == pytest.approx(40.0)
    assert lost[USD] == pytest.approx(0.02)
    assert lost[IMAGES_SEEN] == pytest.approx(2000.0)
    out = paid(resumed, lost)
    assert out[DEVICE_SECONDS] == pytest.approx(62.0 + 40.0)
    assert out[LOST[DEVICE_SECONDS]] == pytest.approx(40.0)
    assert out[LOST[WALL_SECONDS]] == pytest.approx(20.0)
    assert WALL_SECONDS not in out  # the wall time stays the run's own


def test_a_restart_soon_after_the_last_report_counts_only_that_gap():
    # Every epoch checkpointed; killed 4 s after epoch 3's report, restarted at once.
    # Its own 11 s since epoch 3's checkpoint: it started at t=1034.
    resumed = row(4, 41.0, 1045, restored=True)
    lost = lost_work([*FIRST, resumed])
    assert lost[WALL_SECONDS] == pytest.approx(4.0)
    assert lost[DEVICE_SECONDS] == pytest.approx(8.0)


def test_a_restart_from_scratch_loses_everything_before_it():
    lost = lost_work([*FIRST, row(1, 11.0, 1200, restored=True)])
    assert lost[WALL_SECONDS] == pytest.approx(30.0 + 10.0)


def test_rows_read_again_change_nothing_and_restarts_add_up():
    tracker = LostWork()
    again = row(3, 31.0, 1100, restored=True)
    for r in [*FIRST, *FIRST, again, *FIRST[:2], again]:
        tracker.add(r)
    assert tracker.lost[WALL_SECONDS] == pytest.approx(20.0)
    # A second loss: the resumed attempt reports epochs 3-5 and dies again in epoch 6; the
    # third resumes from epoch 4's checkpoint.
    for r in (row(4, 41.0, 1110), row(5, 51.0, 1120)):
        tracker.add(r)
    tracker.add(row(5, 52.0, 1300, restored=True))  # its own 11 s since epoch 4's checkpoint (41 s)
    assert tracker.lost[WALL_SECONDS] == pytest.approx(20.0 + (51.0 - 41.0) + 10.0)


def test_rows_without_wall_time_or_epoch_are_ignored():
    assert lost_work([{"epoch": 1}, {WALL_SECONDS: 3.0}, {"epoch": 1, WALL_SECONDS: 1.0}]) == {}


def test_tune_time_since_restore_dates_the_restart_when_reported():
    resumed = {**row(4, 41.0, 1045, restored=True), "time_since_restore": 5.0}
    assert lost_work([*FIRST, resumed])[WALL_SECONDS] == pytest.approx(10.0)  # 1040 - 1030
