"""Compute accounting: what a run used, as metrics that add up across resumes.

`train` reports two per-run quantities, carried in every checkpoint's metrics so a
resumed run continues them instead of starting again from zero:

- ``time/wall_seconds``: wall time inside `train` (data loading, model build, epochs,
  evaluation, checkpointing), summed over every process that trained the run;
- ``cost/images_seen``: images that went through the backbone in training steps, all
  ranks together: the augmented main batch plus every auxiliary input (tiles, rotated,
  masked images, both contrastive views), counted at the backbone's first conv.

Whoever runs `train` knows what it holds (GPUs, or CPU cores when it has none) and what
that costs, and gives it as its session's `cost_rate`; `train` turns the wall time into
``cost/device_seconds`` and, when a price is known, ``cost/usd`` with :func:`costs`, each
process's part at its own rate, and checkpoints them with the rest.

A run restarted from its last checkpoint (a killed worker, node or driver) resumes these
counts from the checkpoint, so the work it paid for and then lost is not in them. Its
reported rows show that work: :class:`LostWork` reads them in order and gives what was lost
(``time/lost_seconds``, ``cost/lost_device_seconds``, ...), and :func:`paid` the costs with
the lost work added, which is what the MLflow runs and the study reports show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

WALL_SECONDS = "time/wall_seconds"
IMAGES_SEEN = "cost/images_seen"
DEVICE_SECONDS = "cost/device_seconds"
USD = "cost/usd"


class InputCounter:
    """Counts the images that enter a backbone, at its first conv.

    Every backbone input passes the first conv exactly once, whichever entry point
    (``forward`` or ``forward_features``) and whichever task made it. Evaluation passes
    count too; `train` reads the count before and after its training steps.
    """

    def __init__(self, backbone: nn.Module) -> None:
        first = next((m for m in backbone.modules() if isinstance(m, nn.Conv2d)), None)
        if first is None:
            raise ValueError(f"{type(backbone).__name__} has no conv to count inputs at")
        self.count = 0
        first.register_forward_pre_hook(self._seen)

    def _seen(self, module: nn.Module, args: tuple[Tensor, ...]) -> None:
        self.count += int(args[0].shape[0])


@dataclass(frozen=True)
class CostRate:
    """What a run holds while it trains, and what that costs."""

    devices: float
    """GPUs held by all its workers together, or CPU cores when it holds no GPU."""
    usd_per_hour: float | None = None
    """The run's share of its nodes' price per hour; None when no price is known."""


def costs(
    metrics: dict[str, Any], rate: CostRate | None, before: dict[str, float] | None = None
) -> dict[str, float]:
    """``cost/device_seconds`` (and ``cost/usd``) for a report that carries the wall time.

    Empty when the report has no wall time or the rate is unknown. `before` holds the counts
    of the checkpoint this process resumed from (`time/wall_seconds`, `cost/device_seconds`,
    `cost/usd`): they keep the price they were counted at, and only the wall time since is
    priced at today's rate, so a run restarted on another node type pays each node for its
    own part. Without them (a fresh run, or a checkpoint that carries no cost) the whole
    wall time is priced at today's rate."""
    wall = metrics.get(WALL_SECONDS)
    if rate is None or not isinstance(wall, int | float):
        return {}
    before = before or {}
    if DEVICE_SECONDS not in before:  # nothing priced before: all of it at today's rate
        before = {}
    since = max(wall - before.get(WALL_SECONDS, 0.0), 0.0)
    out = {DEVICE_SECONDS: before.get(DEVICE_SECONDS, 0.0) + rate.devices * since}
    if rate.usd_per_hour is not None:
        out[USD] = before.get(USD, 0.0) + rate.usd_per_hour * since / 3600.0
    return out


def counts_before(last: dict[str, Any]) -> dict[str, float]:
    """The counts a checkpoint's metrics carry, for `costs(..., before=...)`."""
    return {k: float(last[k]) for k in (WALL_SECONDS, DEVICE_SECONDS, USD) if k in last}


