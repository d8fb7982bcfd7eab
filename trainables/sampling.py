"""Which training rows each step of an epoch reads: the main batch and the auxiliaries' batch.

Every epoch draws one global permutation of the rows it passes over from a generator seeded
by (seed, epoch), so every rank agrees on it and a resumed run replays it; rank r takes
`perm[r::world_size]`, truncated so every rank runs the same number of steps.

Semi-supervised HMTL: when the auxiliaries have a pool larger than the labelled rows (labelled
rows first, then the label-withheld ones), a second permutation of the pool, drawn after the
first from the same generator, gives each step's auxiliary rows: as many as the main batch,
without replacement within the epoch. Pool indices >= the labelled count are withheld rows;
main indices never reach them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class EpochRows:
    main: torch.Tensor
    """(steps, batch) row indices of this rank's main batches, into the epoch's rows."""
    aux: torch.Tensor | None
    """(steps, batch) row indices into the auxiliary pool, or None: the main batch serves."""

    def to(self, device: torch.device) -> EpochRows:
        """The same rows on `device` (where the rows they index live): one copy per epoch
        rather than one per step."""
        aux = self.aux.to(device) if self.aux is not None else None
        return EpochRows(self.main.to(device), aux)


def epoch_rows(
    num_rows: int,
    batch_size: int,
    generator: torch.Generator,
    rank: int = 0,
    world_size: int = 1,
    pool_size: int | None = None,
) -> EpochRows:
    """This rank's rows for one epoch of `num_rows // world_size // batch_size` steps.

    `pool_size` (> 0): also draw the auxiliaries' rows from a pool of that many rows."""
    per_rank = num_rows // world_size
    steps = per_rank // batch_size
    perm = torch.randperm(num_rows, generator=generator)
    mine = perm[rank : per_rank * world_size : world_size][: steps * batch_size]
    aux = None
    if pool_size:
        pool_perm = torch.randperm(pool_size, generator=generator)
        aux = _steps(pool_perm[rank::world_size], steps, batch_size)
    return EpochRows(mine.view(steps, batch_size), aux)


def _steps(rows: torch.Tensor, steps: int, batch_size: int) -> torch.Tensor:
    """`steps` batches from `rows`, wrapping around if a small pool runs out."""
    need = steps * batch_size
    if len(rows) < need:
        rows = rows.repeat(need // max(len(rows), 1) + 1)
    return rows[:need].view(steps, batch_size)
