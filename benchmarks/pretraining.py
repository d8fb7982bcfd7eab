"""Does label-free pre-training help expression recognition with 10% of the labels?

Issue 12's benchmark, on synthetic faces. Three starting points for the backbone: (a) random
init, (b) SimCLR pre-training, (c) SimCLR + EffSSL's rotation head (weight 0.1), (b) and (c)
with equal pre-training epochs on every training row (labels ignored), using the shipped
recipe `trainables/configs/pretrain_simclr.yaml`. Each is then trained on the 10% of training
rows that keep their labels (`data.label_fraction`, fixed `data.split_seed`: the same subset
for every variant) two ways: a linear probe (`model.freeze_backbone`) and a full fine-tune,
from the pre-training checkpoint folder via `model.pretrained`. The pre-training seed is the
fine-tune seed. Printed per (variant, mode): mean and 95% Student-t interval over seeds of test
accuracy and balanced accuracy, the paired difference of (b) and (c) against (a) seed by seed,
and the seconds per pre-training epoch (training steps only), so what EffSSL's extra backbone
inputs cost is beside what they buy. One process, one thread, runs one after another: on a
shared machine the seconds are noisy.

(a) starts from the same random weights `train()` would draw for the seed, but with BatchNorm
running statistics measured on the training faces (no gradient step): a frozen backbone stays
in eval mode, and with BatchNorm's initial statistics (mean 0, variance 1) a random small_cnn
gives every face nearly the same features, so its probe could only learn the majority class.

    python benchmarks/pretraining.py [--samples 2000] [--pretrain-epochs 4]
        [--finetune-epochs 20] [--width 16] [--seeds 0 1 2] [--pretrain-set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from hmtl.orchestration.study.report.stats import paired_difference, summarize
from hmtl.trainables.augment import augment, normalize
from hmtl.trainables.config import TrainConfig, build_config, load_config
from hmtl.trainables.data.dataset import load_splits
from hmtl.trainables.models import build_backbone
from hmtl.trainables.session import LocalSession
from hmtl.trainables.train import train

RECIPE = Path(__file__).resolve().parent.parent / "trainables/configs/pretrain_simclr.yaml"
RANDOM = "(a) random init"
PRETRAINED = {"(b) SimCLR": 0.0, "(c) SimCLR + EffSSL rot 0.1": 0.1}
"""Pre-trained variant -> tasks.aux.contrastive.rotation_weight."""
MODES = {"probe": ["model.freeze_backbone=true"], "fine-tune": []}
METRICS = {"test/accuracy": "acc", "test/balanced_accuracy": "bal acc"}


def shared(args, seed: int, cache: str) -> list[str]:
    """Overrides every run takes: the same faces, split, labelled subset, size and seed."""
    return [
        f"data.cache_dir={cache}",
        f"data.synthetic.num_samples={args.samples}",
        "data.synthetic.num_identities=40",
        "data.synthetic.seed=0",
        "data.split_seed=0",
        f"data.label_fraction={args.fraction}",
        f"data.image_size={args.image_size}",
        f"model.width={args.width}",
        f"runtime.seed={seed}",
        "runtime.device=cpu",
        "runtime.num_threads=1",
    ]


def pretrain(args, seed: int, rotation: float, scratch: str) -> tuple[str, float, float | None]:
    """Pre-train with the shipped recipe; returns its checkpoint folder, the seconds per
    epoch (training steps only, from the loop's own throughput figure) and test k-NN."""
    # With label_fraction < 1 a pre-training run streams train + withheld rows: every row.
    cfg = load_config(
        RECIPE,
        [
            *shared(args, seed, f"{scratch}/datasets"),
            f"schedule.epochs={args.pretrain_epochs}",
            f"runtime.eval_every={args.pretrain_epochs}",  # k-NN once, at the end
            f"tasks.aux.contrastive.rotation_weight={rotation}",
            *args.pretrain_set,
        ],
    )
    result = train(cfg, LocalSession(f"{scratch}/pretrain-{rotation}-{seed}", log=None, keep=1))
    faces = epoch_faces(cfg)
    seconds = [faces / h["train/images_per_sec"] for h in result.history]
    return result.checkpoint, sum(seconds) / len(seconds), result.metrics.get("test/knn_accuracy")


def epoch_faces(cfg: TrainConfig) -> int:
    """Faces one pre-training epoch passes over: whole batches of every training row."""
    splits = load_splits(cfg.data)
    rows = len(splits.train) + (len(splits.unlabelled) if splits.unlabelled is not None else 0)
    batch = min(cfg.data.batch_size, rows)
    return rows // batch * batch


@torch.no_grad()
def random_start(args, seed: int, scratch: str) -> str:
    """(a)'s weights: the seed's random init with BatchNorm statistics of the training faces
    (clean, eval-transformed). Returns the state-dict file, for `model.pretrained`."""
    cfg = build_config({}, shared(args, seed, f"{scratch}/datasets"))
    images = load_splits(cfg.data).train.images
    torch.manual_seed(seed)  # as train() does before building the backbone
    backbone = build_backbone(cfg.model.backbone, cfg.data.channels, cfg.model.width)
    for module in backbone.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # a plain average over the batches, not an EMA
    backbone.train()
    for part in images.split(256):
        backbone(normalize(augment(part, "eval", out_size=cfg.data.image_size)))
    path = f"{scratch}/random-{seed}.pt"
    torch.save(backbone.state_dict(), path)
    return path


def finetune(args, seed: int, mode: str, weights: str, folder: str) -> dict[str, float]:
    """Train expression on the labelled share from `weights`; returns its test metrics."""
    lr = args.probe_lr if mode == "probe" else args.lr
    cfg = build_config(
        {},
        [
            *shared(args, seed, f"{Path(folder).parent}/datasets"),
            f"data.batch_size={args.finetune_batch}",
            f"schedule.epochs={args.finetune_epochs}",
            "augmentation.level=weak",
            f"optim.lr={lr}",
            f"model.pretrained={weights}",
            *MODES[mode],
        ],
    )
    result = train(cfg, LocalSession(folder, log=None, keep=1), pretrained=weights)
    return {name: result.metrics[name] for name in METRICS}


def interval(values: list[float]) -> str:
    s = summarize(values)
    if s.low is None:
        return f"{s.mean:.3f}"
    return f"{s.mean:.3f} [{s.low:.3f}, {s.high:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--pretrain-epochs", type=int, default=4)
    parser.add_argument("--finetune-epochs", type=int, default=20)
    parser.add_argument("--finetune-batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3, help="fine-tune learning rate")
    # A linear head alone on fixed features takes a larger step (as linear-probe protocols do).
    parser.add_argument("--probe-lr", type=float, default=1e-2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--pretrain-set", nargs="*", default=[], help="extra KEY=VALUE for pre-training runs"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    began = time.perf_counter()
    # scores[variant][mode][metric][seed]; cost[variant] = [(s/epoch, knn) per seed]
    scores: dict = {}
    cost: dict[str, list[tuple[float, float | None]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for seed in args.seeds:
            starts = {RANDOM: random_start(args, seed, scratch)}
            for variant, rotation in PRETRAINED.items():
                ckpt, epoch_s, knn = pretrain(args, seed, rotation, scratch)
                starts[variant] = ckpt
                cost.setdefault(variant, []).append((epoch_s, knn))
            for variant, weights in starts.items():
                for mode in MODES:
                    folder = f"{scratch}/{mode}-{len(scores)}-{variant[1]}-{seed}"
                    got = finetune(args, seed, mode, weights, folder)
                    for name, value in got.items():
                        cell = scores.setdefault(variant, {}).setdefault(mode, {})
                        cell.setdefault(name, {})[seed] = value
            print(f"  seed {seed} done at {time.perf_counter() - began:.0f} s", flush=True)

    print(
        f"\n{args.samples} synthetic faces at {args.image_size} px, {args.fraction:.0%} of the "
        f"training labels, small_cnn width {args.width}; pre-training {args.pretrain_epochs} "
        f"epochs, probe (lr {args.probe_lr}) / fine-tune (lr {args.lr}) {args.finetune_epochs} "
        f"epochs; seeds {args.seeds}.\n"
        "Test accuracy and balanced accuracy: mean [95% t interval] over seeds (chance 0.125)"
    )
    print(f"{'variant':<30}{'mode':<11}" + "".join(f"{m:>24}" for m in METRICS.values()))
    for variant, modes in scores.items():
        for mode, cell in modes.items():
            line = "".join(f"{interval(list(cell[n].values())):>24}" for n in METRICS)
            print(f"{variant:<30}{mode:<11}{line}")
    print("\nPaired difference against (a), seed by seed: mean [95% t interval] (p, paired t)")
    for variant in PRETRAINED:
        for mode in MODES:
            parts = []
            for name, short in METRICS.items():
                d = paired_difference(scores[variant][mode][name], scores[RANDOM][mode][name])
                ci = f"[{d.t.low:+.3f}, {d.t.high:+.3f}]" if d.t.low is not None else ""
                p = f" p={d.p:.2f}" if d.p is not None else ""
                parts.append(f"{short} {d.t.mean:+.3f} {ci}{p}")
            print(f"{variant:<30}{mode:<11}" + "   ".join(parts))
    print("\nPre-training cost: seconds per epoch (training steps), test k-NN after pre-training")
    for variant, rows in cost.items():
        seconds = [r[0] for r in rows]
        knn = [r[1] for r in rows if r[1] is not None]
        print(f"{variant:<30}{interval(seconds):>24} s/epoch   k-NN {interval(knn)}")
    print(f"\nwall time {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
