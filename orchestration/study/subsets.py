"""The labelled subsets of a stage that varies `data.label_fraction`, kept as evidence.

A label-efficiency question compares arms on the same few labels: every trial at a fraction
must train on the same rows, whatever its arm or seed. `data.split_seed` stays fixed in a
grid (orchestration/study/kinds/grid.py refuses varying it), and this module writes down which
rows each fraction keeps, computed with `assign_splits` and the row filter of
trainables/data/dataset.py's `load_splits` (the code training runs), so the record cannot
differ from what trained. When such a stage finishes, the engine stores it as
`label_subsets/<stage>.json` in the study's folder and on the study's MLflow run.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from mlflow.tracking import MlflowClient

from hmtl.orchestration.sweep.space import SearchSpace
from hmtl.orchestration.sweep.trial import resolve_paths
from hmtl.trainables.data.cache import DATASETS
from hmtl.trainables.data.dataset import assign_splits, resolve_source
from hmtl.trainables.data.storage import redact

FRACTION_KEY = "data.label_fraction"
FOLDER = "label_subsets"


def label_subsets(space: SearchSpace, origin: str) -> dict[str, Any] | None:
    """Per fraction the trials use: the indices (row order of the prepared dataset) of the
    training rows that keep their labels. None when no trial sets `data.label_fraction`."""

    points = [i for i, p in enumerate(space.trials or []) if FRACTION_KEY in p.overrides]
    if not points:
        return None
    configs = {}
    for i in points:  # each trial's own data section (arms may set other data keys)
        data = resolve_paths(space.trial_config({"trial": i}), origin).data
        configs.setdefault(data.label_fraction, data)
    first = next(iter(configs.values()))
    prepared = DATASETS.read(resolve_source(first))
    fractions = {}
    for fraction in sorted(configs):
        data = configs[fraction]
        split = assign_splits(prepared, data)
        keep = prepared.labels["expression"] < data.classes  # as load_splits filters rows
        rows = np.flatnonzero((split == "train") & keep)
        fractions[str(fraction)] = {"count": len(rows), "rows": rows.tolist()}
    return {
        "stage": space.name,
        "data.source": redact(first.source),
        "fingerprint": prepared.card.get("fingerprint"),
        "data.split_seed": first.split_seed,
        "rows": "indices into the prepared dataset (its row order) of the training rows that "
        "keep their labels at each data.label_fraction",
        "fractions": fractions,
    }


def record_label_subsets(
    space: SearchSpace, store, tracking_uri: str | None, run_id: str | None, origin: str
) -> str | None:
    """Write a stage's label subsets to `<study>/label_subsets/<stage>.json` and log them
    to the study's run; the artifact's path, or None for a stage that keeps every label."""
    subsets = label_subsets(space, origin)
    if subsets is None:
        return None
    name = f"{FOLDER}/{space.name}.json"
    text = json.dumps(subsets)
    store.write_text(name, text)
    if tracking_uri and run_id:
        MlflowClient(tracking_uri).log_text(run_id, text, name)
    return name
