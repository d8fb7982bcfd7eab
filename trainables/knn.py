"""Weighted k-NN evaluation of a backbone: representation quality without training on labels.

The protocol of InstDisc (Wu et al. 2018) and solo-learn's `WeightedKNNClassifier`: pooled
backbone features, L2-normalised, of the labelled training rows are the memory; each
validation face takes its k most cosine-similar memory rows, each neighbour votes for its
class with weight exp(similarity / T), and the class with the largest summed vote wins.
Defaults k = 20, T = 0.07, as those papers report it.

Similarities are computed for `chunk` queries at a time, so memory stays at
chunk x memory-rows floats whatever the split sizes.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmtl.trainables.augment import augment, normalize
from hmtl.trainables.runtime.transfer import upload

K = 20
TEMPERATURE = 0.07


@torch.no_grad()
def knn_predict(
    memory: Tensor,
    memory_labels: Tensor,
    queries: Tensor,
    num_classes: int,
    k: int = K,
    temperature: float = TEMPERATURE,
    chunk: int = 1024,
) -> Tensor:
    """Predicted class (M,) of each query (M, D) from memory features (N, D) and labels (N,).

    Features should be L2-normalised (then the dot product is the cosine similarity);
    k is capped at N. Ties between classes go to the lower index (argmax)."""
    k = min(k, len(memory))
    preds = []
    for part in queries.split(chunk):
        sims, index = (part @ memory.T).topk(k, dim=1)  # (c, k)
        votes = torch.zeros(len(part), num_classes, device=queries.device, dtype=sims.dtype)
        votes.scatter_add_(1, memory_labels[index], (sims / temperature).exp())
        preds.append(votes.argmax(dim=1))
    if not preds:
        return torch.zeros(0, dtype=torch.long, device=queries.device)
    return torch.cat(preds)


@torch.no_grad()
def embed(
    backbone: nn.Module,
    images: Tensor,
    image_size: int,
    batch_size: int,
    autocast: contextlib.AbstractContextManager | None = None,
) -> Tensor:
    """L2-normalised pooled features (N, D), float32, of uint8 images (N, C, H, W) under the
    evaluation transform. The caller puts the backbone in eval mode."""
    out, device = [], next(backbone.parameters()).device
    for part in images.split(batch_size):  # training rows may be in host memory (data_placement)
        x = normalize(augment(upload(part, device), "eval", out_size=image_size))
        with autocast or contextlib.nullcontext():
            maps = backbone.forward_features(x)
        pooled = torch.flatten(F.adaptive_avg_pool2d(maps.float(), 1), 1)
        out.append(F.normalize(pooled, dim=1))
    return torch.cat(out) if out else torch.zeros(0)


def knn_accuracy(
    backbone: nn.Module,
    memory: tuple[Tensor, Tensor],
    query: tuple[Tensor, Tensor],
    num_classes: int,
    image_size: int,
    batch_size: int,
    autocast: contextlib.AbstractContextManager | None = None,
) -> float | None:
    """Weighted k-NN accuracy on `query` (images, labels) with `memory` (images, labels) as
    the labelled neighbours; rows labelled -1 are left out of both. None when either side
    has no labelled row. Restores the backbone's train/eval mode afterwards."""
    (mem_x, mem_y), (q_x, q_y) = memory, query
    mem_x, mem_y = mem_x[mem_y >= 0], mem_y[mem_y >= 0]
    q_x, q_y = q_x[q_y >= 0], q_y[q_y >= 0]
    if len(mem_y) == 0 or len(q_y) == 0:
        return None
    was_training = backbone.training
    backbone.eval()
    try:
        mem_f = embed(backbone, mem_x, image_size, batch_size, autocast)
        q_f = embed(backbone, q_x, image_size, batch_size, autocast)
    finally:
        backbone.train(was_training)
    pred = knn_predict(mem_f, mem_y.to(mem_f.device), q_f, num_classes)
    return float((pred == q_y.to(pred.device)).float().mean())
