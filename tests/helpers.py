"""Helpers shared by the unit tests: a dataset description, synthetic faces, and the
"loss falls when an auxiliary task trains alone" loop.

Imported as `from helpers import ...`: `tests/` has no `__init__.py`, so pytest's default
("prepend") import mode puts it on `sys.path` when it loads `tests/conftest.py`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from trainables.augment import normalize
from trainables.data.dataset import DatasetInfo
from trainables.data.synthetic import render_faces
from trainables.models import build_backbone
from trainables.tasks import AuxBatch

FACE_INFO = DatasetInfo(
    classes=("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt"),
    class_counts=(1,) * 8,
    optional_labels=("gender", "identity", "pitch", "roll", "yaw"),
    fingerprint="test",
    source="test",
)
"""Eight expressions and every optional label: auxiliary tasks ignore the labels."""


@functools.cache
def faces(n: int) -> torch.Tensor:
    """`n` synthetic 48 px grey faces (seed 0) as a uint8 (n, 1, 48, 48) batch."""
    images = render_faces(n, size=48, channels=1, seed=0).images
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def clean_aux(clean: torch.Tensor, seed: int = 0) -> AuxBatch:
    """An `AuxBatch` for tasks that read only the clean [0, 1] batch (raw is its uint8 form)."""
    raw = (clean * 255).round().to(torch.uint8)
    generator = torch.Generator().manual_seed(seed)
    return AuxBatch(
        raw=raw, clean=clean, generator=generator, magnitude=1.0, out_size=clean.shape[-1]
    )


def small_cnn() -> nn.Module:
    """The 8-wide grey small CNN, initialised after `torch.manual_seed(0)`."""
    torch.manual_seed(0)
    return build_backbone("small_cnn", 1, width=8)


def train_aux_alone(
    task: nn.Module,
    backbone: nn.Module,
    raw: torch.Tensor,
    clean: torch.Tensor | Callable[[torch.Generator], torch.Tensor],
    *,
    steps: int,
    lr: float,
    seed: int = 0,
) -> list[float]:
    """Train `backbone` and `task` on the task's loss alone (AdamW at `lr`) for `steps` steps.

    Every step the task makes its input from `raw` and `clean` (or, if `clean` is a function,
    what it returns for the step's generator) at the size of `raw`; one generator, seeded with
    `seed`, serves the whole run. Returns the loss of every step, in order.
    """
    opt = torch.optim.AdamW([*backbone.parameters(), *task.parameters()], lr=lr)
    generator, losses = torch.Generator().manual_seed(seed), []
    for _ in range(steps):
        step_clean = clean(generator) if callable(clean) else clean
        aux = AuxBatch(raw, step_clean, generator, 1.0, raw.shape[-1])
        images, targets = task.make_input(aux)
        feature_map = backbone.forward_features(normalize(images))
        pooled = F.adaptive_avg_pool2d(feature_map, 1).flatten(1)
        loss = task.loss(pooled, feature_map, targets, images)[task.name]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
