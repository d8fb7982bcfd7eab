"""Least confidence: query the rows whose most likely class has the lowest probability."""

from __future__ import annotations

import torch

from hmtl.trainables.active.base import PoolContext, Strategy, by_score
from hmtl.trainables.active.scoring import pool_probabilities


def least_confidence(p: torch.Tensor) -> torch.Tensor:
    """-max_c p_c; highest = least confident."""
    return -p.max(dim=1).values


def score(ctx: PoolContext) -> torch.Tensor:
    return least_confidence(pool_probabilities(ctx))


STRATEGY = Strategy("least_confidence", "score", by_score(score))
