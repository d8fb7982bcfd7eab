"""Per-trial orchestration overhead: reused trial processes, fresh ones, and TorchTrainer.

The same tiny sweep runs four times on local Ray, one trial at a time: trials training
inside their Tune function with processes reused across trials (the default), the same
without freezing the process's pre-trial objects for the collector (`HMTL_GC_FREEZE=0`),
with a fresh process per trial (`HMTL_REUSE_ACTORS=0`), and every trial in a TorchTrainer
(what multi-worker trials use; `--no-trainer` leaves it out). For each it prints the mean
per-trial overhead (trial wall time minus the time spent inside `train`, as `train`
itself reports it), the amortised overhead ((sweep wall - summed time inside train) /
trials) and the sweep's wall time divided by the summed training time.

Each variant has its own storage folder and MLflow database (each pays for creating it);
the dataset is drawn and the driver's plotting library imported before the first, so the
one-off costs of the benchmark's process do not land on whichever variant runs first.

    python benchmarks/sweep_overhead.py [--trials 6] [--epochs 2] [--no-trainer]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from ray.tune import Callback

from hmtl.orchestration.platform.cluster import init_ray
from hmtl.orchestration.sweep.reuse import FREEZE_ENV
from hmtl.orchestration.sweep.run import REUSE_ENV, run_sweep
from hmtl.orchestration.sweep.space import validate_space
from hmtl.orchestration.tracking.callback import default_tracking_uri
from hmtl.trainables.data.dataset import ensure_synthetic


class TrialClock(Callback):
    """Wall time of each trial as the sweep driver sees it, and its last report."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.wall: dict[str, float] = {}
        self.inside: dict[str, float] = {}

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started[trial.trial_id] = time.perf_counter()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.inside[trial.trial_id] = result.get("time/train_s", 0.0)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.wall[trial.trial_id] = time.perf_counter() - self.started[trial.trial_id]


def space(name: str, trials: int, epochs: int, cache: str):
    return validate_space(
        {
            "name": name,
            "num_samples": trials,
            "max_concurrent_trials": 1,
            "scheduler": None,
            "search": {"sampler": "random", "seed": 0},
            "base": {
                "data": {
                    "cache_dir": cache,
                    "image_size": 48,
                    "batch_size": 64,
                    "synthetic": {"num_samples": 600},
                },
                "model": {"width": 8},
                "schedule": {"epochs": epochs, "warmup_epochs": 0.5},
                "runtime": {"device": "cpu", "num_threads": 1},
            },
            "space": {"optim.lr": "loguniform(1e-4, 1e-2)"},
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--no-trainer", action="store_true", help="leave out TorchTrainer")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    root = tempfile.mkdtemp(prefix="hmtl-bench-")
    ensure_synthetic(space("warm", 1, 1, f"{root}/datasets").trial_config({}).data)
    import matplotlib.pyplot  # noqa: F401 - the trackers' confusion-matrix plots, warmed once

    init_ray(None)  # started once, before any sweep, so none pays for it
    rows = {}
    variants = [
        ("Tune function, reused", False, {REUSE_ENV: "1", FREEZE_ENV: "1"}),
        ("reused, no gc freeze", False, {REUSE_ENV: "1", FREEZE_ENV: "0"}),
        ("Tune function, fresh", False, {REUSE_ENV: "0", FREEZE_ENV: "1"}),
        ("TorchTrainer", True, {REUSE_ENV: "1", FREEZE_ENV: "1"}),
    ][: 3 if args.no_trainer else 4]
    for n, (label, force_train, env) in enumerate(variants):
        os.environ.update(env)  # read by the driver when the sweep starts
        clock = TrialClock()
        start = time.perf_counter()
        run_sweep(
            space(f"overhead-{n}", args.trials, args.epochs, f"{root}/datasets"),
            f"{root}/{n}",
            default_tracking_uri(f"{root}/{n}"),
            verbose=0,
            callbacks=[clock],
            force_train=force_train,
        )
        sweep_wall = time.perf_counter() - start
        inside = sum(clock.inside.values())
        seen = statistics.mean(clock.wall[t] - clock.inside[t] for t in clock.wall)
        rows[label] = (seen, (sweep_wall - inside) / args.trials, sweep_wall / inside)
    print(f"{args.trials} trials x {args.epochs} epochs, one at a time, local Ray")
    print(f"  load average (1, 5, 15 min) at the end: {os.getloadavg()}")
    print("  overhead: a trial's wall time from start to end minus its time inside train;")
    print("  amortised: (sweep wall time - summed time inside train) / trials")
    for label, (seen, amortised, ratio) in rows.items():
        print(
            f"  {label:<26} overhead {seen:6.2f} s/trial   amortised {amortised:6.2f} s/trial"
            f"   sweep wall / training {ratio:5.2f}"
        )
    reused = rows["Tune function, reused"][1]
    for label, _, _ in variants[1:]:
        print(f"  amortised overhead, {label} / reused: {rows[label][1] / reused:.1f}x")


if __name__ == "__main__":
    main()
