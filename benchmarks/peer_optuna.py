"""hmtl on local Ray against plain Optuna on one machine: the same trainer, the same search.

Both sides run the same random search (seed 0) over the same space on the same prepared
synthetic faces, a fixed number of trials at a time, each trial tracked in an MLflow run
(SQLite) with a checkpoint every epoch:

  plain Optuna: `study.optimize(n_jobs=...)`, threads calling `hmtl.trainables.train.train`
                with an MLflow-tracked local session (what `hmtl train --tracking-uri` uses);
  hmtl:         `run_sweep` on local Ray (Tune + Optuna, MLflow callback, Tune checkpoints).

Ray's start is timed on its own and left out of the hmtl wall. Per trial it prints the
overhead (a trial's wall time minus its time inside `train`) and the amortised overhead
(slot-seconds not spent inside `train`, per trial: (wall x concurrency - summed time
inside train) / trials).

    python benchmarks/peer_optuna.py [--trials 6] [--epochs 3] [--faces 3000] [--concurrent 2]
                                     [--also HMTL_GC_FREEZE=0 ...]

`--also NAME=VALUE` runs the hmtl side once more with a switch set (an A/B in one run, on
the same Ray); it prints a row and a ratio for each.

To measure other code (e.g. the code before a change), put its checkout first on
PYTHONPATH; the script only uses interfaces that both have.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from sweep_overhead import TrialClock  # benchmarks/ is on sys.path when run as a script

from hmtl.orchestration.platform.cluster import init_ray
from hmtl.orchestration.sweep.run import run_sweep
from hmtl.orchestration.sweep.space import validate_space
from hmtl.orchestration.tracking.callback import default_tracking_uri
from hmtl.orchestration.tracking.single_run import TrackedSession
from hmtl.trainables.data.dataset import ensure_synthetic
from hmtl.trainables.train import train


def make_space(trials: int, epochs: int, faces: int, concurrent: int, cache: str):
    return validate_space(
        {
            "name": "peer",
            "num_samples": trials,
            "max_concurrent_trials": concurrent,
            "scheduler": None,
            "search": {"sampler": "random", "seed": 0},
            "base": {
                "data": {
                    "cache_dir": cache,
                    "image_size": 48,
                    "batch_size": 64,
                    "synthetic": {"num_samples": faces},
                },
                "model": {"width": 16},
                "schedule": {"epochs": epochs, "warmup_epochs": 0.5},
                "runtime": {"device": "cpu", "num_threads": 1},
            },
            "space": {
                "optim.lr": "loguniform(1e-4, 1e-2)",
                "tasks.loss_weights.rotation": "uniform(0.0, 1.0)",
            },
        }
    )


def suggest(trial: optuna.Trial, key: str, dist: BaseDistribution):
    """The plain-Optuna spelling of one search-space entry."""
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(key, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(key, dist.low, dist.high, log=dist.log, step=dist.step)
    return trial.suggest_categorical(key, dist.choices)


def run_optuna(space, root: Path, concurrent: int) -> tuple[float, list[float], list[float]]:
    """Plain Optuna: threads, one MLflow run and a checkpoint folder per trial."""
    tracking = default_tracking_uri(str(root / "optuna"))
    walls, inside, lock = [], [], threading.Lock()
    cpu = []  # each trial's thread: CPU seconds (benchmarks/startup_profile.py's counterpart)
    dists = space.distributions()

    def objective(trial: optuna.Trial) -> float:
        began, began_cpu = time.perf_counter(), time.thread_time()
        params = {key: suggest(trial, key, dist) for key, dist in dists.items()}
        cfg = space.trial_config(params)
        out = root / "optuna" / f"trial-{trial.number}"
        session = TrackedSession(out, cfg, tracking, log=None, experiment="peer-optuna")
        result = train(cfg, session)
        session.finish()
        with lock:
            walls.append(time.perf_counter() - began)
            inside.append(result.metrics["time/train_s"])
            cpu.append(time.thread_time() - began_cpu)
        return result.metrics[space.metrics[0]]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=space.sampler())
    start = time.perf_counter()
    study.optimize(objective, n_trials=space.num_samples, n_jobs=concurrent)
    wall = time.perf_counter() - start
    print(f"plain Optuna: a trial's thread used {statistics.mean(cpu):.2f} CPU s/trial")
    return wall, walls, inside


def run_hmtl(
    space, root: Path, concurrent: int, env: dict[str, str] | None = None
) -> tuple[float, float, list[float], list[float]]:
    """hmtl: Ray's start (once), then the sweep as `hmtl sweep` runs it, with `env` set in
    the driver for its length (switches read by the driver, e.g. HMTL_GC_FREEZE=0)."""
    start = time.perf_counter()
    init_ray(None, num_cpus=concurrent)
    ray_start = time.perf_counter() - start
    clock = TrialClock()
    saved = {key: os.environ.get(key) for key in env or {}}
    os.environ.update(env or {})
    out = root / f"hmtl-{len(list(root.glob('hmtl-*')))}"
    start = time.perf_counter()
    try:
        result = run_sweep(space, str(out), default_tracking_uri(str(out)), callbacks=[clock])
    finally:
        for key, value in saved.items():
            if value is None:
                del os.environ[key]
            else:
                os.environ[key] = value
    wall = time.perf_counter() - start
    assert result.errors == 0, f"{result.errors} trials errored"
    walls = [clock.wall[t] for t in clock.wall]
    inside = [clock.inside[t] for t in clock.wall]
    return ray_start, wall, walls, inside


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--faces", type=int, default=3000)
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="after the default hmtl sweep, another with this variable set (an A/B in one run)",
    )
    args = parser.parse_args()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    root = Path(tempfile.mkdtemp(prefix="hmtl-peer-"))
    space = make_space(args.trials, args.epochs, args.faces, args.concurrent, str(root / "data"))
    ensure_synthetic(space.trial_config({}).data)  # drawn once, before either side runs

    loads = [os.getloadavg()[0]]
    o_wall, o_walls, o_inside = run_optuna(space, root, args.concurrent)
    loads.append(os.getloadavg()[0])
    ray_start, h_wall, h_walls, h_inside = run_hmtl(space, root, args.concurrent)
    loads.append(os.getloadavg()[0])
    rows = [
        ("plain Optuna (threads)", o_wall, o_walls, o_inside),
        ("hmtl on local Ray", h_wall, h_walls, h_inside),
    ]
    for setting in args.also:
        name, _, value = setting.partition("=")
        _, wall, walls, inside = run_hmtl(space, root, args.concurrent, {name: value})
        rows.append((f"hmtl, {setting}", wall, walls, inside))
        loads.append(os.getloadavg()[0])

    n, c = args.trials, args.concurrent
    print(f"\n{n} trials x {args.epochs} epochs, {args.faces} faces, {c} at a time")
    print(
        "  load average (1 min) before each side and at the end: "
        + " ".join(f"{load:.1f}" for load in loads)
    )
    print("  overhead: a trial's wall time minus its time inside train (mean)")
    print("  amortised: (wall x concurrency - summed time inside train) / trials")
    for label, wall, walls, inside in rows:
        seen = statistics.mean(w - i for w, i in zip(walls, inside, strict=True))
        amortised = (wall * c - sum(inside)) / n
        print(
            f"  {label:<24} wall {wall:7.1f} s   in train {statistics.mean(inside):5.2f} s/trial"
            f"   overhead {seen:5.2f} s/trial   amortised {amortised:5.2f} s/trial"
        )
    print(f"  Ray's start (not in the hmtl wall): {ray_start:.1f} s")
    for label, wall, _, _ in rows[1:]:
        print(
            f"  ratio {label} / Optuna: {wall / o_wall:.2f} without Ray's start, "
            f"{(wall + ray_start) / o_wall:.2f} with it"
        )


if __name__ == "__main__":
    main()
