"""Distilling a prepared dataset and publishing the result: what `hmtl distill` and the study's
`distill` stage (orchestration/study/kinds/distill.py) both run.

The source is a labelled prepared dataset (its `train` rows when it has a split column, e.g.
a mined set; all rows otherwise). The result is published as a prepared dataset (Parquet +
card.json, written under a temporary name and published last) whose card's `distill`
section holds the provenance: the source and its fingerprint, every setting, the loss.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hmtl.orchestration.platform.progress import bar, enabled
from hmtl.trainables.data.prepared import EXPRESSIONS, DatasetError, PreparedWriter, read_prepared
from hmtl.trainables.data.storage import is_remote, redact
from hmtl.trainables.distill import distill


def distill_source(uri: str, per_class: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """The source's training images and labels, checked: labelled, and every class present
    with at least `per_class` rows. One-line DatasetError otherwise."""

    if not is_remote(uri) and not Path(uri).is_dir():
        raise DatasetError(f"{uri}: no such dataset folder")
    data = read_prepared(uri, fail_fast=True)
    labels = data.labels["expression"].astype(np.int64)
    rows = labels >= 0
    if data.split is not None:
        rows &= data.split == "train"
    if data.card.get("labelled") is False or not rows.any():
        raise DatasetError(
            f"{uri}: has no labelled training rows (an unlabelled dataset): distillation "
            "matches each class's images, so it needs expression labels"
        )
    counts = np.bincount(labels[rows], minlength=len(EXPRESSIONS))
    smallest = min((c for c in np.flatnonzero(counts)), key=lambda c: counts[c])
    if counts[smallest] < per_class:
        raise DatasetError(
            f"--images-per-class {per_class}: class '{EXPRESSIONS[smallest]}' of {uri} has only "
            f"{counts[smallest]} training rows"
        )
    return data.images[rows], labels[rows], data.card


def distil_and_publish(uri, images, labels, card, settings, out, name, log: Callable = print):
    """Distil `images`/`labels` (the rows `distill_source` read from `uri`, whose card is
    `card`) with `settings` and publish the result under `out/name/`; the Published dataset
    and the matching loss per iteration. `log` gets the progress lines (a bar replaces
    the per-iteration ones on a terminal)."""

    present = sorted(set(labels.tolist()))
    log(
        f"hmtl distill: {len(images)} training rows, {len(present)} classes -> "
        f"{settings.images_per_class} per class; {settings.iterations} iterations, "
        f"{settings.network()}"
    )
    start = time.perf_counter()
    # On a terminal a bar of iterations with the latest loss; elsewhere (logs) a loss line
    # each time distill() reports one (every 50 iterations, and the last).
    drawn = enabled()
    with bar(settings.iterations, "distill", " iterations") as progress:

        def step(it: int, loss: float) -> None:
            if not drawn:
                log(f"  iteration {it:>6}  loss {loss:.3f}")
                return
            progress.set_postfix_str(f"loss {loss:.3f}", refresh=False)
            progress.update(it + 1 - progress.n)

        result = distill(images, labels, settings, log=step)
    seconds = time.perf_counter() - start
    provenance = {
        "method": "distribution matching (Zhao & Bilen, WACV 2023)",
        "source": redact(uri),
        "source_fingerprint": card["fingerprint"],
        "source_rows": len(images),
        "classes": [EXPRESSIONS[c] for c in present],
        "settings": settings.record(),
        "defaults_ours": ["iterations", "real_batch", "width", "augment"],
        "init_rows": result.init_rows.tolist(),
    }
    size, channels = images.shape[1], images.shape[3]
    with PreparedWriter(out, name, size, channels) as writer:
        split = np.full(len(result.images), "train", object)
        writer.write_shard(result.images, {"expression": result.labels}, split)
        writer.digest.update(json.dumps(provenance, sort_keys=True).encode())
        loss = {
            "first": result.losses[0],
            "last_50_mean": float(np.mean(result.losses[-50:])),
            "seconds": round(seconds, 1),
        }
        published = writer.publish(
            source_format="distilled",
            source=redact(uri),
            bad_rows=0,
            distill={**provenance, "loss": loss},
        )
    return published, result.losses
