"""Comparing trials that stopped at different epochs: values at a common rung.

With ASHA most trials stop early, so "the value a trial reported last" compares a trial's
epoch 2 with another's epoch 10, and only the few complete trials share an epoch. ASHA
itself compares trials at its rungs (grace_period x reduction_factor^k epochs): every trial
that was judged at a rung reported a value there. The report draws each rung, and ranks
parameter importances at the *common rung*: the deepest one that every trial which reached
the first rung also reached (ASHA's grace period, in practice; the last epoch when nothing
stops trials early).
"""

from __future__ import annotations

import math


def asha_rungs(grace_period: int, max_epochs: int, reduction_factor: int) -> list[int]:
    """The epochs at which Ray's ASHA (one bracket) judges trials, and `max_epochs`."""
    count = int(math.log(max_epochs / grace_period) / math.log(reduction_factor) + 1)
    rungs = [grace_period * reduction_factor**k for k in range(count)]
    return sorted({r for r in rungs if r < max_epochs} | {max_epochs})


def space_rungs(space, histories: dict[str, dict[int, float]]) -> tuple[list[int], bool]:
    """The epochs to compare trials at for this sweep, and whether they are ASHA's rungs
    (without a scheduler: every epoch any trial reported)."""
    asha = space.scheduler
    if asha is not None and len(space.metrics) == 1:
        max_epochs = asha.max_epochs or max(
            (max(h, default=0) for h in histories.values()), default=1
        )
        return asha_rungs(asha.grace_period, max_epochs, asha.reduction_factor), True
    return sorted({e for h in histories.values() for e in h}), False


def common_rung(histories: dict[str, dict[int, float]], rungs: list[int]) -> int | None:
    """The deepest rung every trial that reached the first rung also reported at."""
    if not rungs:
        return None
    reached = [h for h in histories.values() if rungs[0] in h]
    if not reached:
        return None
    return max(r for r in rungs if all(r in h for h in reached))


def values_at(histories: dict[str, dict[int, float]], epoch: int) -> dict[str, float]:
    """Trial id -> the value it reported at `epoch` (trials that got there)."""
    return {tid: h[epoch] for tid, h in histories.items() if epoch in h}
