"""What the study machinery costs on top of a sweep: the same grid run both ways.

A 3-arm x 2-factor-level x 3-seed grid of short trials (18 trials, 600 synthetic faces, one
epoch) runs first as a study (`run_study`: study manifest, study and stage runs in MLflow,
grid rows and the report at the end), then as one plain sweep of the same explicit trials
(`run_sweep`, no study around it). For each it prints wall time divided by the summed time
spent inside `train` (each trial's last `time/train_s`, read from Tune's stored results),
and the ratio study / sweep: the study layer should cost nothing visible (ratio near 1).

Each variant has its own storage folder and MLflow database; Ray is started, the dataset
drawn and the plotting library imported before the first, so neither pays for them.

    python benchmarks/study_overhead.py [--seeds 3] [--concurrent 1]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from hmtl.orchestration.platform.cluster import init_ray
from hmtl.orchestration.study.engine import run_study, stage_space
from hmtl.orchestration.study.spec import validate_study
from hmtl.orchestration.sweep.run import run_sweep
from hmtl.orchestration.tracking.callback import default_tracking_uri
from hmtl.trainables.data.dataset import ensure_synthetic


def study(name: str, seeds: int, concurrent: int, cache: str):
    return validate_study(
        {
            "name": name,
            "metric": "test/accuracy",
            "max_concurrent_trials": concurrent,
            "base": {
                "data": {
                    "cache_dir": cache,
                    "image_size": 48,
                    "batch_size": 64,
                    "synthetic": {"num_samples": 600},
                },
                "model": {"width": 8},
                "tasks": {"aux": {"inpainting": {"masks": "rectangles"}}},
                "schedule": {"epochs": 1, "warmup_epochs": 0.0},
                "runtime": {"device": "cpu", "num_threads": 1},
            },
            "stages": [
                {
                    "name": "grid",
                    "kind": "grid",
                    "arms": {
                        "baseline": {},
                        "rotation": {"tasks.loss_weights.rotation": 0.1},
                        "inpainting": {"tasks.loss_weights.inpainting": 0.3},
                    },
                    "factors": {"data.label_fraction": [0.5, 1.0]},
                    "repeats": seeds,
                }
            ],
        }
    )


def training_seconds(sweep: Path) -> float:
    """Summed time inside `train` over the sweep's trials (each one's last report)."""
    total = 0.0
    for result in sweep.glob("trial-*/result.json"):
        lines = result.read_text().splitlines()
        total += json.loads(lines[-1]).get("time/train_s", 0.0) if lines else 0.0
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--concurrent", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    root = tempfile.mkdtemp(prefix="hmtl-bench-")
    spec = study("overhead-study", args.seeds, args.concurrent, f"{root}/datasets")
    ensure_synthetic(stage_space(spec, spec.stage_list[0], {}).trial_config({}).data)
    import matplotlib.pyplot  # noqa: F401 - the trackers' confusion-matrix plots, warmed once

    init_ray(None)

    start = time.perf_counter()
    storage = f"{root}/study"
    run_study(spec, storage, default_tracking_uri(storage), verbose=0, echo=lambda line: None)
    study_wall = time.perf_counter() - start
    study_train = training_seconds(Path(storage, "studies", spec.name, "sweeps", "grid"))

    space = stage_space(spec, spec.stage_list[0], {}).model_copy(update={"name": "grid-sweep"})
    start = time.perf_counter()
    storage = f"{root}/sweep"
    run_sweep(space, storage, default_tracking_uri(storage), verbose=0)
    sweep_wall = time.perf_counter() - start
    sweep_train = training_seconds(Path(storage, "sweeps", "grid-sweep"))

    trials = space.num_samples
    print(f"{trials} trials (3 arms x 2 levels x {args.seeds} seeds), 1 epoch, local Ray")
    print(
        f"  study: wall {study_wall:6.1f} s   training {study_train:6.1f} s   "
        f"wall / training {study_wall / study_train:5.2f}"
    )
    print(
        f"  sweep: wall {sweep_wall:6.1f} s   training {sweep_train:6.1f} s   "
        f"wall / training {sweep_wall / sweep_train:5.2f}"
    )
    ratio = (study_wall / study_train) / (sweep_wall / sweep_train)
    print(f"  study / sweep (wall per training second): {ratio:.2f}")
    print(
        f"  study - sweep wall: {study_wall - sweep_wall:+.1f} s "
        f"({(study_wall - sweep_wall) / trials:+.2f} s/trial)"
    )


if __name__ == "__main__":
    main()
