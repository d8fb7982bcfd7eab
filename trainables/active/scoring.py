"""Batched passes over pool rows on the scoring device, on eval-transformed images.

Pool images go through `augment(..., "eval")` (the centre crop every evaluation uses), never
the training augmentation: ActiveFER scored randomly cropped and flipped images, which makes
the scores noisy (PROTOCOLS.md section 1, protocol item 12).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from hmtl.trainables.active.base import PoolContext
from hmtl.trainables.augment import augment
from hmtl.trainables.data.faces import FaceData
from hmtl.trainables.network import FaceModel, pool_features
from hmtl.trainables.runtime.transfer import upload


def eval_inputs(data: FaceData, rows: torch.Tensor, image_size: int) -> torch.Tensor:
    """The backbone's input for `rows`: eval-transformed, normalized (as evaluation sees them)."""
    images = data.images[upload(rows, data.images.device)]  # no wait for the GPU's queue
    return augment(images, "eval", out_size=image_size)


def head(model: FaceModel) -> nn.Module:
    """The expression task (its `head` is Dropout then Linear over the pooled features)."""
    return model.tasks["expression"]


def features_of(model: FaceModel, images: torch.Tensor) -> torch.Tensor:
    """Penultimate (pooled backbone) features of eval-transformed images in [0, 1]."""
    return pool_features(model.backbone.forward_features(model._prepare(images)))


def batches(rows: torch.Tensor, size: int) -> Iterator[torch.Tensor]:
    yield from rows.split(size)


@torch.no_grad()
def pool_outputs(ctx: PoolContext, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (N, K), features (N, D)) of `rows`, float32 on the scoring device.

    The model is in eval mode throughout: batch norm uses its running statistics and the
    classifier's dropout is off."""
    model = ctx.model
    model.eval()
    logits, feats = [], []
    for chunk in batches(rows, ctx.batch_size):
        f = features_of(model, eval_inputs(ctx.data, chunk, ctx.image_size)).float()
        feats.append(f)
        logits.append(head(model)(f).float())
    return torch.cat(logits), torch.cat(feats)


def pool_probabilities(ctx: PoolContext) -> torch.Tensor:
    """Softmax probabilities (N, K) of the pool rows."""
    logits, _ = pool_outputs(ctx, ctx.pool)
    return logits.softmax(dim=1)


def last_layer(model: FaceModel) -> nn.Linear:
    """The classifier's final Linear (what BADGE and GLISTER take gradients of)."""
    linear = [m for m in head(model).modules() if isinstance(m, nn.Linear)]
    return linear[-1]


def gradient_factors(logits: torch.Tensor) -> torch.Tensor:
    """d(cross-entropy)/d(logits) with the model's own prediction as label: p - onehot(argmax).

    A last-layer gradient embedding is this (N, K) factor times the features (N, D), outer
    product per row; the strategies keep the two factors instead of the (N, K*D) product.
    """
    p = logits.softmax(dim=1)
    return p - torch.nn.functional.one_hot(p.argmax(dim=1), p.shape[1]).to(p.dtype)


def outer_sq_dist(
    a: torch.Tensor, h: torch.Tensor, a_j: torch.Tensor, h_j: torch.Tensor
) -> torch.Tensor:
    """||a_i (x) h_i - a_j (x) h_j||^2 for every row i against one row j, without the products.

    ||u (x) v||^2 = ||u||^2 ||v||^2 and <a_i (x) h_i, a_j (x) h_j> = <a_i, a_j><h_i, h_j>, so an
    (N, K*D) embedding never has to exist (BADGE's is 30k x 3,584 on FER13 with ResNet-18).
    """
    own = a.pow(2).sum(1) * h.pow(2).sum(1)
    other = a_j.pow(2).sum() * h_j.pow(2).sum()
    cross = (a @ a_j) * (h @ h_j)
    return (own + other - 2 * cross).clamp_(min=0.0)
