"""`hmtl distill`: a few synthetic images per class by distribution matching (trainables/distill).

The source is a labelled prepared dataset (its `train` rows when it has a split column, e.g.
a mined set; all rows otherwise). The result is published as a prepared dataset (Parquet +
card.json, written under a temporary name and published last) whose card's `distill`
section holds the provenance: the source and its fingerprint, every setting, the loss.
Train on it like on a mined set: `--set 'data.extra_sources=[URI]'`.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from pathlib import Path

import click
import numpy as np

from orchestration.cli_common import USER_ERRORS, fail, tracking_problem
from trainables.distill.augment import AUGMENT_OPS


@click.command("distill")
@click.argument("dataset")
@click.option(
    "--images-per-class",
    type=click.IntRange(min=1),
    required=True,
    help="Synthetic images per class (at most the smallest class's training rows).",
)
@click.option("--out", required=True, help="Local folder or s3://bucket/prefix to publish under.")
@click.option("--name", default="distilled", show_default=True, help="Dataset name under --out.")
@click.option("--iterations", type=click.IntRange(min=1), default=500, show_default=True)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="SGD step on the standardised synthetic pixels (DM's).",
)
@click.option(
    "--momentum", type=click.FloatRange(0, 1, max_open=True), default=0.5, show_default=True
)
@click.option(
    "--real-batch",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Real images per class per iteration (ours; DM: 256).",
)
@click.option(
    "--width",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Random ConvNet width (ours; DM: 128).",
)
@click.option(
    "--depth", type=click.IntRange(1, 4), default=3, show_default=True, help="Random ConvNet depth."
)
@click.option(
    "--augment",
    default=",".join(AUGMENT_OPS),
    show_default=True,
    help="Siamese augmentation ops, comma-separated, or 'none'.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--tracking-uri", default=None, help="Also log the run (settings, loss, card) to MLflow here."
)
def distill_command(
    dataset, images_per_class, out, name, iterations, lr, momentum, real_batch, width, depth,
    augment, seed, tracking_uri,
) -> None:  # fmt: skip
    """Distil DATASET into --images-per-class synthetic images per class (distribution
    matching) and publish them as a prepared dataset."""
    from orchestration.folders import removed_on_failure
    from trainables.data.storage import is_remote
    from trainables.distill import DistillSettings

    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
        fail(f"--name {name!r}: use letters, digits, '_', '.' and '-' only")
    problem = tracking_problem(tracking_uri)
    if problem:
        fail(problem)
    ops = () if augment == "none" else tuple(op for op in augment.split(",") if op)
    unknown = sorted(set(ops) - set(AUGMENT_OPS))
    if unknown:
        fail(f"--augment: unknown ops {unknown}; choose from {', '.join(AUGMENT_OPS)} or 'none'")
    settings = DistillSettings(
        images_per_class, iterations, lr, momentum, real_batch, width, depth, ops, seed
    )
    cleanup = (
        removed_on_failure(Path(out) / name) if not is_remote(out) else contextlib.nullcontext()
    )
    with cleanup:
        try:
            images, labels, card = _source(dataset, images_per_class)
            published, losses = _distil_and_publish(
                dataset, images, labels, card, settings, out, name
            )
        except USER_ERRORS as err:
            fail(str(err))
    click.echo(f"\n{'reused' if published.reused else 'published'} {published.uri}")
    click.echo(
        f"  {published.card['num_rows']} images, fingerprint {published.card['fingerprint']}"
    )
    if tracking_uri:
        from orchestration.distill_tracking import log_distillation

        click.echo(f"  MLflow run {log_distillation(tracking_uri, published, losses)}")


def _source(uri: str, per_class: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """The source's training images and labels, checked: labelled, and every class present
    with at least `per_class` rows. One-line DatasetError otherwise."""
    from trainables.data.prepared import EXPRESSIONS, DatasetError, read_prepared
    from trainables.data.storage import is_remote

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


def _distil_and_publish(uri, images, labels, card, settings, out, name):
    from trainables.data.prepared import EXPRESSIONS, PreparedWriter
    from trainables.data.storage import redact
    from trainables.distill import distill

    present = sorted(set(labels.tolist()))
    click.echo(
        f"hmtl distill: {len(images)} training rows, {len(present)} classes -> "
        f"{settings.images_per_class} per class; {settings.iterations} iterations, "
        f"{settings.network()}"
    )
    start = time.perf_counter()
    result = distill(
        images,
        labels,
        settings,
        log=lambda it, loss: click.echo(f"  iteration {it:>6}  loss {loss:.3f}"),
    )
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
