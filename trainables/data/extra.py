"""`data.extra_sources`: more training rows, e.g. the pseudo-labelled faces `hmtl mine` published.

Extra rows join the training split only (their own `train` rows when they have a split
column, else all), never validation or test, so metrics stay those of the labelled set. Each
row carries a loss weight (`weight`: 1 for labelled rows, `data.extra_weight` for extra ones)
that the expression loss reads. Labels an extra source lacks are filled as missing (-1, NaN).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hmtl.trainables.config import DataConfig
from hmtl.trainables.data.cache import DATASETS
from hmtl.trainables.data.faces import FaceData, to_channels
from hmtl.trainables.data.prepared import DatasetError
from hmtl.trainables.data.storage import is_remote


def with_extra_sources(train, cfg: DataConfig, card: dict):
    """`train` (a FaceData) with every extra source's training rows appended and a `weight`
    label. The sources (uri, fingerprint, rows, weight) are recorded in `card` (the training
    dataset's own copy, saved beside checkpoints) as `extra_sources`."""
    if not cfg.extra_sources:
        return train
    # dataset.py imports this module.

    images, labels = [train.images], {k: [v] for k, v in train.labels.items()}
    weights = [torch.ones(len(train))]
    used = []
    for uri in cfg.extra_sources:
        if not is_remote(uri) and not Path(uri).exists():
            raise DatasetError(f"data.extra_sources: {uri}: no such dataset folder")
        extra = DATASETS.read(uri)
        y = extra.labels["expression"].astype(np.int64)
        rows = (y >= 0) & (y < cfg.classes)
        if extra.split is not None:
            rows &= extra.split == "train"
        idx = np.flatnonzero(rows)
        size = extra.images.shape[1]
        if size != train.images.shape[-1]:
            raise DatasetError(
                f"data.extra_sources: {uri}: {size} px images, the training data has "
                f"{train.images.shape[-1]} px"
            )
        images.append(
            to_channels(torch.from_numpy(extra.images[idx]).permute(0, 3, 1, 2), cfg.channels)
        )
        for name, values in labels.items():
            values.append(_column(extra.labels, name, idx, values[0]))
        weights.append(torch.full((len(idx),), float(cfg.extra_weight)))
        used.append(
            {
                "source": uri,
                "fingerprint": extra.card["fingerprint"],
                "rows": len(idx),
                "weight": cfg.extra_weight,
            }
        )
    merged = {name: torch.cat(values) for name, values in labels.items()}
    merged["weight"] = torch.cat(weights)
    card["extra_sources"] = used
    return FaceData(torch.cat(images).contiguous(), merged)


def _column(labels: dict, name: str, idx: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """An extra source's `name` label for rows `idx`, typed like the labelled one; missing
    labels are -1 (integers) or NaN (floats)."""
    if name in labels:
        return (
            torch.from_numpy(np.asarray(labels[name][idx]))
            .to(like.dtype)
            .reshape(len(idx), *like.shape[1:])
        )
    fill = float("nan") if like.is_floating_point() else -1
    return torch.full((len(idx), *like.shape[1:]), fill, dtype=like.dtype)
