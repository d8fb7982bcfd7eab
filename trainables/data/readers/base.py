"""What every dataset reader yields: one `Record` per face, in the source's own terms
already mapped to the canonical label space (DATASETS.md).

Readers only parse and decode; `trainables/data/prepare.py` resizes, converts channels,
counts or refuses bad rows, shards, fingerprints and publishes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np


class BadRow(ValueError):
    """One unusable row: `where` names the file and the row or line, `reason` the problem.

    Readers raise (or yield, see `Record.bad`) it; prepare either stops with it (one line,
    nothing published) or, with --skip-bad, counts it in the card and goes on.
    """

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


class SourceError(ValueError):
    """The source as a whole is unusable (missing file, wrong header, misaligned files)."""


@dataclass
class Record:
    """One face, or one bad row (`bad` set, everything else empty)."""

    image: np.ndarray | None
    """Decoded uint8, (H, W) grey or (H, W, 3) RGB, any size: prepare resizes it."""
    expression: int | None
    """Canonical index 0..7 (neutral, happy, sad, surprise, fear, disgust, anger, contempt)."""
    split: str | None = None
    """train / val / test where the source defines it, else None (seeded splits later)."""
    labels: dict[str, float | int] = field(default_factory=dict)
    """Optional labels among valence, arousal, yaw, pitch, roll, gender (0 f, 1 m), identity."""
    soft: np.ndarray | None = None
    """Optional vote distribution over the 8 canonical classes (FERPlus), float32 (8,)."""
    where: str = ""
    """File and row/line, for messages."""
    bad: BadRow | None = None


@dataclass(frozen=True)
class ReaderOptions:
    """Format-specific choices from the `hmtl data prepare` command line."""

    crop_face: bool = True
    """AffectNet: crop to the annotated face box."""
    ferplus_mode: str = "majority"
    """FERPlus: `majority` (hard label) or `distribution` (soft target kept beside it)."""
    unlabelled: bool = False
    """Image folders: every image under the root, no classes (`Record.expression` None)."""


class Reader(Protocol):
    name: str

    def scan(self, source: Path, options: ReaderOptions) -> Iterator[Record]:
        """Yield every face of the source; raise SourceError for a source-wide problem."""

    def count(self, source: Path, options: ReaderOptions) -> int | None:
        """How many records `scan` will yield, for the progress bar (None if unknown)."""
