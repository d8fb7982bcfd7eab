"""`FaceModel`: one backbone shared by the task heads.

The losses are computed inside `forward`, so a data-parallel wrapper sees every
head's parameters in its forward pass and all-reduces their gradients too.

Auxiliary tasks make their own inputs (shuffled tiles, rotated or masked images, two
views) from disjoint slices of the batch whose sizes follow `tasks.aux_budget`.
Inputs go through the backbone one pass each by default; `one_pass` concatenates them
into one batched forward instead (`benchmarks/aux_cost.py` compares the two: on CPU
separate passes were faster).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hmtl.trainables.augment import normalize
from hmtl.trainables.tasks import AuxBatch


class FaceModel(nn.Module):
    def __init__(
        self,
        backbone: nn.Module,
        tasks: nn.ModuleDict,
        one_pass: bool = False,
        channels_last: bool = False,
        aux_budget: float = 1.0,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.tasks = tasks
        self.one_pass = one_pass
        self.channels_last = channels_last
        self.aux_budget = aux_budget
        self.train_features: Callable[[torch.Tensor], torch.Tensor] | None = None
        """What training passes use instead of `backbone.forward_features` when set: the
        compiled forward of `runtime.compile` (evaluation stays eager)."""

    def main_tasks(self) -> dict[str, nn.Module]:
        return {name: task for name, task in self.tasks.items() if task.kind == "main"}

    def aux_tasks(self) -> dict[str, nn.Module]:
        return {name: task for name, task in self.tasks.items() if task.kind == "aux"}

    def forward(
        self, images: torch.Tensor, batch: dict[str, torch.Tensor], aux: AuxBatch | None = None
    ) -> dict[str, torch.Tensor]:
        """Named, unweighted losses of every enabled task on this batch.

        `images` are the augmented training images in [0, 1]; `aux` is required when
        auxiliary tasks are enabled.
        """
        made = [task.make_input(part) for task, part in self._share(aux)]
        # A pre-training run (no main task) does not pass the batch itself through.
        main = [self._prepare(images)] if self.main_tasks() else []
        inputs = main + [self._prepare(x) for x, _ in made]
        maps = self._features(inputs)
        pooled = [pool_features(m) for m in maps]
        losses: dict[str, torch.Tensor] = {}
        for task in self.main_tasks().values():
            losses.update(task.loss(pooled[0], batch))
        skip = len(main)
        for task, (_, targets), x, f, m in zip(
            self.aux_tasks().values(), made, inputs[skip:], pooled[skip:], maps[skip:], strict=True
        ):
            losses.update(task.loss(f, m, targets, x))
        return losses

    def _share(self, aux: AuxBatch | None) -> list[tuple[nn.Module, AuxBatch]]:
        """Each auxiliary's slice of the batch: budget x N inputs split evenly, disjoint."""
        tasks = list(self.aux_tasks().values())
        if not tasks:
            return []
        n = len(aux.raw)
        per_task = self.aux_budget * n / len(tasks)
        shares, start = [], 0
        for task in tasks:
            count = max(2, min(n, round(per_task / getattr(task, "views", 1))))
            rows = torch.arange(start, start + count, device=aux.raw.device) % n
            start = (start + count) % n
            shares.append(
                (
                    task,
                    AuxBatch(
                        aux.raw[rows], aux.clean[rows], aux.generator, aux.magnitude, aux.out_size
                    ),
                )
            )
        return shares

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        x = normalize(images)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _features(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Feature maps of every input: one batched backbone pass, or one pass each."""
        features = self.backbone.forward_features
        if self.training and self.train_features is not None:
            features = self.train_features
        if self.one_pass and len(inputs) > 1:
            sizes = [len(x) for x in inputs]
            return list(features(torch.cat(inputs)).split(sizes))
        return [features(x) for x in inputs]

    @torch.no_grad()
    def eval_stats(
        self, images: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Summable evaluation statistics of each main task on clean images in [0, 1]."""
        features = pool_features(self.backbone.forward_features(self._prepare(images)))
        return {name: task.eval_stats(features, batch) for name, task in self.main_tasks().items()}


def pool_features(feature_map: torch.Tensor) -> torch.Tensor:
    return torch.flatten(F.adaptive_avg_pool2d(feature_map, 1), 1)
