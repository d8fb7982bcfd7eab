"""Training-step throughput: images/s of forward + backward + optimizer step.

Two things side by side in one run, so machine noise cancels in the ratio:
  full   - index the resident uint8 batch, augment on the device, normalize, step
  static - step on one batch augmented once beforehand (what the model alone costs)
The ratio full/static is what data handling and augmentation cost per step.
On CUDA the same is measured in bf16 autocast with channels_last.

    python benchmarks/train_step.py [--backbone small_cnn] [--size 48] [--batch 128] [--steps 20]
"""

from __future__ import annotations

import argparse
import time

import torch

from hmtl.trainables.augment import augment, normalize
from hmtl.trainables.models import build_backbone


def measure(device: torch.device, args, full: bool) -> float:
    torch.manual_seed(0)
    model = build_backbone(args.backbone, args.channels, args.width).to(device)
    head = torch.nn.Linear(model.feature_dim, 8).to(device)
    params = [*model.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    pool = torch.randint(
        0,
        256,
        (args.batch * 8, args.channels, args.size, args.size),
        dtype=torch.uint8,
        device=device,
    )
    labels = torch.randint(0, 8, (args.batch,), device=device)
    gen = torch.Generator().manual_seed(0)
    static = normalize(augment(pool[: args.batch], args.level, generator=gen))

    def step(i: int) -> None:
        if full:
            index = torch.randint(0, len(pool), (args.batch,), generator=gen).to(device)
            x = normalize(augment(pool[index], args.level, generator=gen))
        else:
            x = static
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = torch.nn.functional.cross_entropy(head(model(x)).float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(3):
        step(i)
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(args.steps):
        step(i)
    if cuda:
        torch.cuda.synchronize()
    return args.batch * args.steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="small_cnn")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--level", default="strong")
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(
        f"{args.backbone} {args.size}px {args.channels}ch batch {args.batch} "
        f"level {args.level}, torch threads {torch.get_num_threads()}"
    )
    for device in devices:
        static = measure(device, args, full=False)
        full = measure(device, args, full=True)
        precision = "bf16" if device.type == "cuda" else "fp32"
        print(
            f"{device.type:>4} {precision}: static {static:8.1f} img/s   full {full:8.1f} img/s"
            f"   full/static time ratio {static / full:.2f}"
        )


if __name__ == "__main__":
    main()
