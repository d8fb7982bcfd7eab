"""Head pose: yaw, pitch and roll regression in degrees, a supervised main task.

Angle conventions follow the synthetic faces (and every reader maps to them): image x
right, y down; positive yaw turns the face towards image right, positive pitch tilts
it up, positive roll turns it clockwise on screen. Augmentation moves the labels with
the image: a mirror negates yaw and roll, an in-plane rotation shifts roll.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hmtl.trainables.config import ConfigError, HeadPoseConfig, TrainConfig
from hmtl.trainables.data.dataset import DatasetInfo
from hmtl.trainables.tasks.base import TaskSpec

ANGLES = ("yaw", "pitch", "roll")
_LOSSES = {"smooth_l1": F.smooth_l1_loss, "l1": F.l1_loss, "mse": F.mse_loss}


class HeadPoseTask(nn.Module):
    name = "head_pose"
    kind = "main"

    def __init__(self, feature_dim: int, cfg: HeadPoseConfig) -> None:
        super().__init__()
        self.head = nn.Linear(feature_dim, len(ANGLES))
        self.scale = cfg.scale_deg
        self.loss_fn = _LOSSES[cfg.loss]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Predicted (yaw, pitch, roll) in degrees, (N, 3)."""
        return self.head(features).float() * self.scale

    def loss(
        self, features: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        target, valid = targets(batch)
        pred = self(features)[valid] / self.scale
        if pred.numel() == 0:
            return {self.name: features.sum() * 0.0}
        return {self.name: self.loss_fn(pred, target[valid] / self.scale)}

    def eval_stats(self, features: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Summed absolute error per angle, then the count of labelled rows: (4,)."""
        target, valid = targets(batch)
        errors = (self(features) - target).abs()[valid].double()
        return torch.cat(
            [
                errors.sum(0),
                torch.tensor([float(valid.sum())], device=errors.device, dtype=torch.float64),
            ]
        )

    def summarize(self, stats: torch.Tensor) -> dict[str, float]:
        count = max(float(stats[-1]), 1.0)
        mae = {f"mae_{angle}": float(stats[i]) / count for i, angle in enumerate(ANGLES)}
        return {**mae, "mae": sum(mae.values()) / len(ANGLES)}


def targets(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3) angles as the augmented image shows them, and which rows are labelled."""
    yaw, pitch, roll = (batch[a].float() for a in ANGLES)
    if "rotation_deg" in batch:
        # augment turns content counter-clockwise by rotation_deg; roll counts clockwise.
        roll = roll - batch["rotation_deg"].float()
    if "flipped" in batch:
        sign = 1.0 - 2.0 * batch["flipped"].float()
        yaw, roll = yaw * sign, roll * sign
    angles = torch.stack([yaw, pitch, roll], dim=1)
    return angles, torch.isfinite(angles).all(dim=1)


def build(cfg: TrainConfig, info: DatasetInfo, feature_dim: int) -> HeadPoseTask:
    missing = [a for a in ANGLES if a not in info.optional_labels]
    if missing:
        raise ConfigError(
            f"tasks.main.head_pose needs {'/'.join(ANGLES)} labels; dataset "
            f"{info.source} has no {', '.join(missing)}"
        )
    return HeadPoseTask(feature_dim, cfg.tasks.main.head_pose)


SPEC = TaskSpec("head_pose", "main", build)