LOST = {
    WALL_SECONDS: "time/lost_seconds",
    DEVICE_SECONDS: "cost/lost_device_seconds",
    USD: "cost/lost_usd",
    IMAGES_SEEN: "cost/lost_images_seen",
}
"""Each cumulative count, and the name of the part of it lost to restarts."""


class LostWork:
    """The work of a run lost to restarts, read from its reported rows in order.

    A restart shows as a row that is its process's first (Tune's `iterations_since_restore`
    is 1) or whose epoch is not after the previous row's: the run resumed from the
    checkpoint of the epoch before it. Lost are (1) the epochs reported after that
    checkpoint and trained again, exactly (the counts at the last row before the restart
    minus those at the checkpoint's epoch), and (2) the epoch in flight when the run died,
    which reported nothing: counted as the time from the last report to the start of the
    next attempt (its row's timestamp less Tune's `time_since_restore`, or less its own wall
    time since the checkpoint), at most one epoch (the last one's duration). (2) is an upper
    bound: it includes the time the loss took to be noticed, up to an epoch. Costs scale
    with wall time at the run's rate (counts per wall second at the last row before the
    restart).

    Rows seen before (a stored history replayed) change nothing.
    """

    def __init__(self) -> None:
        self.by_epoch: dict[int, dict[str, float]] = {}
        self.previous: dict[str, float] | None = None
        self.lost: dict[str, float] = {}

    def add(self, row: dict[str, Any]) -> dict[str, float]:
        """Take the next row; returns the lost work so far (names as in LOST's keys)."""
        epoch = _number(row.get("epoch"))
        counts = {k: v for k in LOST if (v := _number(row.get(k))) is not None}
        if epoch is None or WALL_SECONDS not in counts:
            return dict(self.lost)
        epoch = int(epoch)
        seen = self.by_epoch.get(epoch)
        if seen is not None and seen[WALL_SECONDS] == counts[WALL_SECONDS]:
            return dict(self.lost)  # a row already read
        first = row.get("iterations_since_restore") == 1
        if self.previous is not None and (first or epoch <= self.previous["epoch"]):
            self._restart(self.previous, epoch, counts, row)
        entry = {
            "epoch": epoch,
            "timestamp": _number(row.get("timestamp")),
            "epoch_s": _number(row.get("time_this_iter_s")),
            **counts,
        }
        self.by_epoch[epoch] = self.previous = entry
        return dict(self.lost)

    def _restart(self, last: dict, epoch: int, counts: dict, row: dict[str, Any]) -> None:
        base = self.by_epoch.get(epoch - 1, {})  # the checkpoint resumed from (none: zero)
        wall = last[WALL_SECONDS]
        in_flight = 0.0
        since = _number(row.get("time_since_restore"))
        if since is None:
            since = counts[WALL_SECONDS] - base.get(WALL_SECONDS, 0.0)
        reported = _number(row.get("timestamp"))
        if None not in (reported, last["timestamp"], last["epoch_s"]):
            gap = reported - since - last["timestamp"]
            in_flight = max(0.0, min(gap, last["epoch_s"]))
        for key in LOST:
            if key not in last:
                continue
            redone = max(last[key] - base.get(key, 0.0), 0.0)
            rate = last[key] / wall if wall > 0 else 0.0
            self.lost[key] = self.lost.get(key, 0.0) + redone + in_flight * rate


def paid(metrics: dict[str, Any], lost: dict[str, float]) -> dict[str, float]:
    """The counts of `metrics` with the lost work added, and the lost parts under their own
    names (LOST's values); nothing when nothing was lost."""
    out: dict[str, float] = {}
    for key, part in lost.items():
        if part <= 0:
            continue
        out[LOST[key]] = part
        if key != WALL_SECONDS and _number(metrics.get(key)) is not None:
            out[key] = float(metrics[key]) + part  # wall time stays the run's own
    return out


def lost_work(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The work lost to restarts in a run's reported rows (see LostWork)."""
    tracker = LostWork()
    for row in rows:
        tracker.add(row)
    return dict(tracker.lost)


def last_paid(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A run's last reported row (empty: none) with its costs as paid: the work it lost to
    restarts added, and the lost parts under their own names."""
    last = rows[-1] if rows else {}
    return {**last, **paid(last, lost_work(rows))}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return float(value)
