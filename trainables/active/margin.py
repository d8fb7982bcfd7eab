"""Margin: query the rows whose two most likely classes are closest (nearest the boundary)."""

from __future__ import annotations

import torch

from hmtl.trainables.active.base import PoolContext, Strategy, by_score
from hmtl.trainables.active.scoring import pool_probabilities


def negated_margin(p: torch.Tensor) -> torch.Tensor:
    """p_(2) - p_(1): second-largest minus largest probability; highest = smallest margin."""
    top2 = p.topk(2, dim=1).values
    return top2[:, 1] - top2[:, 0]


def score(ctx: PoolContext) -> torch.Tensor:
    return negated_margin(pool_probabilities(ctx))


STRATEGY = Strategy("margin", "score", by_score(score))
