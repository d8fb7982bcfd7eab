"""CoreSet: k-center greedy on penultimate features (Sener & Savarese).

Starts from each pool row's distance to its nearest labelled row, then `budget` times picks
the row furthest from everything chosen so far and lowers the distances by the new centre.
Distances are taken chunk by chunk (`strategies.chunk_size` rows against as many), so memory
is O(pool x D + chunk^2), never pool x labelled.
"""

from __future__ import annotations

import torch

from hmtl.trainables.active.base import PoolContext, Strategy
from hmtl.trainables.active.scoring import pool_outputs


def nearest_distance(x: torch.Tensor, centres: torch.Tensor, chunk: int) -> torch.Tensor:
    """Euclidean distance of every row of `x` to its nearest row of `centres`, chunked."""
    best = torch.full((len(x),), float("inf"), device=x.device)
    for start in range(0, len(x), chunk):
        part = x[start : start + chunk]
        for c in centres.split(chunk):
            d = torch.cdist(part, c).min(dim=1).values
            best[start : start + chunk] = torch.minimum(best[start : start + chunk], d)
    return best


def kcenter_greedy(
    pool: torch.Tensor, labelled: torch.Tensor, budget: int, chunk: int = 4096
) -> torch.Tensor:
    """Positions into `pool` (N, D) of `budget` furthest-first centres, given `labelled` (M, D)."""
    distance = nearest_distance(pool, labelled, chunk)
    picked = []
    for _ in range(budget):
        i = int(distance.argmax())
        picked.append(i)
        d = torch.cdist(pool, pool[i : i + 1]).squeeze(1)
        distance = torch.minimum(distance, d)
        distance[i] = -1.0  # chosen: never again, even when rows coincide
    return torch.tensor(picked, dtype=torch.long)


def select(ctx: PoolContext, budget: int) -> torch.Tensor:
    _, pool = pool_outputs(ctx, ctx.pool)
    _, labelled = pool_outputs(ctx, ctx.labelled)
    return kcenter_greedy(pool, labelled, budget, ctx.settings.chunk_size)


STRATEGY = Strategy("coreset", "set", select)
