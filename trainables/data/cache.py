"""A per-process cache of decoded datasets, keyed by fingerprint.

A process that trains one trial after another (a reused Tune actor, the threads of a plain
Optuna study) reads and decodes a prepared dataset once; later trials find it here. The
fingerprint is a digest of the rows, so two folders (or an S3 URI and its node-cache copy)
with the same fingerprint hold the same data, and an edited dataset is a different key.

Bounded by bytes (`HMTL_DATASET_CACHE_MB`, default 4096; 0 turns it off): the least
recently used datasets leave first, and a dataset larger than the bound is never kept.

Cached arrays are read-only, and callers get read-only views of them: numpy refuses any
write (and refuses to make a view writable again). `load_splits` cuts every split out of
them by fancy indexing, which copies, so the tensors a trial trains on are its own and
nothing a trial does reaches the next one.
"""

from __future__ import annotations

import copy
import json
import os
import threading
from collections import OrderedDict
from pathlib import Path

from hmtl.trainables.data.prepared import Prepared, fetch_to_cache, read_prepared
from hmtl.trainables.data.storage import is_remote
from hmtl.trainables.settings import settings


class DatasetCache:
    """Decoded `Prepared` datasets by fingerprint, least recently used out first."""

    def __init__(self, max_bytes: int | None = None) -> None:
        self._max_bytes = max_bytes
        self._entries: OrderedDict[str, Prepared] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def max_bytes(self) -> int:
        """The bound given, else `HMTL_DATASET_CACHE_MB` as the environment holds it now."""
        if self._max_bytes is not None:
            return self._max_bytes
        return int(settings().dataset_cache_mb * 2**20)

    def read(self, source: str | os.PathLike) -> Prepared:
        """The dataset at `source` (a prepared folder or S3 URI), decoded at most once.

        Returns read-only views; a card that cannot be read (or names no fingerprint) is
        left to `read_prepared`, which raises the error that names the problem."""
        folder = fetch_to_cache(str(source)) if is_remote(source) else Path(source)
        fingerprint = _fingerprint(folder)
        if fingerprint is None:
            return read_prepared(folder)
        # One lock for lookups and loads: threads asking for the same dataset at once
        # decode it once, the others wait for it.
        with self._lock:
            entry = self._entries.get(fingerprint)
            if entry is not None:
                self._entries.move_to_end(fingerprint)
                self.hits += 1
            else:
                self.misses += 1
                entry = _frozen(read_prepared(folder))
                self._keep(fingerprint, entry)
        return _views(entry)

    def _keep(self, fingerprint: str, entry: Prepared) -> None:
        size = nbytes(entry)
        if size > self.max_bytes:
            return
        self._entries[fingerprint] = entry
        while sum(nbytes(e) for e in self._entries.values()) > self.max_bytes:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __contains__(self, fingerprint: str) -> bool:
        return fingerprint in self._entries

    def __len__(self) -> int:
        return len(self._entries)


def nbytes(prepared: Prepared) -> int:
    """Memory held by a decoded dataset's arrays."""
    arrays = [prepared.images, *prepared.labels.values()]
    if prepared.split is not None:
        arrays.append(prepared.split)
    return sum(a.nbytes for a in arrays)


def _fingerprint(folder: Path) -> str | None:
    try:
        fingerprint = json.loads((folder / "card.json").read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None
    return fingerprint if isinstance(fingerprint, str) and fingerprint else None


def _frozen(prepared: Prepared) -> Prepared:
    arrays = [prepared.images, *prepared.labels.values()]
    if prepared.split is not None:
        arrays.append(prepared.split)
    for array in arrays:
        array.flags.writeable = False
    return prepared


def _views(prepared: Prepared) -> Prepared:
    """Read-only views and a private card: what a caller holds cannot change the entry."""
    return Prepared(
        images=prepared.images.view(),
        labels={k: v.view() for k, v in prepared.labels.items()},
        split=None if prepared.split is None else prepared.split.view(),
        card=copy.deepcopy(prepared.card),
    )


DATASETS = DatasetCache()
"""This process's cache; `load_splits` reads through it."""
