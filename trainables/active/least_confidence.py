"""Least confidence: query the rows whose most likely class has the lowest probability."""

from __future__ import annotations

import torch

from hmtl.trainables.active.registry import PoolContext, by_score, register
from hmtl.trainables.active.scoring import pool_probabilities


def least_confidence(p: torch.Tensor) -> torch.Tensor:
    """-max_c p_c; highest = least confident."""
    return -p.max(dim=1).values


def score(ctx: PoolContext) -> torch.Tensor:
    return least_confidence(pool_probabilities(ctx))


register("least_confidence", kind="score")(by_score(score))
