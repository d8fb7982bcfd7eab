"""The `distill` stage kind: `hmtl distill` as a study stage (a job on the driver, not a sweep).

Its options are `hmtl distill`'s, one model for both (orchestration/distill/options.py):
`source` (a labelled prepared dataset, usually `${mine.dataset}`), `images_per_class` and the
distribution-matching settings (trainables/distill/matching.py; defaults ours, recorded in
the card). Distillation runs in the driver process with torch on its CPU threads; the
result is published under
`<storage>/studies/<study>/datasets/<stage>/<fingerprint>/` (an identical one is reused, so
running the stage again on resume is safe). Outputs: `dataset`, `rows`, `run_id`,
`cost/device_seconds` (torch's threads × wall time) and `time/wall_seconds`.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from hmtl.orchestration.distill.options import DistillOptions
from hmtl.orchestration.distill.publish import distil_and_publish, distill_source
from hmtl.orchestration.platform.cost import env_price, rate_for
from hmtl.orchestration.study.jobs import at_origin, datasets_uri, job_costs
from hmtl.orchestration.study.refs import has_reference


class DistillStage:
    options = DistillOptions

    def check(self, study, stage) -> None:
        where = f"stages[{stage.index}] ({stage.name})"
        if stage.overrides:
            raise ValueError(f"{where}.overrides: a distill stage trains nothing; it takes none")

    def preflight(self, study, stage, origin: str) -> None:
        """A source given without a reference is a labelled dataset with enough rows."""

        o: DistillOptions = stage.options
        if not has_reference(o.source):
            try:
                distill_source(at_origin(o.source, origin), o.images_per_class)
            except ValueError as err:
                raise ValueError(f"source: {err}") from None

    def run(self, study, stage, o: DistillOptions, overrides: dict, context) -> dict[str, Any]:

        start = time.perf_counter()
        source = at_origin(o.source, context.origin)
        images, labels, card = distill_source(source, o.images_per_class)
        published, losses = distil_and_publish(
            source,
            images,
            labels,
            card,
            o.settings(),
            datasets_uri(context.store),
            stage.name,
            log=context.echo,
        )
        cost = job_costs(
            rate_for(torch.get_num_threads(), 0, 1, env_price()), time.perf_counter() - start
        )
        self._track(context, published, losses, cost)
        rows = int(published.card["num_rows"])
        context.echo(f"  {'reused' if published.reused else 'published'} {published.uri}: {rows}")
        return {"path": published.uri, "dataset": published.uri, "rows": rows, **cost}

    def _track(self, context, published, losses: list[float], cost: dict[str, float]) -> None:
        # Lazy: keeps matplotlib, mlflow, ray out of validating a study file (all kinds).
        from hmtl.orchestration.study.tracking import log_job
        from hmtl.trainables.config import flatten

        provenance = published.card["distill"]
        params = {f"distill.{k}": v for k, v in flatten(provenance["settings"]).items()}
        params["distill.source_rows"] = provenance["source_rows"]
        params["distill.source_fingerprint"] = provenance["source_fingerprint"]
        metrics = {
            "distill/loss_first": losses[0],
            "distill/loss_last": losses[-1],
            "distill/rows": published.card["num_rows"],
        }
        tags = {
            "hmtl.dataset": published.uri,
            "hmtl.dataset_fingerprint": published.card["fingerprint"],
            "hmtl.distill_source": provenance["source"],
        }
        log_job(
            context.tracking_uri,
            context.run_id,
            params,
            {**metrics, **cost},
            tags,
            published.card,
        )

    def design(self, study, stage) -> None:
        return None

    def smoke(self, raw: dict[str, Any]) -> dict[str, Any]:
        """One image per class (a smoke-mined class may hold a single face), 10 iterations
        of a width-8 network."""
        return {
            **raw,
            "images_per_class": 1,
            "iterations": min(raw.get("iterations", 500), 10),
            "real_batch": min(raw.get("real_batch", 64), 16),
            "width": min(raw.get("width", 64), 8),
        }
