"""What auxiliary tasks cost per training step, as ratios to the expression-only step.

Same batch, same process, interleaved repetitions (so drift hits every variant alike):
expression only; expression + each auxiliary; expression + all four; and all four with
one batched backbone pass vs one pass per input. Target: all four <= 2.5x. The
auxiliaries share `tasks.aux_budget` x batch backbone inputs per step (--budget).

    python benchmarks/aux_cost.py [--backbone small_cnn] [--size 48] [--batch 128] [--reps 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from hmtl.trainables.augment import augment
from hmtl.trainables.config import build_config
from hmtl.trainables.data.dataset import DatasetInfo
from hmtl.trainables.data.synthetic import render_faces
from hmtl.trainables.models import build_backbone
from hmtl.trainables.network import FaceModel
from hmtl.trainables.tasks import AuxBatch, build_tasks, combine, task_weights

AUX = ("jigsaw", "rotation", "inpainting", "contrastive")
INFO = DatasetInfo(
    classes=("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt"),
    class_counts=(1,) * 8,
    optional_labels=(),
    fingerprint="bench",
    source="bench",
)


def variant(args, weights: dict[str, float], one_pass: bool = False):
    cfg = build_config(
        {
            "data": {"image_size": args.size, "channels": args.channels},
            "model": {"backbone": args.backbone, "width": args.width},
            "tasks": {"loss_weights": weights, "aux_budget": args.budget},
        }
    )
    torch.manual_seed(0)
    backbone = build_backbone(args.backbone, args.channels, args.width)
    tasks = build_tasks(cfg, INFO, backbone.feature_dim)
    model = FaceModel(backbone, tasks, one_pass=one_pass, aux_budget=cfg.tasks.aux_budget)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3), task_weights(cfg)


def time_steps(setup, raw, labels, steps: int) -> float:
    model, opt, weights = setup
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        clean = augment(raw, "weak", generator=gen)
        aux = AuxBatch(raw, clean, gen, 1.0, raw.shape[-1])
        loss, _ = combine(model(clean, {"expression": labels}, aux), weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="small_cnn")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--budget", type=float, default=1.0, help="tasks.aux_budget")
    args = parser.parse_args()

    faces = render_faces(args.batch, size=args.size, channels=args.channels, seed=0)
    raw = torch.from_numpy(faces.images).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(faces.expression).long()
    all_four = dict.fromkeys(AUX, 1.0)
    variants = {"expression only": variant(args, {})}
    variants.update({f"+ {name}": variant(args, {name: 1.0}) for name in AUX})
    variants["+ all four (one pass)"] = variant(args, all_four, one_pass=True)
    variants["+ all four (separate passes)"] = variant(args, all_four, one_pass=False)

    times: dict[str, list[float]] = {name: [] for name in variants}
    for setup in variants.values():  # warm-up
        time_steps(setup, raw, labels, 1)
    for _ in range(args.reps):
        for name, setup in variants.items():
            times[name].append(time_steps(setup, raw, labels, args.steps))

    base = statistics.median(times["expression only"])
    print(
        f"{args.backbone} w{args.width} {args.size}px {args.channels}ch batch {args.batch}, "
        f"aux_budget {args.budget}, {torch.get_num_threads()} threads, "
        f"median of {args.reps}x{args.steps} steps"
    )
    for name, samples in times.items():
        t = statistics.median(samples)
        print(f"  {name:<30} {t * 1000:8.1f} ms/step   {t / base:5.2f}x expression-only")
    one = statistics.median(times["+ all four (one pass)"])
    sep = statistics.median(times["+ all four (separate passes)"])
    print(f"  separate / one pass: {sep / one:.2f}")


if __name__ == "__main__":
    main()
