"""`hmtl mine`: pseudo-label confident faces of an unlabelled pool (orchestration/mining/run.py)."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import click

from hmtl.orchestration.cli.address import parse_address, ray_address
from hmtl.orchestration.cli.checks import ray_line
from hmtl.orchestration.cli.common import fail, tracking_problem, user_errors
from hmtl.orchestration.cli.options import (
    PUBLISHED,
    address_option,
    from_env,
    out_option,
    setting_option,
    tracking_uri_option,
)
from hmtl.orchestration.mining.options import MineOptions


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
@out_option(PUBLISHED, required=True)
@click.option("--name", default="mined", show_default=True, help="Dataset name under --out.")
@setting_option(MineOptions, "per_class", help="At most K faces per class.")
@setting_option(
    MineOptions,
    "min_similarity",
    show_default=True,
    help="Cosine to the nearest prototype (ours).",
)
@setting_option(
    MineOptions,
    "min_confidence",
    show_default=True,
    help="Softmax probability of the pseudo-label (ours).",
)
@setting_option(
    MineOptions,
    "agree",
    "--agree/--no-agree",
    show_default=True,
    help="Keep only faces whose classifier argmax is the nearest prototype's class.",
)
@click.option(
    "--exclude",
    multiple=True,
    help="Dataset whose near-duplicates are dropped (repeatable; "
    "the labelled set's val/test rows always are).",
)
@setting_option(
    MineOptions,
    "exclude_similarity",
    show_default=True,
    help="Cosine at which a pool face counts as a near-duplicate (ours).",
)
@setting_option(
    MineOptions,
    "prototypes_per_class",
    show_default=True,
    help="1: class mean; k > 1: k-means centres per class.",
)
@setting_option(
    MineOptions,
    "engine",
    show_default=True,
    help="Ray Data actors, or one in-process loop (small pools).",
)
@setting_option(
    MineOptions,
    "actors",
    help="Embedding actors (default: one per GPU where the cluster has GPUs, else one per "
    "CPU but one, left for the reads).",
)
@address_option()
@tracking_uri_option("none; needed for a runs:/ --model")
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
    """Pseudo-label confident faces of an unlabelled pool and publish them as a dataset.

    Embeds the --pool and --labelled sets with the primitive model, selects confident faces
    by prototype similarity, and publishes them as a pseudo-labelled prepared dataset."""

    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
        fail(f"--name {name!r}: use letters, digits, '_', '.' and '-' only")
    joined = ray_address(parse_address(address, from_env("address")), "mine")
    problem = tracking_problem(tracking_uri, from_env("tracking_uri"))
    if problem:
        fail(problem)
    # Lazy: keeps torch, ray, mlflow out of `hmtl --help` and the input checks.
    from hmtl.orchestration.mining.run import MiningError, default_cache, prepare_inputs
    from hmtl.orchestration.platform.folders import removed_on_failure
    from hmtl.trainables.data.storage import is_remote

    settings = MineOptions(
        model=model,
        pool=pool,
        labelled=labelled,
        per_class=per_class,
        min_similarity=min_similarity,
        min_confidence=min_confidence,
        agree=agree,
        exclude=list(exclude),
        exclude_similarity=exclude_similarity,
        prototypes_per_class=prototypes_per_class,
        engine=engine,
        actors=actors,
    ).settings()
    # A failed run leaves no empty dataset folder under a local --out.
    cleanup = (
        removed_on_failure(Path(out) / name) if not is_remote(out) else contextlib.nullcontext()
    )
    with contextlib.ExitStack() as scratch, cleanup:
        try:
            inputs = prepare_inputs(model, pool, labelled, list(exclude), tracking_uri, scratch)
            published = _run(
                inputs, settings, out, name, cache or default_cache(), engine, actors, joined
            )
        except (*user_errors(), MiningError) as err:
            fail(str(err))
    _summary(published)


def _run(inputs, settings, out, name, cache, engine, actors, address):
    """Start (or join) Ray for the Ray Data engine, then mine."""
    # Lazy: keeps torch, ray, mlflow out of `hmtl --help` and the input checks.
    from hmtl.orchestration.mining.run import mine, ray_actors

    use_gpu = False
    if engine == "ray":
        actors, use_gpu = ray_actors(address, actors)
    click.echo(
        f"hmtl mine: pool {inputs.pool_card['num_rows']} faces, model sha256 "
        f"{inputs.model_sha[:12]}, engine {engine}"
        + (f" ({actors} {'GPU' if use_gpu else 'CPU'} actors)" if engine == "ray" else "")
        + (f", ray {ray_line(address)}" if engine == "ray" else "")
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
