"""The `mine` stage kind: `hmtl mine` as a study stage (a job on the driver, not a sweep).

Its options are `hmtl mine`'s, one model for both (orchestration/mining/options.py):
`model` (usually `${primitive.best_checkpoint}`), `pool` (a prepared dataset, or
`synthetic[:N]`), `labelled` (default: the study base's `data.source`), the selection
settings (trainables/mining/settings.py; every default is ours) and `exclude`. Embedding
runs on Ray Data actors on the study's cluster (or in-process with `engine: local`), cached
under the study folder by checkpoint and dataset fingerprint, so a mine stage run again on
resume reuses its embeddings and its published dataset.

The mined set is published under `<storage>/studies/<study>/datasets/<stage>/<fingerprint>/`
and the stage's outputs are `dataset` (its URI, for `data.extra_sources`), `rows`, `run_id`,
`cost/device_seconds` and `time/wall_seconds`.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import torch

from hmtl.orchestration.mining.options import MineOptions
from hmtl.orchestration.mining.publish import read_card
from hmtl.orchestration.mining.run import default_cache, mine, prepare_inputs, ray_actors
from hmtl.orchestration.platform.cost import env_price, rate_for
from hmtl.orchestration.study.jobs import at_origin, datasets_uri, job_costs
from hmtl.orchestration.study.refs import has_reference
from hmtl.trainables.config import TrainConfig
from hmtl.trainables.settings import settings


class MineStage:
    options = MineOptions

    def check(self, study, stage) -> None:
        where = f"stages[{stage.index}] ({stage.name})"
        if stage.overrides:
            raise ValueError(f"{where}.overrides: a mine stage trains nothing; it takes none")

    def preflight(self, study, stage, origin: str) -> None:
        """The datasets the options name without a reference exist and are prepared
        datasets (their cards are read; a pool's shards are not)."""

        o: MineOptions = stage.options
        named = [("pool", o.pool), ("labelled", self._labelled(study, o))]
        named += [(f"exclude[{i}]", uri) for i, uri in enumerate(o.exclude)]
        for key, uri in named:
            if has_reference(uri) or uri == "synthetic" or uri.startswith("synthetic:"):
                continue
            read_card(at_origin(uri, origin), f"{key}:")

    def run(self, study, stage, o: MineOptions, overrides: dict, context) -> dict[str, Any]:

        def here(uri: str) -> str:
            return at_origin(uri, context.origin)

        start = time.perf_counter()
        with contextlib.ExitStack() as scratch:
            inputs = prepare_inputs(
                here(o.model),
                here(o.pool),
                here(self._labelled(study, o)),
                [here(uri) for uri in o.exclude],
                context.tracking_uri,
                scratch,
            )
            actors, gpu = 1, False
            if o.engine == "ray":
                actors, gpu = ray_actors(context.address, o.actors, context.num_cpus)
            context.echo(
                f"  mining a pool of {inputs.pool_card['num_rows']} faces with {actors} "
                f"{'GPU' if gpu else 'CPU'} {'actor' if o.engine == 'ray' else 'process'}(s)"
            )
            published = mine(
                inputs,
                o.settings(),
                datasets_uri(context.store),
                stage.name,
                self._cache(context),
                o.engine,
                actors,
                gpu,
                log=context.echo,
            )
        if o.engine == "ray":
            rate = rate_for(0 if gpu else actors, actors if gpu else 0, 1, env_price())
        else:  # one process; torch computes with its threads
            rate = rate_for(torch.get_num_threads(), 0, 1, env_price())
        cost = job_costs(rate, time.perf_counter() - start)
        self._track(context, inputs, published, cost)
        rows = int(published.card["num_rows"])
        context.echo(f"  {'reused' if published.reused else 'published'} {published.uri}: {rows}")
        return {"path": published.uri, "dataset": published.uri, "rows": rows, **cost}

    def _labelled(self, study, o: MineOptions) -> str:

        return o.labelled or TrainConfig.model_validate(study.base_tree()).data.source

    def _cache(self, context) -> str:
        """Embeddings are cached beside the study (a local folder: they are memory-mapped),
        unless HMTL_MINING_CACHE names a shared cache."""

        if settings().mining_cache or context.store.remote:
            return str(Path(context.origin, default_cache()))
        return str(Path(context.store.root, "embeddings"))

    def _track(self, context, inputs, published, cost: dict[str, float]) -> None:
        # Lazy: keeps matplotlib, mlflow, ray out of validating a study file (all kinds).
        from hmtl.orchestration.study.tracking import log_job
        from hmtl.trainables.config import flatten

        mining = published.card["mining"]
        params = {f"mine.{k}": v for k, v in flatten(mining["settings"]).items()}
        params.update(
            {
                "mine.model_sha256": inputs.model_sha,
                "mine.pool_fingerprint": mining["pool"]["fingerprint"],
                "mine.pool_rows": mining["pool"]["num_rows"],
                "mine.labelled_fingerprint": mining["labelled"]["fingerprint"],
            }
        )
        metrics = {
            f"mine/after_{step}": sum(counts.values()) for step, counts in mining["counts"].items()
        }
        metrics["mine/rows"] = published.card["num_rows"]
        tags = {
            "hmtl.dataset": published.uri,
            "hmtl.dataset_fingerprint": published.card["fingerprint"],
        }
        log_job(
            context.tracking_uri, context.run_id, params, {**metrics, **cost}, tags, published.card
        )

    def design(self, study, stage) -> None:
        return None

    def smoke(self, raw: dict[str, Any]) -> dict[str, Any]:
        """A 1,000-face synthetic pool, the smoke base's own labelled set, no thresholds
        (a one-epoch primitive is confident about nothing) and at most 20 faces a class."""
        out = {k: v for k, v in raw.items() if k not in ("labelled", "exclude", "actors")}
        out.update(pool="synthetic:1000", min_similarity=None, min_confidence=None, agree=False)
        return {**out, "per_class": min(raw.get("per_class") or 20, 20)}
