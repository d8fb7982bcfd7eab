"""What a task is: the batch an auxiliary builds its input from, and the spec each task
file exports (`SPEC`: its name, main or aux, and the builder of its module). The
protocol itself is described in this package's `__init__`, beside the registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from hmtl.trainables.config import TrainConfig
from hmtl.trainables.data.dataset import DatasetInfo


@dataclass(frozen=True)
class AuxBatch:
    """What an auxiliary task may build its input from, for one training step."""

    raw: torch.Tensor
    """The batch as stored: uint8 (N, C, H, W), for tasks that augment views themselves."""
    clean: torch.Tensor
    """The batch after the configured augmentation, float in [0, 1], (N, C, S, S)."""
    generator: torch.Generator
    """CPU generator of this step: draw every random choice from it (exact resume)."""
    magnitude: float
    out_size: int


TaskBuilder = Callable[[TrainConfig, DatasetInfo, int], nn.Module]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: Literal["main", "aux"]
    build: TaskBuilder
