"""BADGE: k-means++ seeding on last-layer gradient embeddings (Ash et al.).

The embedding of a pool row is (p - onehot(argmax p)) (x) h: the cross-entropy gradient of the
classifier's weights with the model's own prediction as label (ActiveFER's "linear" type,
no bias part). Large norms mean uncertain rows; k-means++ spreads the picks out. The first
centre is the row with the largest norm, each next one is drawn with probability proportional
to its squared distance to the nearest chosen centre. Distances come from the two factors
(see `outer_sq_dist`), so the (N, K*D) embedding is never built.
"""

from __future__ import annotations

import numpy as np
import torch

from hmtl.trainables.active.base import PoolContext, Strategy
from hmtl.trainables.active.scoring import gradient_factors, outer_sq_dist, pool_outputs


def kmeans_pp(
    a: torch.Tensor, h: torch.Tensor, budget: int, generator: np.random.Generator
) -> torch.Tensor:
    """Positions of `budget` k-means++ seeds over the embeddings a_i (x) h_i."""
    norms = a.pow(2).sum(1) * h.pow(2).sum(1)
    first = int(norms.argmax())
    picked = [first]
    d2 = outer_sq_dist(a, h, a[first], h[first])
    d2[first] = 0.0
    while len(picked) < budget:
        weights = d2.double().cpu().numpy()
        weights[picked] = 0.0
        total = weights.sum()
        if total <= 0:  # every remaining row coincides with a centre: draw uniformly
            weights = np.ones(len(weights))
            weights[picked] = 0.0
            total = weights.sum()
        i = int(generator.choice(len(weights), p=weights / total))
        picked.append(i)
        d2 = torch.minimum(d2, outer_sq_dist(a, h, a[i], h[i]))
        d2[i] = 0.0
    return torch.tensor(picked, dtype=torch.long)


def select(ctx: PoolContext, budget: int) -> torch.Tensor:
    logits, features = pool_outputs(ctx, ctx.pool)
    return kmeans_pp(gradient_factors(logits), features, budget, ctx.generator)


STRATEGY = Strategy("badge", "set", select)
