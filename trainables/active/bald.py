"""BALD with MC dropout: query the rows where stochastic forward passes disagree most.

Score = H[mean_t p_t] - mean_t H[p_t] over T passes (mutual information between the label
and the weights). Only the dropout before the classifier is stochastic; the backbone runs
once per batch in eval mode, so batch norm keeps its running statistics (ActiveFER ran its
passes in `model.train()`, which rewrites them; PROTOCOLS.md section 1, item 3). Backbones
here have no dropout of their own, so when `model.dropout` is 0 a dropout of
`strategies.bald.dropout` is applied before the classifier for scoring. With dropout 0 every
pass is the same and every score is 0.
"""

from __future__ import annotations

import torch
from torch import nn

from hmtl.trainables.active.base import PoolContext, Strategy, by_score
from hmtl.trainables.active.entropy import entropy
from hmtl.trainables.active.scoring import batches, eval_inputs, features_of, head, last_layer


def mutual_information(probs: torch.Tensor) -> torch.Tensor:
    """BALD score per row from (T, N, K) probabilities."""
    return entropy(probs.mean(0)) - torch.stack([entropy(p) for p in probs]).mean(0)


def dropout_rate(ctx: PoolContext) -> float:
    """The classifier's own dropout, or the configured scoring dropout when it has none."""
    own = [m.p for m in head(ctx.model).modules() if isinstance(m, nn.Dropout)]
    return own[0] if own and own[0] > 0 else ctx.settings.bald.dropout


@torch.no_grad()
def score(ctx: PoolContext) -> torch.Tensor:
    model, passes = ctx.model, ctx.settings.bald.passes
    model.eval()
    p = dropout_rate(ctx)
    linear = last_layer(model)
    device = ctx.data.images.device
    masks = torch.Generator(device=device).manual_seed(ctx.seed)
    out = []
    for chunk in batches(ctx.pool, ctx.batch_size):
        f = features_of(model, eval_inputs(ctx.data, chunk, ctx.image_size)).float()
        probs = []
        for _ in range(passes):
            keep = torch.rand(f.shape, generator=masks, device=device) >= p
            dropped = f * keep / (1.0 - p) if p > 0 else f
            probs.append(linear(dropped).float().softmax(dim=1))
        out.append(mutual_information(torch.stack(probs)))
    return torch.cat(out)


STRATEGY = Strategy("bald", "score", by_score(score))
