"""GLISTER, diversity form, as ActiveFER ran it (DISTIL `GLISTER(typeOf="Diversity", lam=10)`).

Greedy, one row at a time. The gain of pool row i is g_i . g_val - lam * sum_{j in S}
exp(-||g_i - g_j||^2 / 2), where g are last-layer (bias + weight) cross-entropy gradients with
the model's prediction as label, and g_val is the mean gradient over the "validation" set,
which with no validation set given is the labelled rows (true labels) plus the pool
(pseudo-labels). After each pick the classifier takes one Taylor/SGD step of rate
`strategies.glister.lr` along the picked gradient and g_val is recomputed from the moved
logits. DISTIL builds the dense N x N kernel (2.7 GB on FER13); here each pick adds one
kernel column to a running penalty, so memory stays O(N (K + D)).

Two known departures from DISTIL's code (benchmarks/active_scoring.py compares the two;
they picked the same 100 of 100 rows on a 2k synthetic pool): DISTIL first moves the logits
one step along the labelled rows' summed gradient (`prev_grads_sum`) before the first pick,
which this does not; and DISTIL divides the first validation gradient by the pool size,
where this takes the mean over the joined validation set.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hmtl.trainables.active.base import PoolContext, Strategy
from hmtl.trainables.active.scoring import gradient_factors, outer_sq_dist, pool_outputs


def glister_greedy(
    a: torch.Tensor,
    h: torch.Tensor,
    val_logits: torch.Tensor,
    val_features: torch.Tensor,
    val_labels: torch.Tensor,
    budget: int,
    lam: float = 10.0,
    lr: float = 0.01,
) -> torch.Tensor:
    """Positions of `budget` greedy picks over pool gradient factors `a` (N, K), features `h`."""
    onehot = F.one_hot(val_labels, a.shape[1]).to(a.dtype)
    logits = val_logits.clone()
    penalty = torch.zeros(len(a), device=a.device, dtype=a.dtype)
    taken = torch.zeros(len(a), dtype=torch.bool, device=a.device)
    picked = []
    for _ in range(budget):
        grad = logits.softmax(dim=1) - onehot  # (M, K): d loss / d logits per validation row
        bias_val = grad.mean(0)
        weight_val = grad.T @ val_features / len(grad)  # (K, D)
        gain = a @ bias_val + (a * (h @ weight_val.T)).sum(1) - lam * penalty
        gain[taken] = -float("inf")
        i = int(gain.argmax())
        picked.append(i)
        taken[i] = True
        d2 = (a - a[i]).pow(2).sum(1) + outer_sq_dist(a, h, a[i], h[i])
        penalty += torch.exp(-d2 / 2)
        # One SGD step of the classifier along row i's gradient: W -= lr a_i h_i^T, b -= lr a_i.
        logits -= lr * ((val_features @ h[i])[:, None] * a[i][None, :] + a[i][None, :])
    return torch.tensor(picked, dtype=torch.long)


def select(ctx: PoolContext, budget: int) -> torch.Tensor:
    pool_logits, pool_features = pool_outputs(ctx, ctx.pool)
    lab_logits, lab_features = pool_outputs(ctx, ctx.labelled)
    truth = ctx.data.labels["expression"][ctx.labelled.to(ctx.data.images.device)]
    settings = ctx.settings.glister
    return glister_greedy(
        gradient_factors(pool_logits),
        pool_features,
        torch.cat([lab_logits, pool_logits]),
        torch.cat([lab_features, pool_features]),
        torch.cat([truth.to(pool_logits.device), pool_logits.argmax(1)]),
        budget,
        lam=settings.lam,
        lr=settings.lr,
    )


STRATEGY = Strategy("glister", "set", select)
