"""Facial expression recognition: the main supervised task.

Cross-entropy over the canonical classes, with optional inverse-frequency class
weights (majority count / class count, the usual remedy for FER's imbalance) and
label smoothing. Evaluated through a confusion matrix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hmtl.trainables.config import ExpressionConfig, TrainConfig
from hmtl.trainables.data.dataset import DatasetInfo
from hmtl.trainables.metrics import classification_metrics, confusion_matrix
from hmtl.trainables.tasks.base import TaskSpec


class ExpressionTask(nn.Module):
    name = "expression"
    kind = "main"

    def __init__(
        self, feature_dim: int, info: DatasetInfo, cfg: ExpressionConfig, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.classes = list(info.classes)
        self.label_smoothing = cfg.label_smoothing
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, len(self.classes)))
        weights = class_weights(info.class_counts) if cfg.class_weights != "none" else None
        self.register_buffer("class_weight", weights, persistent=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def loss(
        self, features: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        logits = self(features).float()
        if "weight" in batch:  # data.extra_sources: pseudo-labelled rows weigh extra_weight
            return {self.name: _row_weighted(self, logits, batch)}
        ce = F.cross_entropy(
            logits,
            batch["expression"],
            weight=self.class_weight,
            label_smoothing=self.label_smoothing,
        )
        return {self.name: ce}

    def eval_stats(self, features: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """A summable statistic: the confusion matrix of this batch."""
        pred = self(features).argmax(dim=1)
        return confusion_matrix(pred, batch["expression"], len(self.classes))

    def summarize(self, stats: torch.Tensor) -> dict[str, object]:
        metrics: dict[str, object] = dict(classification_metrics(stats, self.classes))
        metrics["confusion_matrix"] = stats.cpu().tolist()
        return metrics


def _row_weighted(task: ExpressionTask, logits: torch.Tensor, batch: dict) -> torch.Tensor:
    """Cross-entropy averaged with per-row weights times class weights: with every row
    weight 1 it equals the unweighted loss (same normaliser as cross_entropy's mean)."""
    y = batch["expression"]
    per_row = F.cross_entropy(
        logits, y, weight=task.class_weight, label_smoothing=task.label_smoothing, reduction="none"
    )
    w = batch["weight"].to(per_row.dtype)
    norm = w * (task.class_weight[y] if task.class_weight is not None else 1.0)
    return (per_row * w).sum() / norm.sum().clamp_min(1e-12)


def class_weights(counts: tuple[int, ...]) -> torch.Tensor:
    """Majority count / class count; classes absent from training get weight 0."""
    c = torch.tensor(counts, dtype=torch.float32)
    return torch.where(c > 0, c.max() / c.clamp(min=1), torch.zeros_like(c))


def build(cfg: TrainConfig, info: DatasetInfo, feature_dim: int) -> ExpressionTask:
    return ExpressionTask(feature_dim, info, cfg.tasks.main.expression, cfg.model.dropout)


SPEC = TaskSpec("expression", "main", build)
