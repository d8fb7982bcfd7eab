"""`hmtl mine`: pseudo-label confident faces of an unlabelled pool (orchestration/mining/run.py)."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import click

from hmtl.orchestration.cli.common import USER_ERRORS, fail, tracking_problem
from hmtl.orchestration.mining.run import (
    MiningError,
    default_cache,
    mine,
    prepare_inputs,
    ray_actors,
)
from hmtl.orchestration.platform.cluster import address_problem
from hmtl.orchestration.platform.folders import removed_on_failure
from hmtl.trainables.data.storage import is_remote
from hmtl.trainables.mining import MiningSettings


@click.command("mine")
@click.option(
    "--model",
    required=True,
    help="The primitive model: runs:/<run id>, or a checkpoint folder "
    "or s3:// URI (an hmtl checkpoint with an expression head).",
)
@click.option(
    "--pool",
    required=True,
    help="Prepared dataset to mine (labels ignored), or synthetic[:N], the shipped smoke pool.",
)
@click.option(
    "--labelled",
    required=True,
    help="Prepared labelled dataset whose training split gives the prototypes "
    "(synthetic: the model's own synthetic data).",
)
@click.option("--out", required=True, help="Local folder or s3://bucket/prefix to publish under.")
@click.option("--name", default="mined", show_default=True, help="Dataset name under --out.")
@click.option(
    "--per-class", type=click.IntRange(min=1), default=None, help="At most K faces per class."
)
@click.option(
    "--min-similarity",
    type=click.FloatRange(-1.0, 1.0),
    default=0.5,
    show_default=True,
    help="Cosine to the nearest prototype (ours).",
)
@click.option(
    "--min-confidence",
    type=click.FloatRange(0.0, 1.0),
    default=0.5,
    show_default=True,
    help="Softmax probability of the pseudo-label (ours).",
)
@click.option(
    "--agree/--no-agree",
    default=True,
    show_default=True,
    help="Keep only faces whose classifier argmax is the nearest prototype's class.",
)
@click.option(
    "--exclude",
    multiple=True,
    help="Dataset whose near-duplicates are dropped (repeatable; "
    "the labelled set's val/test rows always are).",
)
@click.option(
    "--exclude-similarity",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=0.99,
    show_default=True,
    help="Cosine at which a pool face counts as a near-duplicate (ours).",
)
@click.option(
    "--prototypes-per-class",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="1: class mean; k > 1: k-means centres per class.",
)
@click.option(
    "--engine",
    type=click.Choice(["ray", "local"]),
    default="ray",
    show_default=True,
    help="Ray Data actors, or one in-process loop (small pools).",
)
@click.option(
    "--actors",
    type=click.IntRange(min=1),
    default=None,
    help="Embedding actors (default: one per GPU where the cluster has GPUs, else one per "
    "CPU but one, left for the reads).",
)
@click.option("--address", default=None, help="Ray cluster: auto or HOST:PORT (default: local).")
@click.option("--tracking-uri", default=None, help="MLflow that tracked a runs:/ model.")
@click.option(
    "--cache", default=None, help="Embedding cache folder (default: hmtl-runs/embeddings)."
)
def mine_command(
    model,
    pool,
    labelled,
    out,
    name,
    per_class,
    min_similarity,
    min_confidence,
    agree,
    exclude,
    exclude_similarity,
    prototypes_per_class,
    engine,
    actors,
    address,
    tracking_uri,
    cache,
) -> None:
    """Embed the --pool and --labelled sets with the primitive model, select confident faces by
    prototype similarity, and publish them as a pseudo-labelled prepared dataset."""

    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
        fail(f"--name {name!r}: use letters, digits, '_', '.' and '-' only")
    for problem in (address_problem(address), tracking_problem(tracking_uri)):
        if problem:
            fail(problem)
    settings = MiningSettings(
        min_similarity=min_similarity,
        min_confidence=min_confidence,
        agree=agree,
        per_class=per_class,
        exclude_similarity=exclude_similarity,
        prototypes_per_class=prototypes_per_class,
    )
    # A failed run leaves no empty dataset folder under a local --out.
    cleanup = (
        removed_on_failure(Path(out) / name) if not is_remote(out) else contextlib.nullcontext()
    )
    with contextlib.ExitStack() as scratch, cleanup:
        try:
            inputs = prepare_inputs(model, pool, labelled, list(exclude), tracking_uri, scratch)
            published = _run(
                inputs, settings, out, name, cache or default_cache(), engine, actors, address
            )
        except (*USER_ERRORS, MiningError) as err:
            fail(str(err))
    _summary(published)


def _run(inputs, settings, out, name, cache, engine, actors, address):
    """Start (or join) Ray for the Ray Data engine, then mine."""

    use_gpu = False
    if engine == "ray":
        actors, use_gpu = ray_actors(address, actors)
    click.echo(
        f"hmtl mine: pool {inputs.pool_card['num_rows']} faces, model sha256 "
        f"{inputs.model_sha[:12]}, engine {engine}"
        + (f" ({actors} {'GPU' if use_gpu else 'CPU'} actors)" if engine == "ray" else "")
    )
    return mine(inputs, settings, out, name, cache, engine, actors or 1, use_gpu, log=click.echo)


def _summary(published) -> None:
    counts = published.card["mining"]["counts"]
    click.echo(f"\n{'reused' if published.reused else 'published'} {published.uri}")
    click.echo(f"  {published.card['num_rows']} faces, fingerprint {published.card['fingerprint']}")
    stages = list(counts)
    click.echo("  per class  " + "  ".join(f"{s:>14}" for s in stages))
    for cls in counts[stages[0]]:
        click.echo(f"  {cls:<9}  " + "  ".join(f"{counts[s][cls]:>14}" for s in stages))
