"""Entropy: query the rows whose predicted class distribution is most uncertain."""

from __future__ import annotations

import torch

from hmtl.trainables.active.base import PoolContext, Strategy, by_score
from hmtl.trainables.active.scoring import pool_probabilities


def entropy(p: torch.Tensor) -> torch.Tensor:
    """-sum_c p_c log p_c per row (0 log 0 taken as 0)."""
    return -(p * p.clamp(min=1e-12).log()).sum(dim=1)


def score(ctx: PoolContext) -> torch.Tensor:
    return entropy(pool_probabilities(ctx))


STRATEGY = Strategy("entropy", "score", by_score(score))
