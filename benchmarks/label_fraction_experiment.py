"""Experiment (not a speed benchmark): do auxiliaries help with 20% of the labels?

Synthetic faces, 20% of the training labels, expression-only vs + jigsaw vs + in-painting,
several seeds each; prints mean +- std test balanced accuracy per setting. The published
AffectNet-8 figures this mirrors (DATASETS.md): 52.46% supervised vs 55.36% + in-painting.

    python benchmarks/label_fraction_experiment.py [--seeds 3] [--epochs 15] [--out DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

from hmtl.trainables.config import build_config
from hmtl.trainables.session import LocalSession
from hmtl.trainables.train import train

SETTINGS = {
    "expression only": [],
    "+ jigsaw (0.5)": ["tasks.loss_weights.jigsaw=0.5"],
    "+ inpainting (1.0)": ["tasks.loss_weights.inpainting=1.0"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--samples", type=int, default=8000)
    parser.add_argument("--fraction", type=float, default=0.2)
    parser.add_argument("--out", default=None, help="folder for runs (default: a temp folder)")
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="hmtl-experiment-")
    base = [
        f"data.synthetic.num_samples={args.samples}",
        "data.image_size=48",
        f"data.label_fraction={args.fraction}",
        "data.batch_size=64",
        "model.width=16",
        f"schedule.epochs={args.epochs}",
        "augmentation.level=weak",
        "optim.lr=0.003",
        "runtime.num_threads=1",
    ]
    print(
        f"{args.fraction:.0%} of {args.samples} synthetic faces' training labels, "
        f"{args.epochs} epochs, seeds 0..{args.seeds - 1}; test balanced accuracy"
    )
    for name, extra in SETTINGS.items():
        scores = []
        for seed in range(args.seeds):
            cfg = build_config({}, [*base, *extra, f"runtime.seed={seed}"])
            folder = f"{out}/{name.split()[-2] if extra else 'expression'}-seed{seed}"
            result = train(cfg, LocalSession(folder, log=None, keep=1))
            scores.append(result.metrics["test/balanced_accuracy"])
        spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
        print(
            f"  {name:<20} {statistics.mean(scores):.4f} +- {spread:.4f}   "
            f"({', '.join(f'{s:.4f}' for s in scores)})",
            flush=True,
        )


if __name__ == "__main__":
    main()
