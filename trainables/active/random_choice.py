"""Random: a uniform draw from the pool (the baseline every strategy is compared with)."""

from __future__ import annotations

import torch

from hmtl.trainables.active.base import PoolContext, Strategy


def select(ctx: PoolContext, budget: int) -> torch.Tensor:
    """`budget` distinct pool positions drawn uniformly from the cycle's seeded generator."""
    return torch.from_numpy(ctx.generator.choice(len(ctx.pool), size=budget, replace=False))


STRATEGY = Strategy("random", "set", select)
