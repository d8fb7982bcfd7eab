"""`hmtl distill`: a few synthetic images per class by distribution matching (trainables/distill).

The work is orchestration/distill/publish.py's (shared with the study's `distill` stage):
the source's training rows are distilled and published as a prepared dataset whose card's
`distill` section holds the provenance. Train on it like on a mined set:
`--set 'data.extra_sources=[URI]'`.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import click

from hmtl.orchestration.cli.common import fail, tracking_problem, user_errors
from hmtl.orchestration.cli.options import (
    PUBLISHED,
    from_env,
    out_option,
    setting_default,
    setting_option,
    tracking_uri_option,
)
from hmtl.orchestration.distill.options import DistillOptions
from hmtl.trainables.distill.settings import AUGMENT_OPS


@click.command("distill")
@click.argument("dataset")
@setting_option(
    DistillOptions,
    "images_per_class",
    help="Synthetic images per class (at most the smallest class's training rows).",
)
@out_option(PUBLISHED, required=True)
@click.option("--name", default="distilled", show_default=True, help="Dataset name under --out.")
@setting_option(DistillOptions, "iterations", show_default=True)
@setting_option(
    DistillOptions,
    "lr",
    show_default=True,
    help="SGD step on the standardised synthetic pixels (DM's).",
)
@setting_option(DistillOptions, "momentum", show_default=True)
@setting_option(
    DistillOptions,
    "real_batch",
    show_default=True,
    help="Real images per class per iteration (ours; DM: 256).",
)
@setting_option(
    DistillOptions, "width", show_default=True, help="Random ConvNet width (ours; DM: 128)."
)
@setting_option(DistillOptions, "depth", show_default=True, help="Random ConvNet depth.")
@setting_option(
    DistillOptions,
    "augment",
    default=",".join(setting_default(DistillOptions, "augment")),
    show_default=True,
    help="Siamese augmentation ops, comma-separated, or 'none'.",
)
@setting_option(DistillOptions, "seed", show_default=True)
@tracking_uri_option("not logged to MLflow")
def distill_command(
    dataset, images_per_class, out, name, iterations, lr, momentum, real_batch, width, depth,
    augment, seed, tracking_uri,
) -> None:  # fmt: skip
    """Distil a dataset into a few synthetic images per class (distribution matching).

    DATASET's training rows become --images-per-class synthetic images per class, published
    as a prepared dataset."""

    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
        fail(f"--name {name!r}: use letters, digits, '_', '.' and '-' only")
    problem = tracking_problem(tracking_uri, from_env("tracking_uri"))
    if problem:
        fail(problem)
    ops = () if augment == "none" else tuple(op for op in augment.split(",") if op)
    unknown = sorted(set(ops) - set(AUGMENT_OPS))
    if unknown:
        fail(f"--augment: unknown ops {unknown}; choose from {', '.join(AUGMENT_OPS)} or 'none'")
    settings = DistillOptions(
        source=dataset,
        images_per_class=images_per_class,
        iterations=iterations,
        lr=lr,
        momentum=momentum,
        real_batch=real_batch,
        width=width,
        depth=depth,
        augment=list(ops),
        seed=seed,
    ).settings()
    # Lazy: keeps torch out of `hmtl --help` and the input checks.
    from hmtl.orchestration.distill.publish import distil_and_publish, distill_source
    from hmtl.orchestration.platform.folders import removed_on_failure
    from hmtl.trainables.data.storage import is_remote

    cleanup = (
        removed_on_failure(Path(out) / name) if not is_remote(out) else contextlib.nullcontext()
    )
    with cleanup:
        try:
            images, labels, card = distill_source(dataset, images_per_class)
            published, losses = distil_and_publish(
                dataset, images, labels, card, settings, out, name, log=click.echo
            )
        except user_errors() as err:
            fail(str(err))
    click.echo(f"\n{'reused' if published.reused else 'published'} {published.uri}")
    click.echo(
        f"  {published.card['num_rows']} images, fingerprint {published.card['fingerprint']}"
    )
    if tracking_uri:
        # Lazy: keeps matplotlib, mlflow, ray out of `hmtl --help` and the input checks.
        from hmtl.orchestration.distill.tracking import log_distillation

        click.echo(f"  MLflow run {log_distillation(tracking_uri, published, losses)}")
