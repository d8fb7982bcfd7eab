"""What a query strategy is: the context it picks from and the small protocol (see the
registry's docstring in `registry.py`). Strategy files import this, never the registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

if TYPE_CHECKING:
    from hmtl.trainables.active.config import StrategySettings
    from hmtl.trainables.data.faces import FaceData
    from hmtl.trainables.network import FaceModel


@dataclass
class PoolContext:
    """What a strategy may look at when it picks from the unlabelled pool."""

    model: FaceModel
    data: FaceData
    """The whole training split, resident on the scoring device."""
    pool: torch.Tensor
    """Global row indices (long, sorted) of the unlabelled rows being scored."""
    labelled: torch.Tensor
    """Global row indices of the labelled rows."""
    image_size: int
    batch_size: int
    settings: StrategySettings
    generator: np.random.Generator
    seed: int
    """For torch generators (dropout masks); derived from the same (seed, cycle)."""


Select = Callable[[PoolContext, int], torch.Tensor]


@dataclass(frozen=True)
class Strategy:
    name: str
    kind: Literal["score", "set"]
    select: Select


def by_score(score: Callable[[PoolContext], torch.Tensor]) -> Select:
    """A select that keeps the `budget` highest scores (ties: the earlier pool position)."""

    def select(ctx: PoolContext, budget: int) -> torch.Tensor:
        return top(score(ctx), budget)

    return select


def top(scores: torch.Tensor, budget: int) -> torch.Tensor:
    """Positions of the `budget` largest scores, ties broken by position (stable)."""
    order = torch.sort(scores.detach().float().cpu(), descending=True, stable=True).indices
    return order[:budget]
