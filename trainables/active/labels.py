"""The labelled map and the draws that fill it.

`labelled_map[i]` is the cycle in which training row i was labelled, -1 while it is in the
pool (baal's `labelled_map`). It is the whole labelling state: the labelled set of cycle c
is `labelled_map in [0, c]`, so it goes into every cycle's checkpoint and artifact.
"""

from __future__ import annotations

import numpy as np

UNLABELLED = -1


def sizes(pool: int, initial_fraction: float, budget_fraction: float) -> tuple[int, int]:
    """(initial rows, rows per acquisition) as shares of the training pool, at least 1 each."""
    return max(1, round(initial_fraction * pool)), max(1, round(budget_fraction * pool))


def initial_draw(
    labels: np.ndarray, count: int, how: str, generator: np.random.Generator
) -> np.ndarray:
    """Sorted row indices of the initial labelled set: `count` rows, uniform or stratified.

    Stratified gives each class its share of `count` (largest remainders get the rest), so
    rare expressions are not missing from the first cycle by chance.
    """
    n = len(labels)
    if how == "uniform":
        return np.sort(generator.choice(n, size=count, replace=False))
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * count / n
    take = np.floor(exact).astype(int)
    extra = np.argsort(-(exact - take), kind="stable")[: count - take.sum()]
    take[extra] += 1
    chosen = [
        generator.choice(np.flatnonzero(labels == cls), size=k, replace=False)
        for cls, k in zip(classes, take, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


def labelled_rows(labelled_map: np.ndarray) -> np.ndarray:
    return np.flatnonzero(labelled_map != UNLABELLED)


def pool_rows(labelled_map: np.ndarray) -> np.ndarray:
    return np.flatnonzero(labelled_map == UNLABELLED)


def mark(labelled_map: np.ndarray, rows: np.ndarray, cycle: int) -> None:
    """Label `rows` in `cycle`, refusing a row chosen twice or one already labelled."""
    if len(np.unique(rows)) != len(rows):
        raise ValueError("a strategy selected the same row twice")
    if (labelled_map[rows] != UNLABELLED).any():
        raise ValueError("a strategy selected a row that is already labelled")
    labelled_map[rows] = cycle
