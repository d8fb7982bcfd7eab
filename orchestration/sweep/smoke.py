"""Smoke versions of search spaces: a trimmed copy of a sweep that runs end to end on a small
CPU (`--smoke`), with the keys the trim pins dropped and capped ones narrowed."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from hmtl.orchestration.sweep.distributions import contains, format_distribution
from hmtl.orchestration.sweep.space import SearchSpace, validate_space, with_values
from hmtl.trainables.config import TrainConfig
from hmtl.trainables.models import build_backbone

# Keys the smoke version sets itself, so searching them would undo the trim.
SMOKE_PINNED = (
    "data.source",
    "data.cache_dir",
    "data.synthetic.",
    "data.image_size",
    "model.backbone",
    "model.width",
    "runtime.device",
    "runtime.precision",
    "runtime.num_threads",
    "schedule.epochs",
)
# Keys whose searched values are capped (the smoke base caps its own value too).
SMOKE_CAPS = {"data.batch_size": 64, "data.eval_batch_size": 256, "schedule.warmup_epochs": 0.5}


def smoke(space: SearchSpace, scratch: Path) -> SearchSpace:
    """A trimmed copy that runs end to end on a 2-core CPU in about a minute: 600 synthetic
    faces at 48 px (channels and classes kept), small_cnn of width 8, 2 epochs, 2 trials of one
    CPU each. Searched keys the trim pins are dropped, capped ones narrowed, and a pre-trained
    start is swapped for a stand-in state dict (written under `scratch`) that really loads."""
    scratch = Path(scratch).absolute()
    full = TrainConfig.model_validate(space.base_tree()).model_dump()
    pinned = {
        "data.source": "synthetic",
        "data.cache_dir": str(scratch / "datasets"),
        "data.synthetic.num_samples": 600,
        "data.image_size": 48,
        "model.backbone": "small_cnn",
        "model.width": 8,
        "runtime.device": "cpu",
        "runtime.precision": "fp32",
        "runtime.num_threads": 1,
        "runtime.checkpoint_every": 1,
        "schedule.epochs": 2,
    }
    for key, cap in SMOKE_CAPS.items():
        section, leaf = key.split(".")
        pinned[key] = min(full[section][leaf], cap)
    standin = str(scratch / "pretrained-standin.pt")
    if full["model"]["pretrained"] is not None:
        pinned["model.pretrained"] = standin

    dists: dict[str, BaseDistribution] = {}
    for key, dist in space.distributions().items():
        if key.startswith(SMOKE_PINNED):
            continue
        if key == "model.pretrained" and isinstance(dist, CategoricalDistribution):
            choices = list(dict.fromkeys(None if c is None else standin for c in dist.choices))
            dist = CategoricalDistribution(choices) if len(choices) > 1 else choices[0]
        elif key in SMOKE_CAPS:
            dist = _cap(dist, SMOKE_CAPS[key])
        if isinstance(dist, BaseDistribution):
            dists[key] = dist
        else:  # narrowed to one value
            pinned[key] = dist

    # Trial 1 is the top corner (each range's high end, each choice's last value: files list
    # choices from off to on), so every searched task and the stand-in weights really run;
    # trial 2 is the file's first point, trimmed, or else a sampled one.
    corner = {k: d.choices[-1] if _choices(d) else d.high for k, d in dists.items()}
    points = [corner] if corner else []
    for point in space.search.points_to_evaluate[:1]:
        if point.get("model.pretrained") is not None:
            point = {**point, "model.pretrained": standin}
        kept = {k: v for k, v in point.items() if k in dists and contains(dists[k], v)}
        if kept and kept not in points:
            points.append(kept)

    if standin in (pinned.get("model.pretrained"), *_choices(dists.get("model.pretrained"))):
        _write_standin(Path(standin), full["data"]["channels"])

    asha = space.scheduler
    raw = space.model_dump(exclude={"source"})
    raw.update(
        name=f"{space.name}-smoke",
        description=f"Smoke version of {space.name}: synthetic faces, tiny model, CPU.",
        num_samples=2,
        max_concurrent_trials=None,
        scheduler=None
        if asha is None
        else {"max_epochs": 2, "grace_period": 1, "reduction_factor": asha.reduction_factor},
        search={**raw["search"], "points_to_evaluate": points},
        resources={"workers_per_trial": 1, "cpus_per_worker": 1.0, "gpus_per_worker": 0.0},
        base=with_values(full, pinned),
        space={key: format_distribution(dist) for key, dist in dists.items()},
    )
    return validate_space(raw, space.source)


def _cap(dist: BaseDistribution, cap: float) -> BaseDistribution | Any:
    """`dist` with values above `cap` removed; a single remaining value is returned as is."""
    if isinstance(dist, CategoricalDistribution):
        kept = [c for c in dist.choices if c is None or c <= cap]
        return CategoricalDistribution(kept) if len(kept) > 1 else (kept or [cap])[0]
    if dist.low >= cap:
        return type(dist.low)(cap)
    if isinstance(dist, IntDistribution):
        return IntDistribution(dist.low, min(dist.high, int(cap)), log=dist.log)
    step, high = dist.step, min(dist.high, cap)
    if step is not None:
        high = dist.low + step * math.floor((high - dist.low) / step + 1e-9)
        if high <= dist.low:
            return dist.low
    return FloatDistribution(dist.low, high, log=dist.log, step=step)


def _choices(dist: BaseDistribution | None) -> tuple[Any, ...]:
    return tuple(dist.choices) if isinstance(dist, CategoricalDistribution) else ()


def _write_standin(path: Path, channels: int) -> None:
    """A small_cnn state dict in the smoke shape, so loading pre-trained weights really runs."""

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(build_backbone("small_cnn", channels, width=8).state_dict(), path)
