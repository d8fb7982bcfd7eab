"""Query-strategy registry: one file per strategy, registered by name, one small protocol.

A strategy is a function `select(ctx, budget) -> positions`: `budget` distinct positions into
`ctx.pool` (not global indices; the loop converts them at once). Two kinds, like baal's
heuristics and DISTIL's strategies:

- score-based (`kind="score"`): the file defines a score (higher = queried first) and
  registers `by_score(score)`, which keeps the `budget` highest;
- set-based (`kind="set"`): the file chooses the whole batch itself (CoreSet, BADGE,
  GLISTER, DeepFool), working in chunks so memory stays bounded on a large pool.

Every random choice comes from `ctx.generator` (seeded per (seed, cycle) by the loop), so a
resumed loop selects exactly what an uninterrupted one does.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

if TYPE_CHECKING:
    from hmtl.trainables.active.config import StrategySettings
    from hmtl.trainables.data.dataset import FaceData
    from hmtl.trainables.network import FaceModel

MODULES = (
    "random_choice",
    "entropy",
    "margin",
    "least_confidence",
    "bald",
    "coreset",
    "badge",
    "glister",
    "deepfool",
)


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


REGISTRY: dict[str, Strategy] = {}


def register(name: str, kind: Literal["score", "set"]) -> Callable[[Select], Select]:
    """Decorator for a `select(ctx, budget)` function."""

    def wrap(select: Select) -> Select:
        if name in REGISTRY:
            raise ValueError(f"strategy '{name}' registered twice")
        REGISTRY[name] = Strategy(name, kind, select)
        return select

    return wrap


def by_score(score: Callable[[PoolContext], torch.Tensor]) -> Select:
    """A select that keeps the `budget` highest scores (ties: the earlier pool position)."""

    def select(ctx: PoolContext, budget: int) -> torch.Tensor:
        return top(score(ctx), budget)

    return select


def top(scores: torch.Tensor, budget: int) -> torch.Tensor:
    """Positions of the `budget` largest scores, ties broken by position (stable)."""
    order = torch.sort(scores.detach().float().cpu(), descending=True, stable=True).indices
    return order[:budget]


def strategies() -> dict[str, Strategy]:
    """Every registered strategy (importing the strategy files registers them)."""
    for module in MODULES:
        importlib.import_module(f"hmtl.trainables.active.{module}")
    return REGISTRY


def get_strategy(name: str) -> Strategy:
    found = strategies().get(name)
    if found is None:
        raise KeyError(f"unknown strategy '{name}' (known: {', '.join(sorted(REGISTRY))})")
    return found
