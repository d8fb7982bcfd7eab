"""Why does SimCLR not beat a random backbone's k-NN on synthetic faces? (issue 12)

For the seed's random init and for a backbone pre-trained with the shipped recipe
(`trainables/configs/pretrain_simclr.yaml`, `--set` overrides on top), weighted k-NN accuracy
(trainables/knn.py's vote) of:

- expression on the test faces (people not seen in training), with three feature kinds: raw
  eval-cropped pixels, the backbone's globally pooled features (what val/knn_accuracy uses) and
  its flattened last map (3x3 at 48 px: keeps where a cue sits);
- identity (40 people), yaw in 8 bins of 10 degrees and expression among the training faces,
  even rows as memory and odd rows as queries (the same people on both sides), pooled features:
  which factors of the face the pre-training puts into the representation.

    python benchmarks/knn_features.py [--size 48] [--epochs 6] [--seeds 0 1] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmtl.trainables.augment import augment, normalize
from hmtl.trainables.config import load_config
from hmtl.trainables.data.dataset import Splits, load_splits
from hmtl.trainables.knn import knn_predict
from hmtl.trainables.models import build_backbone, load_pretrained
from hmtl.trainables.session import LocalSession
from hmtl.trainables.train import train

RECIPE = Path(__file__).resolve().parent.parent / "trainables/configs/pretrain_simclr.yaml"
LABELS = ("identity", "yaw", "expression")


@torch.no_grad()
def features(backbone: nn.Module | None, images: Tensor, size: int, kind: str) -> Tensor:
    """L2-normalised features of `kind` (pixels, pool, flat) under the eval transform."""
    out = []
    for part in images.split(512):
        x = normalize(augment(part, "eval", out_size=size))
        if kind == "pixels":
            f = x.flatten(1)
        else:
            maps = backbone.eval().forward_features(x)
            f = F.adaptive_avg_pool2d(maps, 1).flatten(1) if kind == "pool" else maps.flatten(1)
        out.append(F.normalize(f, dim=1))
    return torch.cat(out)


def unseen_people(backbone, splits: Splits, size: int, kind: str) -> float:
    """Expression k-NN of the test faces against the training faces."""
    memory = features(backbone, splits.train.images, size, kind)
    queries = features(backbone, splits.test.images, size, kind)
    pred = knn_predict(memory, splits.train.labels["expression"], queries, 8)
    return float((pred == splits.test.labels["expression"]).float().mean())


def same_people(backbone, splits: Splits, size: int, key: str) -> float:
    """k-NN of label `key` among training faces: even rows memory, odd rows queries."""
    y = splits.train.labels[key]
    if key == "yaw":  # degrees in [-40, 40] -> 8 bins
        y = ((y + 40) / 10).long().clamp(0, 7)
    f = features(backbone, splits.train.images, size, "pool")
    pred = knn_predict(f[0::2], y[0::2], f[1::2], int(y.max()) + 1)
    return float((pred == y[1::2]).float().mean())


def report(name: str, backbone, splits: Splits, size: int) -> None:
    kinds = ("pixels",) if backbone is None else ("pool", "flat")
    line = [f"{k} {unseen_people(backbone, splits, size, k):.3f}" for k in kinds]
    if backbone is not None:
        line += [f"{k} {same_people(backbone, splits, size, k):.3f}" for k in LABELS]
    print(f"  {name:<10}" + "  ".join(line), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--set", nargs="*", default=[], help="KEY=VALUE for pre-training")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("test expression k-NN (unseen people) | same-people k-NN: identity, yaw, expression")
    with tempfile.TemporaryDirectory() as scratch:
        for seed in args.seeds:
            cfg = load_config(
                RECIPE,
                [
                    f"data.cache_dir={scratch}/datasets",
                    f"data.synthetic.num_samples={args.samples}",
                    "data.synthetic.num_identities=40",
                    f"data.image_size={args.size}",
                    "model.width=16",
                    f"runtime.seed={seed}",
                    "runtime.num_threads=1",
                    f"schedule.epochs={args.epochs}",
                    f"runtime.eval_every={args.epochs}",
                    *args.set,
                ],
            )
            splits = load_splits(cfg.data)
            print(f"seed {seed}, {args.size} px", flush=True)
            report("(pixels)", None, splits, args.size)
            torch.manual_seed(seed)  # as train() does before building the backbone
            report("random", build_backbone("small_cnn", 1, 16), splits, args.size)
            result = train(cfg, LocalSession(f"{scratch}/run-{seed}", log=None, keep=1))
            backbone = build_backbone("small_cnn", 1, 16)
            load_pretrained(backbone, result.checkpoint)
            report("SimCLR", backbone, splits, args.size)


if __name__ == "__main__":
    main()
