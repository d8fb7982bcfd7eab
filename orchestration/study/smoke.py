"""Smoke versions of studies (`hmtl study --smoke`): the same stages and arms on 600
synthetic 48 px faces, a width-8 small_cnn, one epoch, at most two seeds and two levels per
factor, one CPU per trial; sweep stages get `hmtl sweep --smoke`'s trim when they start
(2 trials), and confirm at most their 2 best configurations."""

from __future__ import annotations

from pathlib import Path

from hmtl.orchestration.study.decide.options import smoke_repeats
from hmtl.orchestration.study.kinds import KINDS
from hmtl.orchestration.study.spec import Study, validate_study
from hmtl.orchestration.sweep.smoke import SMOKE_PINNED
from hmtl.orchestration.sweep.space import with_values
from hmtl.trainables.config import TrainConfig


def smoke_study(study: Study, scratch: Path) -> Study:
    """A trimmed copy of `study` named `<name>-smoke` that runs on a 2-core CPU in minutes."""
    scratch = Path(scratch).absolute()
    full = TrainConfig.model_validate(study.base_tree()).model_dump()
    pinned = {
        "data.source": "synthetic",
        "data.cache_dir": str(scratch / "datasets"),
        "data.synthetic.num_samples": 600,
        "data.image_size": 48,
        "data.batch_size": min(full["data"]["batch_size"], 64),
        "model.backbone": "small_cnn",
        "model.width": 8,
        "runtime.device": "cpu",
        "runtime.precision": "fp32",
        "runtime.num_threads": 1,
        "schedule.epochs": 1,
        "schedule.warmup_epochs": 0.0,
    }
    raw = study.model_dump(mode="json", exclude={"source"})
    raw.update(
        name=f"{study.name}-smoke",
        smoke=True,
        base=with_values(full, pinned),
        resources={"workers_per_trial": 1, "cpus_per_worker": 1.0, "gpus_per_worker": 0.0},
        max_concurrent_trials=None,
    )
    stages = []
    for stage in raw["stages"]:
        stage = dict(stage)
        overrides = stage.get("overrides") or {}
        stage["overrides"] = {k: v for k, v in overrides.items() if not k.startswith(SMOKE_PINNED)}
        trim = getattr(KINDS.get(stage.get("kind")), "smoke", None)
        if trim is not None:  # a kind that trims its own keys
            stage = trim(stage)
        if stage.get("kind") == "confirm":
            stage["repeats"] = min(stage.get("repeats", 3), 2)
        if stage.get("kind") == "grid":
            stage["repeats"] = smoke_repeats(stage.get("repeats", 3))
        if stage.get("kind") == "grid":
            stage["factors"] = {k: v[:2] for k, v in (stage.get("factors") or {}).items()}
        if stage.get("kind") == "sweep" and stage.get("confirm"):
            # A smoke sweep runs 2 trials (orchestration/sweep/smoke.py).
            confirm = stage["confirm"]
            stage["confirm"] = {
                **confirm,
                "top_k": min(confirm.get("top_k", 3), 2),
                "repeats": min(confirm.get("repeats", 3), 2),
            }
        stages.append(stage)
    raw["stages"] = stages
    return validate_study(raw, study.source)
