"""Sweep wall time with the MLflow server stopped mid-sweep, against the same sweep undisturbed.

A real `mlflow server` (SQLite, 127.0.0.1) tracks two runs of the same tiny sweep on local
Ray: one undisturbed, one during which the server is stopped when the first epoch result
arrives and started again so that it answers `--outage` seconds later. Prints both wall
times, their ratio, and whether every epoch's metrics and checkpoint tags reached MLflow
(each once).

    python benchmarks/mlflow_outage.py [--outage 60] [--trials 2] [--epochs N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import tiny_space
from mlflow_server import MlflowServer, OutageAtFirstResult, epochs_lasting

from hmtl.orchestration.platform.cluster import init_ray
from hmtl.orchestration.sweep.run import run_sweep


def tracked(uri: str, sweep: str, epochs: int) -> str:
    """'complete' if every trial run has each epoch's train/loss once and every checkpoint
    tag, else what is missing or repeated."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(sweep)
    runs = client.search_runs([experiment.experiment_id], "tags.`hmtl.role` = 'trial'")
    problems = []
    for run in runs:
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "train/loss"))
        tags = sorted(k for k in run.data.tags if k.startswith("hmtl.checkpoint."))
        if steps != list(range(1, epochs + 1)) or len(tags) != epochs:
            problems.append(f"{run.info.run_name}: steps {steps}, {len(tags)} checkpoint tags")
    return "; ".join(problems) or f"complete ({len(runs)} runs)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage", type=float, default=60.0)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument(
        "--epochs", type=int, default=None, help="default: trials last about twice the outage"
    )
    args = parser.parse_args()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    root = Path(tempfile.mkdtemp(prefix="hmtl-bench-outage-"))
    args.epochs = args.epochs or epochs_lasting(root, 2 * args.outage)
    server = MlflowServer(root / "mlflow")
    server.start()
    init_ray(None)  # started once, before either sweep, so neither pays for it
    walls, outage, trained = {}, None, {}
    try:
        for label in ("undisturbed", "outage"):
            space = tiny_space(
                root, name=f"outage-{label}", epochs=args.epochs, num_samples=args.trials
            )
            # Without a server to stop, the callback only notes when training ended.
            clock = OutageAtFirstResult(server if label == "outage" else None, args.outage)
            start = time.monotonic()
            run_sweep(space, str(root / "runs"), server.url, verbose=0, callbacks=[clock])
            walls[label] = (start, time.monotonic())
            trained[label] = clock.trained - start
            if label == "outage":
                clock.thread.join()
                outage = clock.window
        (u0, u1), (o0, o1) = walls["undisturbed"], walls["outage"]
        print(f"{args.trials} trials x {args.epochs} epochs, tiny space, local Ray, {server.url}")
        for label, (t0, t1) in walls.items():
            state = tracked(server.url, f"outage-{label}", args.epochs)
            print(
                f"  {label:<12} sweep {t1 - t0:6.1f} s (last trial done at {trained[label]:.1f} s)"
                f"   tracking: {state}"
            )
        if outage:
            when = "before" if outage[1] < o1 else "after"
            print(
                f"  server down {outage[1] - outage[0]:.1f} s, from {outage[0] - o0:.1f} s to "
                f"{outage[1] - o0:.1f} s into the sweep (back {when} the sweep ended)"
            )
        print(f"  slowdown ratio (outage / undisturbed): {(o1 - o0) / (u1 - u0):.2f}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
