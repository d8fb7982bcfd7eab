"""`FaceModel`: one backbone shared by the task heads.

The losses are computed inside `forward`, so a data-parallel wrapper sees every
head's parameters in its forward pass and all-reduces their gradients too.
"""

from __future__ import annotations

import torch
from torch import nn


class FaceModel(nn.Module):
    def __init__(self, backbone: nn.Module, tasks: nn.ModuleDict) -> None:
        super().__init__()
        self.backbone = backbone
        self.tasks = tasks

    def forward(
        self, images: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Named, unweighted losses of every enabled task on this batch."""
        features = self.backbone(images)
        losses: dict[str, torch.Tensor] = {}
        for task in self.tasks.values():
            losses.update(task.loss(features, batch))
        return losses

    @torch.no_grad()
    def eval_stats(
        self, images: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Summable evaluation statistics of each main task on clean images."""
        features = self.backbone(images)
        return {
            name: task.eval_stats(features, batch)
            for name, task in self.tasks.items()
            if task.kind == "main"
        }
