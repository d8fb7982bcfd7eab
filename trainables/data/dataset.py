"""From `DataConfig` to in-memory train/val/test tensors.

FER-sized datasets fit in memory (and on a GPU), so images are decoded to uint8
tensors once and batches are plain index lookups: the training step never waits for
a loader. `data.source` is a local prepared folder or an `s3://` URI, read through the
node cache (see `prepared.read_prepared`). Splits come from the dataset's `split` column
where it has one; otherwise (or for a missing validation split) they are seeded and
stratified by class, and identity-disjoint when the card says `split_groups: identity`
(what `prepare` writes for sources with identities and no official split, e.g. CK+, KDEF).

Unlabelled datasets (card `labelled: false`, e.g. `hmtl data prepare imagefolder --unlabelled`)
read with expression -1 on every row; their splits are drawn uniformly (one "class"). Rows whose
labels `label_fraction` withholds come back as `Splits.unlabelled`, expression set to -1 so no
supervised loss can use them by mistake (cross-entropy refuses -1).

Distributed training: `train.py` draws one global permutation per epoch and gives rank r
the rows `perm[r::world_size]` (truncated to equal length), so every rank holds the whole
dataset and sees a disjoint, freshly shuffled share each epoch. `shard()` is the fixed
equivalent for code that wants each rank to keep only its own rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from hmtl.trainables.config import DataConfig
from hmtl.trainables.data.cache import DATASETS
from hmtl.trainables.data.extra import with_extra_sources
from hmtl.trainables.data.faces import FaceData, to_channels
from hmtl.trainables.data.prepared import (
    EXPRESSIONS,
    DatasetError,
    Prepared,
    find_prepared,
    write_prepared,
)
from hmtl.trainables.data.storage import is_remote
from hmtl.trainables.data.synthetic import render_faces


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
    labelled: bool = True
    """False for a dataset without labels (only pre-training runs can use it)."""


@dataclass
class Splits:
    train: FaceData
    val: FaceData
    test: FaceData
    info: DatasetInfo
    unlabelled: FaceData | None = None
    """Training rows whose labels `label_fraction` withholds (expression -1), if any."""
    aux_images: torch.Tensor | None = None
    """With withheld rows: the training rows' images then theirs, one tensor, of which
    `train.images` and `unlabelled.images` are views (the pool the auxiliaries draw from,
    held once rather than copied again for them)."""


def synthetic_name(cfg: DataConfig) -> str:
    s = cfg.synthetic
    return (
        f"synthetic-n{s.num_samples}-{cfg.image_size}px-{cfg.channels}ch"
        f"-seed{s.seed}-id{s.num_identities}"
    )


def ensure_synthetic(cfg: DataConfig, chunk: int = 2048) -> Path:
    """The prepared synthetic dataset for this config, generated on first use."""

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


def resolve_source(cfg: DataConfig) -> Path | str:
    """The prepared dataset to read: a local folder, or an `s3://` URI (read via the cache)."""
    if cfg.source == "synthetic":
        return ensure_synthetic(cfg)
    if is_remote(cfg.source):
        return cfg.source
    path = Path(cfg.source)
    if not path.exists():
        raise DatasetError(f"data.source: {cfg.source}: no such dataset folder")
    return path


def refuse_unlabelled(cfg: DataConfig, main_tasks: list[str], labelled: bool | None = None) -> None:
    """Raise a one-line DatasetError when main tasks meet a dataset without labels.

    `labelled` is what a loaded dataset said; without it, a local prepared folder's card is
    read (so the CLI can refuse before a run folder exists); other sources pass here."""
    if not main_tasks:
        return
    if labelled is None:
        card = Path(cfg.source) / "card.json"
        if cfg.source == "synthetic" or is_remote(cfg.source) or not card.is_file():
            return
        try:
            labelled = json.loads(card.read_text()).get("labelled", True)
        except (OSError, ValueError):
            return  # reading the dataset reports a damaged card properly
    if not labelled:
        raise DatasetError(
            f"{cfg.source}: an unlabelled dataset cannot train a main task "
            f"({', '.join(main_tasks)}); set tasks.main.<task>: null to pre-train"
        )


def load_splits(cfg: DataConfig) -> Splits:
    """Read the configured dataset and cut it into train/val/test `FaceData`."""
    prepared = DATASETS.read(resolve_source(cfg))  # decoded once per process (read-only)
    keep = prepared.labels["expression"] < cfg.classes
    split = assign_splits(prepared, cfg)

    def take(name: str) -> FaceData:
        # Fancy indexing copies: each split owns its tensors, the cached arrays stay as read.
        idx = np.flatnonzero((split == name) & keep)
        images = torch.from_numpy(prepared.images[idx]).permute(0, 3, 1, 2)
        labels = {k: torch.from_numpy(v[idx]) for k, v in prepared.labels.items()}
        labels["expression"] = labels["expression"].long()
        return FaceData(to_channels(images, cfg.channels).contiguous(), labels)

    train = with_extra_sources(take("train"), cfg, prepared.card)  # + data.extra_sources rows
    if len(train) == 0:
        raise DatasetError(f"{cfg.source}: the training split is empty")
    known = train.labels["expression"][train.labels["expression"] >= 0]
    counts = torch.bincount(known, minlength=cfg.classes)
    info = DatasetInfo(
        classes=EXPRESSIONS[: cfg.classes],
        class_counts=tuple(int(c) for c in counts),
        optional_labels=tuple(prepared.card.get("optional_labels", ())),
        fingerprint=prepared.card["fingerprint"],
        source=cfg.source,
        card=prepared.card,
        labelled=bool(prepared.card.get("labelled", True)),
    )
    unlabelled = take("unlabelled") if cfg.label_fraction < 1 and cfg.unlabelled_to_aux else None
    both = None
    if unlabelled is not None:
        unlabelled.labels["expression"].fill_(-1)  # withheld: no supervised loss may read them
        both = torch.cat([train.images, unlabelled.images])
        train = FaceData(both[: len(train)], train.labels)
        unlabelled = FaceData(both[len(train) :], unlabelled.labels)
    return Splits(train, take("val"), take("test"), info, unlabelled, both)


def assign_splits(prepared: Prepared, cfg: DataConfig) -> np.ndarray:
    """Per-row split names: the dataset's own where present, else seeded and stratified.

    Drawn splits move whole identities when the card says `split_groups: identity`, so no
    person is in two of train/val/test. `label_fraction` < 1 keeps a stratified share of
    the training rows and marks the rest `unlabelled`.
    """
    y = prepared.labels["expression"].astype(np.int64)
    rng = np.random.default_rng(cfg.split_seed)
    groups = None
    if prepared.card.get("split_groups") == "identity" and "identity" in prepared.labels:
        groups = prepared.labels["identity"].astype(np.int64)
    carve = _carve if groups is None else partial(_carve_groups, groups=groups)
    if prepared.split is not None:
        split = prepared.split.astype(object).copy()
        split[split == None] = "train"  # noqa: E711 - rows the source left unassigned
        if not (split == "val").any():
            carve(split, y, rng, "train", {"val": cfg.val_fraction})
    else:
        split = np.full(len(y), "train", dtype=object)
        carve(split, y, rng, "train", {"val": cfg.val_fraction, "test": cfg.test_fraction})
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


def _carve_groups(
    split: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    source: str,
    shares: dict[str, float],
    groups: np.ndarray,
) -> None:
    """Move whole groups (identities) of the `source` rows to the named splits.

    Stratified approximately: groups are placed largest first (seeded order among equal
    sizes), each into the split whose per-class quota is least filled for the classes
    the group holds. Rows without an identity (-1) are groups of their own.
    """
    rows = np.flatnonzero(split == source)
    shares = {name: share for name, share in shares.items() if share > 0}
    if len(rows) == 0 or not shares:
        return
    ids = groups[rows]
    ids = np.where(ids < 0, -1 - np.arange(len(ids)), ids)  # unlabelled rows stand alone
    _, group_of = np.unique(ids, return_inverse=True)
    _, cls_of = np.unique(y[rows], return_inverse=True)
    holds = np.zeros((group_of.max() + 1, cls_of.max() + 1))
    np.add.at(holds, (group_of, cls_of), 1)
    names = [source, *shares]
    fractions = np.array([1.0 - sum(shares.values()), *shares.values()])
    quota = np.outer(fractions, holds.sum(0))
    filled = np.zeros_like(quota)
    sizes = holds.sum(1)
    order = rng.permutation(len(holds))
    order = order[np.argsort(-sizes[order], kind="stable")]
    chosen = np.zeros(len(holds), np.int64)
    for g in order:
        need = (quota - filled) / np.maximum(quota, 1.0)  # share of each quota still open
        best = int(np.argmax(need @ holds[g]))
        filled[best] += holds[g]
        chosen[g] = best
    split[rows] = np.array(names, dtype=object)[chosen[group_of]]
