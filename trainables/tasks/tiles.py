"""Grid helpers shared by the jigsaw and rotation tasks, vectorised over the batch.

An image (C, S, S) is cut into an n x n grid of square tiles of side t = S // n. When S is
not a multiple of n, the grid covers the centred (n*t)^2 region (the face is centred, so the
grid covers it symmetrically) and the border strip of at most n - 1 pixels stays untouched;
shuffling or turning tiles and undoing it therefore restores the image exactly.

Tiles are numbered row-major: position p = row * n + col. Per-sample choices (which tile
goes where, how far each tile turns) are index tensors, so no helper loops over samples.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hmtl.trainables.runtime.transfer import upload


def grid_box(size: int, n: int) -> tuple[int, int]:
    """(offset, side) of the centred square region an n x n grid of whole tiles covers."""
    if size < n:
        raise ValueError(f"image side {size} is smaller than the grid ({n})")
    side = n * (size // n)
    return (size - side) // 2, side


def to_tiles(images: Tensor, n: int) -> Tensor:
    """Cut images (N, C, S, S) into tiles (N, n*n, C, t, t), row-major."""
    num, channels, size = images.shape[0], images.shape[1], images.shape[-1]
    offset, side = grid_box(size, n)
    t = side // n
    region = images[..., offset : offset + side, offset : offset + side]
    grid = region.reshape(num, channels, n, t, n, t).permute(0, 2, 4, 1, 3, 5)
    return grid.reshape(num, n * n, channels, t, t)


def from_tiles(tiles: Tensor, images: Tensor) -> Tensor:
    """Paste tiles (N, n*n, C, t, t) back into a copy of images (N, C, S, S).

    `images` supplies the border outside the grid (untouched by the tiles); without a border
    the reassembled grid is returned as is.
    """
    num, positions, channels, t = tiles.shape[:4]
    n = round(positions**0.5)
    size = images.shape[-1]
    offset, side = grid_box(size, n)
    grid = tiles.reshape(num, n, n, channels, t, t).permute(0, 3, 1, 4, 2, 5)
    grid = grid.reshape(num, channels, side, side)
    if side == size:
        return grid.contiguous()
    out = images.clone()
    out[..., offset : offset + side, offset : offset + side] = grid
    return out


def permute_tiles(tiles: Tensor, perm: Tensor) -> Tensor:
    """out[m, p] = tiles[m, perm[m, p]]: a different tile order per sample.

    `perm` is a (N, n*n) integer tensor on the tiles' device; the inverse order is
    `perm.argsort(dim=1)`.
    """
    rows = torch.arange(tiles.shape[0], device=tiles.device).unsqueeze(1)
    return tiles[rows, perm]


def random_permutations(num: int, length: int, generator: torch.Generator) -> Tensor:
    """`num` independent uniform permutations of range(length), (num, length), on CPU.

    Argsort of i.i.d. uniform keys draws them all at once (ties have probability ~0).
    """
    return torch.rand(num, length, generator=generator).argsort(dim=1)


def rotate(x: Tensor, k: Tensor) -> Tensor:
    """Turn each square (C, t, t) item of x (..., C, t, t) by k·90° counter-clockwise.

    `k` has shape x.shape[:-3] with values in {0, 1, 2, 3}; the sense matches
    `torch.rot90(item, k, dims=(-2, -1))`, so turning by -k (or 4 - k) undoes it. A quarter
    turn is a transpose and a flip, so three per-item selects compose every k instead of
    computing all four rotations.
    """
    k = upload(k, x.device).reshape(*k.shape, 1, 1, 1)
    odd = k % 2 == 1
    x = torch.where(odd, x.transpose(-2, -1), x)
    x = torch.where((k == 1) | (k == 2), x.flip(-2), x)
    return torch.where(k >= 2, x.flip(-1), x)
