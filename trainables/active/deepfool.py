"""Adversarial DeepFool: query the rows that the smallest input perturbation flips.

DeepFool (Moosavi-Dezfooli et al.) linearises the classifier around the input and steps to
the nearest linearised boundary until the prediction changes (at most
`strategies.deepfool.max_iter` steps, each overshot by `overshoot`). Score = ||r||^2; the
`budget` smallest are queried (closest to the boundary). ActiveFER runs it one image at a
time; here a batch runs together (the model is in eval mode, so rows do not interact and the
gradient of a summed logit is each row's own), rows leaving the loop once they flip.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from hmtl.trainables.active.base import PoolContext, Strategy, by_score
from hmtl.trainables.active.scoring import batches, eval_inputs, head, pool_features


def deepfool_norms(
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    max_iter: int = 50,
    overshoot: float = 0.02,
) -> torch.Tensor:
    """Squared norm of the DeepFool perturbation of each row of `x` under `forward` (logits)."""
    x = x.detach()
    shape = (-1,) + (1,) * (x.dim() - 1)
    r_tot = torch.zeros_like(x)
    with torch.no_grad():
        label = forward(x).argmax(1)
    rows = torch.arange(len(x), device=x.device)  # the rows not flipped yet
    for _ in range(max_iter):
        xa = (x[rows] + (1 + overshoot) * r_tot[rows]).requires_grad_(True)
        logits = forward(xa).float()
        still = logits.argmax(1) == label[rows]
        if not still.any():
            break
        own = logits.gather(1, label[rows][:, None]).squeeze(1)
        grad_own = torch.autograd.grad(own.sum(), xa, retain_graph=True)[0]
        best = torch.full((len(rows),), float("inf"), device=x.device)
        step = torch.zeros_like(xa)
        for k in range(logits.shape[1]):
            w = torch.autograd.grad(logits[:, k].sum(), xa, retain_graph=True)[0] - grad_own
            f = (logits[:, k] - own).detach().abs()
            norm = w.flatten(1).norm(dim=1) + 1e-8
            closer = (label[rows] != k) & (f / norm < best)
            best = torch.where(closer, f / norm, best)
            candidate = ((f + 1e-4) / norm**2).view(shape) * w
            step = torch.where(closer.view(shape), candidate, step)
        r_tot[rows[still]] += step[still]
        rows = rows[still]  # flipped rows leave the batch: later passes compute only the rest
    return ((1 + overshoot) * r_tot).flatten(1).pow(2).sum(1).detach()


def score(ctx: PoolContext) -> torch.Tensor:
    model = ctx.model
    model.eval()
    classifier = head(model)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return classifier(pool_features(model.backbone.forward_features(x)))

    settings = ctx.settings.deepfool
    norms = [
        deepfool_norms(
            forward,
            model._prepare(eval_inputs(ctx.data, chunk, ctx.image_size)),
            settings.max_iter,
            settings.overshoot,
        )
        for chunk in batches(ctx.pool, ctx.batch_size)
    ]
    return -torch.cat(norms)  # the smallest perturbation is queried first


STRATEGY = Strategy("deepfool", "score", by_score(score))
