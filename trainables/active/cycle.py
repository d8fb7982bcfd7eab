"""The session one cycle's `train()` runs in: its starting weights and when to stop.

`train()` builds a fresh model every call; `prepare_model` is the one place it hands that
model to its session before the optimizer exists, so this is where a cycle's starting
weights (the snapshot, or the previous cycle's) are loaded. It never offers a checkpoint to
resume from (a cycle always trains from its start; the loop resumes whole cycles).

ActiveFER's epoch rule stops at a training accuracy of 0.999 or when the accuracy stops
improving. `train()` has no stopping hook, so `report` raises `StopCycle`. The accuracy is
measured on the clean labelled images after each epoch (ActiveFER averages over the
augmented batches during the epoch: ours is one extra forward pass per epoch).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


class StopCycle(Exception):
    """Raised from `report` to end a cycle's training early (ActiveFER's rule)."""


def digest(state: dict[str, torch.Tensor]) -> str:
    """A short hash of a state dict's tensors (which weights a cycle started from or ended at)."""
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return h.hexdigest()[:16]


def plateaued(accuracies: list[float], window: int, delta: float) -> bool:
    """True when, over the last `window` epochs, no epoch beats an earlier one by >= delta."""
    if len(accuracies) < window:
        return False
    last = accuracies[-window:]
    return all(last[j] - min(last[:j]) < delta for j in range(1, window))


class CycleSession:
    """A single-process session for one cycle's training (no checkpoints kept)."""

    def __init__(
        self, device: torch.device, start: dict[str, torch.Tensor] | None, keep_start: bool = False
    ) -> None:
        """`start`: weights to load into the fresh model (None keeps train()'s own init);
        `keep_start`: keep a CPU copy of the weights training starts from (`start_weights`)."""
        self.rank, self.world_size, self.device = 0, 1, device
        self.start = start
        self.keep_start = keep_start
        self.start_weights: dict[str, torch.Tensor] | None = None
        self.train_accuracy: Callable[[nn.Module], float] | None = None
        self.model: nn.Module | None = None
        self.start_digest = ""
        self.epochs = 0
        self.accuracies: list[float] = []

    def stop_when(
        self,
        train_accuracy: Callable[[nn.Module], float],
        accuracy: float = 0.999,
        window: int = 10,
        delta: float = 0.001,
    ) -> None:
        """Switch on ActiveFER's rule: stop at `accuracy` or on a plateau of the measure."""
        self.train_accuracy = train_accuracy
        self.stop_accuracy, self.window, self.delta = accuracy, window, delta

    def prepare_model(self, model: nn.Module) -> nn.Module:
        if self.start is not None:
            model.load_state_dict(self.start)
        self.model = model
        weights = model.state_dict()
        self.start_digest = digest(weights)
        if self.keep_start:
            self.start_weights = {k: v.detach().cpu().clone() for k, v in weights.items()}
        return model

    def latest_checkpoint(self) -> str | None:
        return None

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        self.epochs = int(metrics["epoch"])
        if self.train_accuracy is None:
            return
        accuracy = self.train_accuracy(self.model)
        self.accuracies.append(accuracy)
        if accuracy >= self.stop_accuracy or plateaued(self.accuracies, self.window, self.delta):
            raise StopCycle
