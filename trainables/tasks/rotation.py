"""Rotation prediction: turn images (or tiles) by k·90° and predict k.

Two forms (`tasks.aux.rotation.form`):
- whole (default, RotNet, Gidaris et al. 2018): each image turned by its own k, uniform in
  {0, 1, 2, 3}; one 4-way head. Target (M,).
- tiles (the HMTL paper's): every tile of the n x n grid turned by its own k; one 4-way
  head per tile, implemented as one Linear(D, n*n*4) reshaped to (M, n*n, 4) (the same
  parameters as separate heads, in one matmul). Target (M, n*n). Tiles are square, so a
  quarter turn keeps the image's layout; a border the grid does not cover stays as is.

k counts counter-clockwise quarter turns, as `torch.rot90(x, k, dims=(-2, -1))`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hmtl.trainables.config import TrainConfig
from hmtl.trainables.data.dataset import DatasetInfo
from hmtl.trainables.runtime.transfer import upload
from hmtl.trainables.tasks.base import AuxBatch, TaskSpec
from hmtl.trainables.tasks.tiles import from_tiles, rotate, to_tiles

TURNS = 4


class RotationTask(nn.Module):
    name = "rotation"
    kind = "aux"

    def __init__(self, feature_dim: int, form: str = "whole", grid: int = 3) -> None:
        super().__init__()
        if form not in ("whole", "tiles"):
            raise ValueError(f"rotation form must be 'whole' or 'tiles', got {form!r}")
        self.form, self.grid = form, grid
        self.positions = grid * grid if form == "tiles" else 1
        self.head = nn.Linear(feature_dim, self.positions * TURNS)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits: (M, 4) for whole images, (M, n*n, 4) for tiles."""
        logits = self.head(features)
        return logits.view(len(features), self.positions, TURNS) if self.form == "tiles" else logits

    def make_input(self, aux: AuxBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The clean batch turned per image (or per tile), and the turns as targets."""
        clean = aux.clean
        shape = (len(clean), self.positions) if self.form == "tiles" else (len(clean),)
        k = upload(torch.randint(TURNS, shape, generator=aux.generator), clean.device)
        if self.form == "whole":
            return rotate(clean, k), {self.name: k}
        return from_tiles(rotate(to_tiles(clean, self.grid), k), clean), {self.name: k}

    def loss(
        self,
        features: torch.Tensor,
        feature_map: torch.Tensor,
        targets: dict[str, torch.Tensor],
        images: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Cross-entropy, averaged over samples and (tiles) grid positions."""
        logits = self(features).float()
        target = targets[self.name]
        return {self.name: F.cross_entropy(logits.reshape(-1, TURNS), target.reshape(-1))}

    @torch.no_grad()
    def metrics(self, features: torch.Tensor, targets: dict[str, torch.Tensor]) -> dict[str, float]:
        """Share of images (whole) or tiles (tiles) whose turn is predicted right."""
        pred = self(features).argmax(dim=-1)
        return {"accuracy": (pred == targets[self.name]).float().mean().item()}


def build(cfg: TrainConfig, info: DatasetInfo, feature_dim: int) -> RotationTask:
    c = cfg.tasks.aux.rotation
    return RotationTask(feature_dim, c.form, c.grid)


SPEC = TaskSpec("rotation", "aux", build)
