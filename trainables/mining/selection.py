"""Selecting pool faces: thresholds, near-duplicate exclusion, per-class quotas, with counts.

Each filter is one small function over the scores and a keep-mask, looked up by name in
`FILTERS` and run in `settings.FILTER_ORDER`; `select` records the per-class counts after
every step, so the card shows where each class's faces went.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hmtl.trainables.mining.scoring import Scores
from hmtl.trainables.mining.settings import FILTER_ORDER, MiningSettings


@dataclass
class Selection:
    """The kept pool rows (ascending) and the per-class counts before and after each filter."""

    rows: np.ndarray
    counts: dict[str, list[int]] = field(default_factory=dict)
    """`pool` (every face by pseudo-label), then one entry per filter, in order."""


Filter = Callable[[Scores, np.ndarray, MiningSettings, np.ndarray | None], np.ndarray]


def _min_similarity(s, keep, cfg, dup):
    return keep if cfg.min_similarity is None else keep & (s.similarity >= cfg.min_similarity)


def _min_confidence(s, keep, cfg, dup):
    return keep if cfg.min_confidence is None else keep & (s.confidence >= cfg.min_confidence)


def _agree(s, keep, cfg, dup):
    return keep & s.agree if cfg.agree else keep


def _exclude(s, keep, cfg, dup):
    return keep if dup is None else keep & ~dup


def _per_class(s, keep, cfg, dup):
    if cfg.per_class is None:
        return keep
    out = np.zeros_like(keep)
    for cls in np.unique(s.label[keep]):
        rows = np.flatnonzero(keep & (s.label == cls))
        # Most similar first; ties broken by pool row, so a selection is deterministic.
        order = np.lexsort((rows, -s.similarity[rows]))
        out[rows[order[: cfg.per_class]]] = True
    return out


FILTERS: dict[str, Filter] = {
    "min_similarity": _min_similarity,
    "min_confidence": _min_confidence,
    "agree": _agree,
    "exclude": _exclude,
    "per_class": _per_class,
}


def select(
    scores: Scores,
    settings: MiningSettings,
    num_classes: int,
    duplicates: np.ndarray | None = None,
) -> Selection:
    """Run every filter of `FILTER_ORDER` over `scores`; `duplicates` marks pool rows that are
    near-duplicates of excluded faces (see `near_duplicates`)."""
    keep = np.ones(len(scores), bool)
    counts = {"pool": _counts(scores.label, keep, num_classes)}
    for name in FILTER_ORDER:
        keep = FILTERS[name](scores, keep, settings, duplicates)
        counts[name] = _counts(scores.label, keep, num_classes)
    return Selection(rows=np.flatnonzero(keep), counts=counts)


def near_duplicates(
    embeddings: np.ndarray, excluded: np.ndarray, threshold: float, chunk: int = 4096
) -> np.ndarray:
    """Mask of `embeddings` rows whose cosine to any `excluded` row is >= `threshold`.

    Chunked over the pool, so memory is chunk x len(excluded) whatever the pool size."""
    dup = np.zeros(len(embeddings), bool)
    if len(excluded) == 0:
        return dup
    for start in range(0, len(embeddings), chunk):
        block = np.asarray(embeddings[start : start + chunk], np.float32)
        dup[start : start + len(block)] = (block @ excluded.T).max(1) >= threshold
    return dup


def _counts(labels: np.ndarray, keep: np.ndarray, num_classes: int) -> list[int]:
    return np.bincount(labels[keep], minlength=num_classes)[:num_classes].tolist()
