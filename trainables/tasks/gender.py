"""Gender: binary classification from the face, a supervised main task.

Rows whose gender is unknown (negative) are left out of loss and metrics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hmtl.trainables.config import ConfigError, TrainConfig
from hmtl.trainables.data.dataset import DatasetInfo
from hmtl.trainables.metrics import classification_metrics, confusion_matrix
from hmtl.trainables.tasks.base import TaskSpec

CLASSES = ["female", "male"]


class GenderTask(nn.Module):
    name = "gender"
    kind = "main"

    def __init__(self, feature_dim: int) -> None:
        super().__init__()
        self.head = nn.Linear(feature_dim, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logit of `male`, (N,)."""
        return self.head(features).float().squeeze(1)

    def loss(
        self, features: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        labels = batch["gender"]
        known = labels >= 0
        logits = self(features)[known]
        if logits.numel() == 0:
            return {self.name: features.sum() * 0.0}
        return {self.name: F.binary_cross_entropy_with_logits(logits, labels[known].float())}

    def eval_stats(self, features: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        labels = batch["gender"]
        known = labels >= 0
        pred = (self(features) > 0).long()
        return confusion_matrix(pred[known], labels[known], len(CLASSES))

    def summarize(self, stats: torch.Tensor) -> dict[str, float]:
        metrics = classification_metrics(stats, CLASSES)
        return {k: metrics[k] for k in ("accuracy", "balanced_accuracy")}


def build(cfg: TrainConfig, info: DatasetInfo, feature_dim: int) -> GenderTask:
    if "gender" not in info.optional_labels:
        raise ConfigError(f"tasks.main.gender needs gender labels; dataset {info.source} has none")
    return GenderTask(feature_dim)


SPEC = TaskSpec("gender", "main", build)
