"""ResNet-18 with the ImageNet stem against the small stem on 48 px grey synthetic faces.

For each seed, both stems train the same config for the same epochs through
`hmtl.trainables.train` (the code a trial runs), one after the other in one process, so load on
the machine falls on both arms alike. Prints, per stem, training images/s (the train
step, augmentation included, mean over epochs) and the final validation accuracy and
balanced accuracy, each as mean +- 95% CI (Student t over seeds); then the small/ImageNet
throughput ratio and the paired accuracy difference (small - ImageNet, same seed, same
split) with its 95% CI.

The defaults fit in about 10 minutes on 2 CPU cores (the small stem costs ~16x the
multiply-adds at 48 px); pass more samples and epochs where there is time or a GPU:

    python benchmarks/stems.py [--seeds 3] [--epochs 3] [--samples 800] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from scipy import stats

from hmtl.trainables.config import build_config
from hmtl.trainables.session import LocalSession
from hmtl.trainables.train import train

STEMS = ("imagenet", "small")


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% Student-t confidence interval (0 for one value)."""
    mean = statistics.mean(values)
    if len(values) < 2:
        return mean, 0.0
    sem = statistics.stdev(values) / len(values) ** 0.5
    return mean, stats.t.ppf(0.975, len(values) - 1) * sem


def show(values: list[float], digits: int = 4) -> str:
    mean, half = interval(values)
    return f"{mean:.{digits}f} +- {half:.{digits}f}"


def run(stem: str, seed: int, args: argparse.Namespace, out: str) -> dict[str, float]:
    """Train one arm; its images/s (mean over epochs) and last validation metrics."""
    cfg = build_config(
        {},
        [
            "model.backbone=resnet18",
            f"model.stem={stem}",
            f"data.synthetic.num_samples={args.samples}",
            f"data.cache_dir={out}/datasets",
            "data.image_size=48",
            "data.channels=1",
            "data.val_fraction=0.25",  # a larger val split than the default: less noise
            "data.test_fraction=0.0",
            f"data.batch_size={args.batch}",
            f"schedule.epochs={args.epochs}",
            "schedule.warmup_epochs=0",
            "augmentation.level=weak",
            f"optim.lr={args.lr}",
            f"runtime.seed={seed}",
            f"runtime.device={args.device}",
            *([f"runtime.num_threads={args.threads}"] if args.threads else []),
        ],
    )
    result = train(cfg, LocalSession(f"{out}/{stem}-seed{seed}", log=None, keep=1))
    rates = [h["train/images_per_sec"] for h in result.history]
    return {
        "images_per_sec": statistics.mean(rates),
        "val/accuracy": result.metrics["val/accuracy"],
        "val/balanced_accuracy": result.metrics["val/balanced_accuracy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=800, help="synthetic faces in all")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (CPU)")
    parser.add_argument("--out", default=None, help="folder for runs (default: a temp folder)")
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="hmtl-stems-")
    print(
        f"ResNet-18, 48 px grey synthetic faces: {args.samples} faces (75% train, 25% val), "
        f"{args.epochs} epochs, batch {args.batch}, AdamW lr {args.lr}, seeds 0..{args.seeds - 1}",
        flush=True,
    )
    results: dict[str, list[dict[str, float]]] = {stem: [] for stem in STEMS}
    began = time.perf_counter()
    for seed in range(args.seeds):
        for stem in STEMS:
            results[stem].append(run(stem, seed, args, out))
            r = results[stem][-1]
            print(
                f"  seed {seed} {stem:<8}  {r['images_per_sec']:8.1f} images/s  "
                f"val/accuracy {r['val/accuracy']:.4f}  "
                f"val/balanced_accuracy {r['val/balanced_accuracy']:.4f}",
                flush=True,
            )
    print(f"\n{'stem':<10} {'images/s (train step)':>24} {'val/accuracy':>18} {'val/bal_acc':>18}")
    for stem in STEMS:
        rows = results[stem]
        print(
            f"{stem:<10} {show([r['images_per_sec'] for r in rows], 1):>24} "
            f"{show([r['val/accuracy'] for r in rows]):>18} "
            f"{show([r['val/balanced_accuracy'] for r in rows]):>18}"
        )
    small, big = results["small"], results["imagenet"]
    ratio = [s["images_per_sec"] / b["images_per_sec"] for s, b in zip(small, big, strict=True)]
    print(f"\nthroughput small/imagenet: {show(ratio, 3)} (per seed: {ratio})")
    for key in ("val/accuracy", "val/balanced_accuracy"):
        diff = [s[key] - b[key] for s, b in zip(small, big, strict=True)]
        print(f"{key} small - imagenet (paired by seed): {show(diff)}")
    print(f"wall time {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
