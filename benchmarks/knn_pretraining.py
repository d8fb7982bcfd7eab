"""Does label-free pre-training give synthetic faces a better representation than random init?

Weighted k-NN accuracy (trainables/knn.py: k=20, cosine, exp(sim/0.07)) of the backbone on
the expression labels, same seed and data for every variant: random initialisation, SimCLR,
SimCLR + EffSSL's rotation head (weight 0.1), RotNet alone, and a supervised run as the
ceiling at this budget. Also the seconds per pre-training epoch, so EffSSL's extra backbone
passes (2 more inputs per face) are visible next to what they buy. One process, one thread,
variants run one after another: on a shared machine the seconds are noisy.

    python benchmarks/knn_pretraining.py [--samples 2000] [--epochs 5] [--width 16] [--seeds 0]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

import torch

from hmtl.trainables.checkpoint import load_checkpoint
from hmtl.trainables.config import build_config
from hmtl.trainables.data.dataset import load_splits
from hmtl.trainables.knn import knn_accuracy
from hmtl.trainables.models import build_backbone
from hmtl.trainables.session import LocalSession
from hmtl.trainables.train import train

PRETRAIN = ["tasks.main.expression=null"]
CONTRASTIVE = [*PRETRAIN, "tasks.loss_weights.contrastive=1", "tasks.aux_budget=2"]
VARIANTS = {
    "simclr": CONTRASTIVE,
    "simclr + effssl rotation 0.1": [*CONTRASTIVE, "tasks.aux.contrastive.rotation_weight=0.1"],
    "rotnet": [*PRETRAIN, "tasks.loss_weights.rotation=1"],
    "supervised (ceiling)": ["augmentation.level=none"],
}


def config(args, seed: int, extra: list[str], cache: str):
    tree = {
        "data": {
            "cache_dir": cache,
            "image_size": 48,
            "batch_size": 128,
            "synthetic": {"num_samples": args.samples, "num_identities": 40},
        },
        "model": {"width": args.width},
        "schedule": {"epochs": args.epochs, "warmup_epochs": 0.5},
        "optim": {"lr": 3e-3},
        "runtime": {"seed": seed, "device": "cpu", "num_threads": 1},
    }
    return build_config(tree, extra)


def knn_of(backbone, splits, split: str) -> float:
    data = getattr(splits, split)
    memory = (splits.train.images, splits.train.labels["expression"])
    return knn_accuracy(backbone, memory, (data.images, data.labels["expression"]), 8, 48, 512)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows: dict[str, list[tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for seed in args.seeds:
            base = config(args, seed, CONTRASTIVE, f"{scratch}/datasets")
            splits = load_splits(base.data)
            torch.manual_seed(seed)  # as train() does before building the backbone
            random_init = build_backbone("small_cnn", 1, args.width)
            rows.setdefault("random init", []).append(
                (knn_of(random_init, splits, "val"), knn_of(random_init, splits, "test"), 0.0)
            )
            for name, extra in VARIANTS.items():
                cfg = config(args, seed, extra, f"{scratch}/datasets")
                session = LocalSession(f"{scratch}/{name}-{seed}", log=None, keep=1)
                result = train(cfg, session)
                state = load_checkpoint(result.checkpoint)
                backbone = build_backbone("small_cnn", 1, args.width)
                prefix = "backbone."
                backbone.load_state_dict(
                    {k[len(prefix) :]: v for k, v in state["model"].items() if k.startswith(prefix)}
                )
                per_epoch = result.metrics["time/train_s"] / args.epochs
                rows.setdefault(name, []).append(
                    (knn_of(backbone, splits, "val"), knn_of(backbone, splits, "test"), per_epoch)
                )
                print(f"  seed {seed} {name}: done", flush=True)
    print(
        f"\n{args.samples} faces, {args.epochs} epochs, small_cnn width {args.width}, seeds "
        f"{args.seeds}; k-NN accuracy on expression (chance 0.125), mean over seeds"
    )
    print(f"{'variant':<32}{'val k-NN':>10}{'test k-NN':>11}{'s/epoch':>9}")
    for name, values in rows.items():
        val, test, sec = (statistics.mean(v[i] for v in values) for i in range(3))
        print(f"{name:<32}{val:>10.3f}{test:>11.3f}{sec:>9.1f}")


if __name__ == "__main__":
    main()
