"""Task registry: every task (main or auxiliary) is one file here, named in `REGISTRY` below.

A task is an `nn.Module` holding its head(s); it returns named, *unweighted* losses
(`{"jigsaw": ...}` or `{"inpainting/l1": ...}`), and `combine` applies the configured
weights in one place. The registry names are the keys of `tasks.main`,
`tasks.loss_weights`, search-space entries and tracked metrics.

Main tasks (`kind = "main"`) read the backbone features of the training batch:
    loss(features, batch) -> dict[str, Tensor]
    eval_stats(features, batch) -> Tensor        # summable over batches and ranks
    summarize(stats) -> dict[str, float | list]

Auxiliary tasks (`kind = "aux"`) make their own input and labels from the batch:
    make_input(aux: AuxBatch) -> (images in [0, 1] of shape (M, C, S, S), targets dict)
    loss(features (M, D), feature_map (M, D, h, w), targets, images) -> dict[str, Tensor]
`images` is the normalized input the task made (what went through the backbone).
`FaceModel` normalizes every input and, when it can, passes all of them through the
backbone in one batched forward.
"""

from __future__ import annotations

import torch
from torch import nn

from hmtl.trainables.config import TrainConfig
from hmtl.trainables.data.dataset import DatasetInfo
from hmtl.trainables.tasks import (
    contrastive,
    expression,
    gender,
    head_pose,
    inpainting,
    jigsaw,
    rotation,
)
from hmtl.trainables.tasks.base import AuxBatch, TaskSpec

__all__ = ["REGISTRY", "AuxBatch", "TaskSpec", "build_tasks", "combine", "task_weights"]

# Every task, in the order build_tasks instantiates them (fixed, so that parameter creation
# and hence initialisation are the same in every run).
REGISTRY: dict[str, TaskSpec] = {
    task.SPEC.name: task.SPEC
    for task in (contrastive, expression, gender, head_pose, inpainting, jigsaw, rotation)
}


def task_weights(cfg: TrainConfig) -> dict[str, float]:
    """Weight of every enabled task: main tasks by their `weight`, auxiliaries when > 0."""
    weights = {
        name: float(section.weight) for name, section in cfg.tasks.main if section is not None
    }
    weights.update({name: float(w) for name, w in cfg.tasks.loss_weights if w > 0})
    return weights


def build_tasks(cfg: TrainConfig, info: DatasetInfo, feature_dim: int) -> nn.ModuleDict:
    """Instantiate the enabled tasks in a fixed order (registry order) for reproducibility."""
    enabled = task_weights(cfg)
    unknown = sorted(set(enabled) - set(REGISTRY))
    if unknown:
        raise ValueError(f"tasks not registered: {', '.join(unknown)}")
    return nn.ModuleDict(
        {
            name: spec.build(cfg, info, feature_dim)
            for name, spec in REGISTRY.items()
            if name in enabled
        }
    )


def combine(
    losses: dict[str, torch.Tensor], weights: dict[str, float]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total = sum of weight[task] * loss[task part]. Parts are named `<task>` or `<task>/<x>`."""
    total = None
    for part, value in losses.items():
        term = weights[part.split("/", 1)[0]] * value
        total = term if total is None else total + term
    if total is None:
        raise ValueError("no task produced a loss")
    return total, losses
