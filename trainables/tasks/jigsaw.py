"""Jigsaw puzzles: shuffle the tiles of an n x n grid and predict the original order.

Two forms (`tasks.aux.jigsaw.form`):
- hmtl (default, the HMTL paper's): every sample gets a fresh uniform permutation, and
  for every grid position a head predicts which original tile now sits there. The n*n
  heads of n*n classes on the pooled feature are one Linear(D, n^4) whose output is
  reshaped to (M, n*n, n*n): the same parameters and outputs as separate heads, in one
  matmul. Target (M, n*n): target[m, p] = original index of the tile at position p.
- classic (Noroozi & Favaro, 2016): one head over a fixed set of K permutations picked
  for large Hamming distance; each sample gets a random member, the target is its
  index (M,). A 2 x 2 grid has only 4! = 24 permutations, so K is clamped to 24 there.

Only whole tiles are shuffled (see `tiles`), so undoing the permutation restores the
input exactly; no gaps or jitter between tiles.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hmtl.trainables.config import TrainConfig
from hmtl.trainables.data.dataset import DatasetInfo
from hmtl.trainables.runtime.transfer import upload
from hmtl.trainables.tasks.base import AuxBatch, TaskSpec
from hmtl.trainables.tasks.tiles import from_tiles, permute_tiles, random_permutations, to_tiles


class JigsawTask(nn.Module):
    name = "jigsaw"
    kind = "aux"

    def __init__(
        self,
        feature_dim: int,
        grid: int = 3,
        form: str = "hmtl",
        permutations: int = 100,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.grid, self.positions, self.form = grid, grid * grid, form
        if form == "classic":
            chosen = hamming_permutations(self.positions, permutations, seed)
            self.register_buffer("permutation_set", chosen, persistent=False)
            outputs = len(chosen)
        elif form == "hmtl":
            outputs = self.positions * self.positions
        else:
            raise ValueError(f"jigsaw form must be 'hmtl' or 'classic', got {form!r}")
        self.head = nn.Linear(feature_dim, outputs)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits: (M, n*n, n*n) per position (hmtl) or (M, K) over the set (classic)."""
        logits = self.head(features)
        return logits.view(len(features), self.positions, -1) if self.form == "hmtl" else logits

    def make_input(self, aux: AuxBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The clean batch with its tiles shuffled, and the target that names the shuffle."""
        clean = aux.clean
        if self.form == "hmtl":
            perm = upload(
                random_permutations(len(clean), self.positions, aux.generator), clean.device
            )
            target = perm
        else:
            index = torch.randint(len(self.permutation_set), (len(clean),), generator=aux.generator)
            target = upload(index, clean.device)
            perm = self.permutation_set[target]
        tiles = permute_tiles(to_tiles(clean, self.grid), perm)
        return from_tiles(tiles, clean), {self.name: target}

    def loss(
        self,
        features: torch.Tensor,
        feature_map: torch.Tensor,
        targets: dict[str, torch.Tensor],
        images: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Cross-entropy, averaged over samples and (hmtl) grid positions."""
        logits = self(features).float()
        target = targets[self.name]
        return {self.name: F.cross_entropy(logits.flatten(0, -2), target.flatten())}

    @torch.no_grad()
    def metrics(self, features: torch.Tensor, targets: dict[str, torch.Tensor]) -> dict[str, float]:
        """Share of positions (hmtl) or puzzles (classic) whose answer is right."""
        pred = self(features).argmax(dim=-1)
        return {"accuracy": (pred == targets[self.name]).float().mean().item()}


def hamming_permutations(length: int, count: int, seed: int) -> torch.Tensor:
    """min(count, length!) permutations of range(length) chosen greedily for distance.

    Farthest-point selection: start from a random permutation, then repeatedly add the one
    whose smallest Hamming distance to those chosen is largest. Noroozi & Favaro's
    Algorithm 1 scores candidates by their summed distance instead; max-min directly
    maximises the minimum pairwise distance, which is what makes puzzles unambiguous.
    Candidates are shuffled by `seed` first, so ties break randomly but reproducibly.
    Returns a (K, length) int64 tensor.
    """
    return torch.from_numpy(_greedy_max_min(length, count, seed)).long()


@functools.lru_cache(maxsize=8)
def _greedy_max_min(length: int, count: int, seed: int) -> np.ndarray:
    total = math.factorial(length)
    flat = itertools.chain.from_iterable(itertools.permutations(range(length)))
    candidates = np.fromiter(flat, dtype=np.int8, count=total * length).reshape(total, length)
    candidates = candidates[np.random.default_rng(seed).permutation(total)]
    columns = np.ascontiguousarray(candidates.T)  # one compare per position: fast on 9! rows
    nearest = np.full(total, length + 1, dtype=np.int8)
    chosen = [0]
    for _ in range(min(count, total) - 1):
        last = candidates[chosen[-1]]
        distance = sum((columns[j] != last[j]).astype(np.int8) for j in range(length))
        np.minimum(nearest, distance, out=nearest)
        chosen.append(int(nearest.argmax()))
    return candidates[chosen]


def min_hamming(perms: torch.Tensor) -> int:
    """Smallest Hamming distance between two distinct rows of perms (K, length)."""
    distance = (perms[:, None, :] != perms[None, :, :]).sum(dim=-1)
    distance.fill_diagonal_(perms.shape[1] + 1)
    return int(distance.min())


def build(cfg: TrainConfig, info: DatasetInfo, feature_dim: int) -> JigsawTask:
    c = cfg.tasks.aux.jigsaw
    return JigsawTask(feature_dim, c.grid, c.form, c.permutations, c.seed)


SPEC = TaskSpec("jigsaw", "aux", build)
