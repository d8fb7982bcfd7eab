"""The primitive model a pool is mined with: an hmtl checkpoint's backbone and expression head.

`embed` turns a uint8 NHWC batch into (L2-normalised penultimate features, logits) with the
evaluation transform the trainer validates with, so embeddings match what the head was
trained to read. Used by the Ray Data actors and the in-process loop alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hmtl.trainables.augment import augment, normalize
from hmtl.trainables.checkpoint import CheckpointError, load_checkpoint
from hmtl.trainables.config import TrainConfig
from hmtl.trainables.data.faces import to_channels
from hmtl.trainables.models import build_backbone

HEAD = "tasks.expression.head.1."  # nn.Sequential(Dropout, Linear): the Linear's keys


@dataclass
class Primitive:
    """A loaded primitive model, in eval mode on `device`."""

    backbone: nn.Module
    head: nn.Linear
    image_size: int
    channels: int
    classes: int
    device: torch.device

    @torch.no_grad()
    def embed(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(unit-norm features (N, D) float32, logits (N, classes) float32) of uint8 NHWC
        `images`; channels are converted to the model's as the trainer does."""
        x = torch.from_numpy(np.require(images, requirements=["C", "W"])).permute(0, 3, 1, 2)
        x = to_channels(x, self.channels).to(self.device)
        x = normalize(augment(x, "eval", out_size=self.image_size))
        features = self.backbone(x)
        logits = self.head(features)
        return F.normalize(features, dim=1).float().cpu().numpy(), logits.float().cpu().numpy()


def primitive_spec(checkpoint: str, name: str | None = None) -> dict:
    """What rebuilds the primitive model anywhere: its config and the backbone and expression
    head tensors of the hmtl checkpoint folder (or checkpoint.pt) `checkpoint`. Small and
    picklable, so a pool of embedding actors on other nodes needs no copy of the file.

    Raises a one-line CheckpointError (naming `name`, the reference a user gave) for a file
    that is not an hmtl checkpoint or has no expression head."""
    where = name or checkpoint
    try:
        state = load_checkpoint(checkpoint)
    except CheckpointError as err:
        raise CheckpointError(f"--model {where}: {err}") from None
    model = state["model"]
    if f"{HEAD}weight" not in model:
        raise CheckpointError(
            f"--model {where}: the checkpoint has no expression head (mining needs a model "
            "trained with tasks.main.expression)"
        )
    prefix = "backbone."
    return {
        "config": state["config"],
        "backbone": {k[len(prefix) :]: v for k, v in model.items() if k.startswith(prefix)},
        "head": {"weight": model[f"{HEAD}weight"], "bias": model[f"{HEAD}bias"]},
    }


def build_primitive(spec: dict, device: str = "cpu") -> Primitive:
    """The `Primitive` of a `primitive_spec`, in eval mode on `device`."""
    cfg = TrainConfig.model_validate(spec["config"])
    backbone = build_backbone(
        cfg.model.backbone, cfg.data.channels, cfg.model.width, cfg.model.stem
    )
    backbone.load_state_dict(spec["backbone"])
    weight = spec["head"]["weight"]
    head = nn.Linear(weight.shape[1], weight.shape[0])
    head.load_state_dict(spec["head"])
    target = torch.device(device)
    return Primitive(
        backbone=backbone.to(target).eval(),
        head=head.to(target).eval(),
        image_size=cfg.data.image_size,
        channels=cfg.data.channels,
        classes=weight.shape[0],
        device=target,
    )
