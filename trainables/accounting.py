"""Compute accounting: what a run used, as metrics that add up across resumes.

`train` reports two per-run quantities, carried in every checkpoint's metrics so a
resumed run continues them instead of starting again from zero:

- ``time/wall_seconds``: wall time inside `train` (data loading, model build, epochs,
  evaluation, checkpointing), summed over every process that trained the run;
- ``cost/images_seen``: images that went through the backbone in training steps, all
  ranks together: the augmented main batch plus every auxiliary input (tiles, rotated,
  masked images, both contrastive views), counted at the backbone's first conv.

Whoever runs `train` knows what it holds (GPUs, or CPU cores when it has none) and what
that costs; its session turns the wall time into ``cost/device_seconds`` and, when a
price is known, ``cost/usd`` with :func:`costs`. The work of epochs lost to a kill after
the last checkpoint is not counted: the count resumes from the checkpoint.
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


def costs(metrics: dict[str, Any], rate: CostRate | None) -> dict[str, float]:
    """``cost/device_seconds`` (and ``cost/usd``) for a report that carries the wall time.

    Empty when the report has no wall time or the rate is unknown. A run keeps its
    resources across a resume, so the cumulative wall time times today's rate is the
    cumulative count."""
    wall = metrics.get(WALL_SECONDS)
    if rate is None or not isinstance(wall, int | float):
        return {}
    out = {DEVICE_SECONDS: rate.devices * wall}
    if rate.usd_per_hour is not None:
        out[USD] = rate.usd_per_hour * wall / 3600.0
    return out
