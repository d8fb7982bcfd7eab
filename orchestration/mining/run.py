"""`hmtl mine`: mine an unlabelled face pool with a primitive model and publish the result.

1. embed the labelled set, the pool and the excluded sets (orchestration/mining/embed.py:
   Ray Data actors, cached by checkpoint sha256 + dataset fingerprint);
2. class prototypes from the labelled training split (trainables/mining);
3. score every pool face; 4. select; 5. drop near-duplicates of excluded faces (the
   labelled set's val/test rows and every `--exclude` dataset);
6. publish a prepared dataset of the kept faces (pseudo-label as `expression`, `split`
   train, per-row scores as extra columns) whose card holds the provenance.

`prepare_inputs` checks every input (model, datasets, shapes) before Ray starts; `mine` does
the work. Everything a user can get wrong ends in a one-line MiningError or the storage,
dataset and checkpoint errors every command shares.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hmtl.orchestration.mining.embed import Embedded, embedded
from hmtl.orchestration.mining.publish import publish_mined, read_card
from hmtl.orchestration.platform.cluster import init_ray
from hmtl.orchestration.tracking.pretrained import resolved
from hmtl.trainables.config import ConfigError, TrainConfig
from hmtl.trainables.data.dataset import assign_splits, resolve_source
from hmtl.trainables.data.prepared import (
    EXPRESSIONS,
    Published,
    read_prepared,
)
from hmtl.trainables.data.storage import redact
from hmtl.trainables.data.synthetic_pool import POOL_SIZE, ensure_synthetic_pool
from hmtl.trainables.mining import MiningSettings, class_prototypes, near_duplicates, score, select
from hmtl.trainables.mining.primitive import primitive_spec
from hmtl.trainables.mining.scoring import concat
from hmtl.trainables.models import PretrainedError
from hmtl.trainables.settings import settings

EXCLUDED_SPLITS = ("val", "test")
"""Rows of the labelled set that are always excluded: mined faces must not copy them."""


class MiningError(ConfigError):
    """A mining run that cannot go on (an empty selection, mismatched datasets), one line."""


@dataclass
class Inputs:
    """Everything `mine` needs, checked: the model, its spec and every dataset's card."""

    model: str
    model_location: str
    model_sha: str
    model_run: str | None
    spec: dict
    cfg: TrainConfig
    pool: str
    pool_card: dict
    labelled: str
    labelled_card: dict
    excludes: list[tuple[str, dict]] = field(default_factory=list)


def resolve_pool(pool: str, labelled_card: dict, cache_dir: str) -> str:
    """`synthetic` / `synthetic:N`: the shipped smoke pool (rendered on first use, at the
    labelled set's size and channels); anything else is a dataset URI, kept as given."""
    if pool != "synthetic" and not pool.startswith("synthetic:"):
        return pool
    count = pool.partition(":")[2]
    if count and not (count.isdigit() and 64 <= int(count) <= 2_000_000):
        raise MiningError(f"--pool {pool}: synthetic:N needs a count N from 64 to 2000000")
    size, channels = labelled_card["image_size"], labelled_card["channels"]
    n = int(count) if count else POOL_SIZE
    return str(ensure_synthetic_pool(cache_dir, n, size, channels))


def prepare_inputs(
    model: str,
    pool: str,
    labelled: str,
    excludes: list[str],
    tracking_uri: str | None,
    scratch: contextlib.ExitStack,
) -> Inputs:
    """Resolve the model (runs:/ID, a checkpoint folder, s3://), read every card and check the
    pool fits the labelled set, before any Ray or embedding work. A fetched checkpoint lives
    until `scratch` closes."""

    try:
        source, local = scratch.enter_context(resolved(model, tracking_uri))
    except PretrainedError as err:
        raise PretrainedError(str(err).replace("model.pretrained: ", "--model ", 1)) from None
    spec = primitive_spec(local, name=model)
    cfg = TrainConfig.model_validate(spec["config"])
    if labelled == "synthetic":  # the primitive's own synthetic training data
        labelled = str(resolve_source(cfg.data.model_copy(update={"source": "synthetic"})))
    labelled_card = read_card(labelled, "--labelled")
    if labelled_card.get("labelled") is False:
        raise MiningError(
            f"--labelled {redact(labelled)}: an unlabelled dataset (prototypes need labels)"
        )
    pool = resolve_pool(pool, labelled_card, cfg.data.cache_dir)
    pool_card = read_card(pool, "--pool")
    for key, what in (("image_size", "image size"), ("channels", "channel count")):
        if pool_card[key] != labelled_card[key]:
            raise MiningError(
                f"--pool {redact(pool)}: {what} {pool_card[key]} differs from the labelled set's "
                f"{labelled_card[key]} (mined faces are trained on beside it; prepare the pool "
                "at the same --size and --channels)"
            )
    return Inputs(
        model=model,
        model_location=source.location,
        model_sha=source.sha256,
        model_run=source.run_id,
        spec=spec,
        cfg=cfg,
        pool=pool,
        pool_card=pool_card,
        labelled=labelled,
        labelled_card=labelled_card,
        excludes=[(uri, read_card(uri, "--exclude")) for uri in excludes],
    )


