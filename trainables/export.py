"""The trained model as others load it: images in, expression logits out.

A checkpoint holds the whole multi-task `FaceModel` (backbone, every head, optimizer
state). What a user of the result wants is the backbone and the expression head, with the
same preprocessing evaluation used. `ExpressionClassifier` is that, rebuilt from a
checkpoint's state alone (config plus weights), so trackers can log it as a model.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hmtl.trainables.augment import normalize
from hmtl.trainables.data.prepared import EXPRESSIONS
from hmtl.trainables.models import build_backbone

HEAD_PREFIX = "tasks.expression.head.1."  # Sequential(Dropout, Linear): the Linear


class ExpressionClassifier(nn.Module):
    """Float images in [0, 1], shape (N, C, S, S) -> expression logits (N, classes)."""

    def __init__(self, backbone: nn.Module, head: nn.Linear, classes: list[str]) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.classes = classes

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone.forward_features(normalize(images))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(features, 1), 1))


def classifier_from_checkpoint(state: dict[str, Any]) -> ExpressionClassifier | None:
    """The classifier of a loaded checkpoint (`load_checkpoint`), in eval mode on CPU;
    None when the run trained no expression head."""
    cfg, weights = state["config"], state["model"]
    if f"{HEAD_PREFIX}weight" not in weights:
        return None
    backbone = build_backbone(
        cfg["model"]["backbone"],
        cfg["data"]["channels"],
        cfg["model"]["width"],
        cfg["model"].get("stem", "imagenet"),  # checkpoints from before the setting existed
    )
    backbone.load_state_dict(
        {k[len("backbone.") :]: v for k, v in weights.items() if k.startswith("backbone.")}
    )
    out_features, in_features = weights[f"{HEAD_PREFIX}weight"].shape
    head = nn.Linear(in_features, out_features)
    head.load_state_dict(
        {k[len(HEAD_PREFIX) :]: v for k, v in weights.items() if k.startswith(HEAD_PREFIX)}
    )
    classes = list(EXPRESSIONS[:out_features])
    return ExpressionClassifier(backbone, head, classes).eval()


def example_input(state: dict[str, Any], count: int = 2) -> torch.Tensor:
    """A batch of mid-grey images of the checkpoint's shape (for signatures and examples)."""
    data = state["config"]["data"]
    return torch.full((count, data["channels"], data["image_size"], data["image_size"]), 0.5)
