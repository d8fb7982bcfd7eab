"""Search efficiency on synthetic faces: TPE + ASHA vs random search without early stopping.

The same search space and trial budget, run back to back on local Ray: prints the total
trial-epochs each spent and the best validation balanced accuracy each reached, and the
ratios (TPE+ASHA / random).

    python benchmarks/sweep_efficiency.py [--trials 12] [--epochs 6]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from hmtl.orchestration.sweep.run import run_sweep
from hmtl.orchestration.sweep.space import validate_space
from hmtl.orchestration.tracking.callback import default_tracking_uri


def space(name: str, trials: int, epochs: int, cache: str, asha: bool, sampler: str):
    return validate_space(
        {
            "name": name,
            "num_samples": trials,
            "scheduler": (
                {"type": "asha", "max_epochs": epochs, "grace_period": 1, "reduction_factor": 2}
                if asha
                else None
            ),
            "search": {"sampler": sampler, "seed": 0},
            "base": {
                "data": {
                    "cache_dir": cache,
                    "image_size": 48,
                    "batch_size": 64,
                    "synthetic": {"num_samples": 2000},
                },
                "model": {"width": 8},
                "schedule": {"epochs": epochs, "warmup_epochs": 0.5},
                "runtime": {"device": "cpu", "num_threads": 1},
            },
            "space": {
                "optim.lr": "loguniform(1e-5, 3e-2)",
                "tasks.loss_weights.rotation": "uniform(0.0, 1.0)",
                "augmentation.level": "choice(none, weak, strong)",
            },
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    root = tempfile.mkdtemp(prefix="hmtl-bench-")
    rows = {}
    for label, asha, sampler in (
        ("TPE + ASHA", True, "tpe"),
        ("random, no stopping", False, "random"),
    ):
        start = time.perf_counter()
        result = run_sweep(
            space(
                "tpe-asha" if asha else "random-fifo",
                args.trials,
                args.epochs,
                f"{root}/datasets",
                asha,
                sampler,
            ),
            root,
            default_tracking_uri(root),
            verbose=0,
        )
        best = result.best_metrics.get("val/balanced_accuracy", float("nan"))
        rows[label] = (result.epochs_run, best, time.perf_counter() - start)
    print(f"{args.trials} trials, up to {args.epochs} epochs each, synthetic faces, local Ray")
    for label, (epochs, best, wall) in rows.items():
        print(
            f"  {label:<22} trial-epochs {epochs:4d}   best val/balanced_accuracy {best:.4f}"
            f"   wall {wall:6.1f} s"
        )
    (e1, b1, w1), (e0, b0, w0) = rows["TPE + ASHA"], rows["random, no stopping"]
    print(
        f"  ratios TPE+ASHA / random: trial-epochs {e1 / e0:.2f}, best metric {b1 / b0:.3f}, "
        f"wall {w1 / w0:.2f}"
    )


if __name__ == "__main__":
    main()
