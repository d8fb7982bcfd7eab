"""Class prototypes from labelled embeddings: the class mean, or k spherical k-means centres."""

from __future__ import annotations

import numpy as np


def class_prototypes(
    embeddings: np.ndarray, labels: np.ndarray, num_classes: int, k: int = 1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(prototypes (P, D) unit vectors, their classes (P,)) from unit-norm `embeddings`.

    Each class present in `labels` gets min(k, its row count) prototypes; a class without
    rows gets none, so no pool face can be labelled with it.
    """
    protos, owners = [], []
    for cls in range(num_classes):
        rows = embeddings[labels == cls]
        if len(rows) == 0:
            continue
        centres = (
            _normalise(rows.mean(0, keepdims=True))
            if k == 1
            else spherical_kmeans(rows, min(k, len(rows)), seed)
        )
        protos.append(centres)
        owners += [cls] * len(centres)
    if not protos:
        raise ValueError("no labelled rows: prototypes need at least one class")
    return np.concatenate(protos).astype(np.float32), np.asarray(owners, np.int64)


def spherical_kmeans(x: np.ndarray, k: int, seed: int = 0, iters: int = 25) -> np.ndarray:
    """k unit centres of unit-norm rows `x` by cosine k-means (k-means++ seeding, seeded)."""
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        # k-means++: the next seed far (in cosine) from the ones chosen.
        gap = 1.0 - (x @ np.stack(centres).T).max(1)
        p = np.clip(gap, 0, None)
        index = rng.choice(len(x), p=p / p.sum()) if p.sum() > 0 else rng.integers(len(x))
        centres.append(x[index])
    c = np.stack(centres)
    for _ in range(iters):
        assign = (x @ c.T).argmax(1)
        new = np.stack([x[assign == j].sum(0) if (assign == j).any() else c[j] for j in range(k)])
        new = _normalise(new)
        if np.allclose(new, c):
            break
        c = new
    return c


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
