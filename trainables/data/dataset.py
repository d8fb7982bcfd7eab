"""From `DataConfig` to in-memory train/val/test tensors.

FER-sized datasets fit in memory (and on a GPU), so images are decoded to uint8
tensors once and batches are plain index lookups: the training step never waits for
a loader. Splits come from the dataset's `split` column where it has one; otherwise
(or for a missing validation split) they are seeded and stratified by class.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from trainables.config import DataConfig
from trainables.data.prepared import (
    EXPRESSIONS,
    DatasetError,
    Prepared,
    find_prepared,
    read_prepared,
    write_prepared,
)


@dataclass(frozen=True)
class DatasetInfo:
    """What tasks need to know about the data to size heads and weight losses."""

    classes: tuple[str, ...]
    class_counts: tuple[int, ...]
    """Training-split count per class, in `classes` order."""
    optional_labels: tuple[str, ...]
    fingerprint: str
    source: str
    card: dict = field(default_factory=dict, compare=False, hash=False)
    """The dataset's card.json (saved beside every checkpoint)."""


@dataclass
class FaceData:
    """Images (N, C, H, W) uint8 and per-row labels, all as tensors on one device."""

    images: torch.Tensor
    labels: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {name: values[index] for name, values in self.labels.items()}
        out["image"] = self.images[index]
        return out

    def to(self, device: torch.device) -> FaceData:
        return FaceData(self.images.to(device), {k: v.to(device) for k, v in self.labels.items()})


@dataclass
class Splits:
    train: FaceData
    val: FaceData
    test: FaceData
    info: DatasetInfo


def synthetic_name(cfg: DataConfig) -> str:
    s = cfg.synthetic
    return (
        f"synthetic-n{s.num_samples}-{cfg.image_size}px-{cfg.channels}ch"
        f"-seed{s.seed}-id{s.num_identities}"
    )


def ensure_synthetic(cfg: DataConfig, chunk: int = 2048) -> Path:
    """The prepared synthetic dataset for this config, generated on first use."""
    from trainables.data.synthetic import render_faces

    name = synthetic_name(cfg)
    found = find_prepared(cfg.cache_dir, name)
    if found is not None:
        return found
    s = cfg.synthetic
    parts = [
        render_faces(
            min(chunk, s.num_samples - start),
            size=cfg.image_size,
            channels=cfg.channels,
            seed=s.seed,
            num_identities=s.num_identities,
            start=start,
        )
        for start in range(0, s.num_samples, chunk)
    ]
    labels = {
        key: np.concatenate([getattr(p, key) for p in parts])
        for key in ("expression", "yaw", "pitch", "roll", "gender", "identity")
    }
    images = np.concatenate([p.images for p in parts])
    return write_prepared(cfg.cache_dir, name, "synthetic", images, labels)


def resolve_source(cfg: DataConfig) -> Path:
    if cfg.source == "synthetic":
        return ensure_synthetic(cfg)
    path = Path(cfg.source)
    if not path.exists():
        raise DatasetError(f"data.source: {cfg.source}: no such dataset folder")
    return path


def load_splits(cfg: DataConfig) -> Splits:
    """Read the configured dataset and cut it into train/val/test `FaceData`."""
    prepared = read_prepared(resolve_source(cfg))
    keep = prepared.labels["expression"] < cfg.classes
    split = assign_splits(prepared, cfg)
    images = _to_channels(torch.from_numpy(prepared.images).permute(0, 3, 1, 2), cfg.channels)
    labels = {k: torch.from_numpy(np.array(v)) for k, v in prepared.labels.items()}
    labels["expression"] = labels["expression"].long()

    def take(name: str) -> FaceData:
        idx = torch.from_numpy(np.flatnonzero((split == name) & keep))
        return FaceData(images[idx].contiguous(), {k: v[idx] for k, v in labels.items()})

    train = take("train")
    if len(train) == 0:
        raise DatasetError(f"{cfg.source}: the training split is empty")
    counts = torch.bincount(train.labels["expression"], minlength=cfg.classes)
    info = DatasetInfo(
        classes=EXPRESSIONS[: cfg.classes],
        class_counts=tuple(int(c) for c in counts),
        optional_labels=tuple(prepared.card.get("optional_labels", ())),
        fingerprint=prepared.card["fingerprint"],
        source=cfg.source,
        card=prepared.card,
    )
    return Splits(train=train, val=take("val"), test=take("test"), info=info)


def assign_splits(prepared: Prepared, cfg: DataConfig) -> np.ndarray:
    """Per-row split names: the dataset's own where present, else seeded and stratified.

    `label_fraction` < 1 keeps a stratified share of the training rows and marks the
    rest `unlabelled`.
    """
    y = prepared.labels["expression"].astype(np.int64)
    rng = np.random.default_rng(cfg.split_seed)
    if prepared.split is not None:
        split = prepared.split.astype(object).copy()
        if not (split == "val").any():
            _carve(split, y, rng, "train", {"val": cfg.val_fraction})
    else:
        split = np.full(len(y), "train", dtype=object)
        _carve(split, y, rng, "train", {"val": cfg.val_fraction, "test": cfg.test_fraction})
    if cfg.label_fraction < 1.0:
        _carve(split, y, rng, "train", {"unlabelled": 1.0 - cfg.label_fraction})
    return split


def _carve(
    split: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    source: str,
    shares: dict[str, float],
) -> None:
    """Move a seeded, per-class share of the `source` rows to each named split."""
    for cls in np.unique(y):
        rows = np.flatnonzero((split == source) & (y == cls))
        rows = rows[rng.permutation(len(rows))]
        start = 0
        for name, share in shares.items():
            count = round(share * len(rows))
            split[rows[start : start + count]] = name
            start += count


def _to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey to RGB by repetition, RGB to grey by ITU-R 601 luma."""
    have = images.shape[1]
    if have == channels:
        return images
    if channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images.float() * luma).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