def mine(
    inputs: Inputs,
    settings: MiningSettings,
    out: str,
    name: str,
    cache: str,
    engine: str = "ray",
    actors: int = 1,
    use_gpu: bool = False,
    log: Callable[[str], None] = print,
) -> Published:
    """Run the six steps; the published dataset (reused when identical). Ray must be up for
    `engine="ray"`. Raises MiningError when no face survives the filters."""

    def embed(uri: str, card: dict) -> Embedded:
        done = embedded(
            uri, card, inputs.spec, inputs.model_sha, cache, engine, actors, 256, use_gpu
        )
        how = "cached" if done.reused else "computed"
        log(f"  embedded {card['num_rows']} faces of {redact(uri)} ({how})")
        return done

    # 1. Embed (cached); the labelled split is drawn with the primitive's own data settings.
    labelled = read_prepared(inputs.labelled)
    data_cfg = inputs.cfg.data.model_copy(update={"source": inputs.labelled})
    split = assign_splits(labelled, data_cfg)
    lab = embed(inputs.labelled, inputs.labelled_card)
    pool = embed(inputs.pool, inputs.pool_card)
    classes = int(inputs.spec["head"]["weight"].shape[0])

    # 2. Prototypes from the labelled training rows.
    train = np.flatnonzero((split == "train") & (labelled.labels["expression"] >= 0))
    y = labelled.labels["expression"][train].astype(np.int64)
    keep = y < classes
    if not keep.any():
        raise MiningError(f"--labelled {redact(inputs.labelled)}: no labelled training rows")
    protos, owners = class_prototypes(
        np.asarray(lab.embeddings[train[keep]]),
        y[keep],
        classes,
        settings.prototypes_per_class,
        settings.kmeans_seed,
    )
    # 3. Scores, chunk by chunk over the memory-mapped pool.
    chunk = 8192
    scores = concat(
        [
            score(
                np.asarray(pool.embeddings[s : s + chunk]),
                np.asarray(pool.logits[s : s + chunk]),
                protos,
                owners,
            )
            for s in range(0, len(pool.embeddings), chunk)
        ]
    )

    # 4-5. Thresholds, near-duplicates of the held-out and excluded faces, quotas.
    held_out = np.flatnonzero(np.isin(split, EXCLUDED_SPLITS))
    excluded = [np.asarray(lab.embeddings[held_out])]
    exclude_info = [
        {"uri": redact(inputs.labelled), "splits": list(EXCLUDED_SPLITS), "rows": len(held_out)}
    ]
    for uri, card in inputs.excludes:
        excluded.append(np.asarray(embed(uri, card).embeddings))
        exclude_info.append(
            {"uri": redact(uri), "fingerprint": card["fingerprint"], "rows": card["num_rows"]}
        )
    dup = near_duplicates(pool.embeddings, np.concatenate(excluded), settings.exclude_similarity)
    selection = select(scores, settings, classes, dup)
    counts = {
        stage: dict(zip(EXPRESSIONS[:classes], c, strict=True))
        for stage, c in selection.counts.items()
    }
    if len(selection.rows) == 0:
        after = ", ".join(f"{stage} {sum(c)}" for stage, c in selection.counts.items())
        raise MiningError(
            f"no pool face passed the filters (faces left after: {after}); nothing published"
        )

    # 6. Publish with the provenance.
    provenance = {
        "model": {
            "reference": redact(inputs.model),
            "checkpoint": redact(inputs.model_location),
            "sha256": inputs.model_sha,
            "run_id": inputs.model_run,
            "classes": classes,
        },
        "pool": {
            "uri": redact(inputs.pool),
            "fingerprint": inputs.pool_card["fingerprint"],
            "num_rows": inputs.pool_card["num_rows"],
        },
        "labelled": {
            "uri": redact(inputs.labelled),
            "fingerprint": inputs.labelled_card["fingerprint"],
            "train_rows": int(keep.sum()),
            "split_seed": data_cfg.split_seed,
        },
        "exclude": exclude_info,
        "settings": settings.card(),
        "prototypes": {
            "count": len(protos),
            "per_class": np.bincount(owners, minlength=classes).tolist(),
        },
        "counts": counts,
        "near_duplicates_in_pool": int(dup.sum()),
        "row_columns": ["pool_row", "mining_similarity", "mining_confidence", "mining_classifier"],
    }
    return publish_mined(
        inputs.pool, inputs.pool_card, scores, selection.rows, provenance, out, name
    )


def ray_actors(
    address: str | None, actors: int | None, num_cpus: int | None = None
) -> tuple[int, bool]:
    """Start (or join) Ray for the Ray Data engine; how many embedding actors to run (`actors`,
    else one per GPU where the cluster has GPUs, else one per CPU but one, left for the
    reads) and whether they hold GPUs."""
    # Lazy: the local engine runs without Ray.
    import ray

    init_ray(address, num_cpus=num_cpus)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    return actors or max(1, gpus or int(ray.cluster_resources().get("CPU", 1)) - 1), gpus > 0


def default_cache() -> str:
    """Where embeddings are cached: `HMTL_MINING_CACHE`, else `hmtl-runs/embeddings`."""
    return settings().mining_cache or os.path.join("hmtl-runs", "embeddings")
