"""Distribution matching: synthetic images whose mean random-network embedding matches the
real class's.

Each iteration draws a fresh random DMConvNet and one siamese augmentation per class; the
loss is, summed over classes, the squared distance between the mean embedding of a random
batch of the class's real images and that of its synthetic images (MMD with a linear
kernel). Only the synthetic pixels are optimised (SGD with momentum, DM's optimiser): no
network is trained, so there is no bi-level optimisation. Images are optimised standardised
by the real set's per-channel mean and std and returned as uint8.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from hmtl.trainables.distill.augment import siamese_augment
from hmtl.trainables.distill.convnet import random_net
from hmtl.trainables.distill.settings import DistillSettings


@dataclass
class Distilled:
    images: np.ndarray  # uint8 (K * N, S, S, C), class by class
    labels: np.ndarray  # int64 (K * N,)
    init_rows: np.ndarray  # the real rows each synthetic image started from
    losses: list[float]  # matching loss per iteration


def random_real(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """`per_class` random row indices of every class present in `labels`, class by class
    (ascending class): DM's initialisation, and the random-real baseline it must beat."""
    rng = np.random.default_rng(seed)
    rows = [
        rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in classes(labels)
    ]
    return np.concatenate(rows)


def classes(labels: np.ndarray) -> list[int]:
    return sorted(int(c) for c in np.unique(labels) if c >= 0)


def distill(
    images: np.ndarray,
    labels: np.ndarray,
    settings: DistillSettings,
    log: Callable[[int, float], None] | None = None,
) -> Distilled:
    """Distil `images` (uint8 NHWC) with expression `labels` (-1 rows ignored) into
    `settings.images_per_class` images per class present. `log(iteration, loss)` is called
    every 50 iterations."""
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    channels = images.shape[-1]
    real = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)
    mean = real.mean(dim=(0, 2, 3), keepdim=True)
    std = real.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3)
    real = (real - mean) / std
    present = classes(labels)
    by_class = {c: torch.from_numpy(np.flatnonzero(labels == c)) for c in present}
    init_rows = random_real(labels, settings.images_per_class, settings.seed)
    synthetic = real[torch.from_numpy(init_rows)].clone().requires_grad_(True)
    optimiser = torch.optim.SGD([synthetic], lr=settings.lr, momentum=settings.momentum)
    n = settings.images_per_class
    losses = []
    for it in range(settings.iterations):
        net = random_net(channels, settings.width, settings.depth, generator)
        loss = torch.zeros(())
        for k, c in enumerate(present):
            rows = by_class[c]
            pick = rows[torch.randperm(len(rows), generator=generator)[: settings.real_batch]]
            real_c, syn_c = siamese_augment(
                [real[pick], synthetic[k * n : (k + 1) * n]], settings.augment, generator
            )
            with torch.no_grad():
                target = net(real_c).mean(0)
            loss = loss + ((target - net(syn_c).mean(0)) ** 2).sum()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        if log and (it % 50 == 0 or it == settings.iterations - 1):
            log(it, losses[-1])
    out = (synthetic.detach() * std + mean).clamp(0, 1).mul(255).round().to(torch.uint8)
    return Distilled(
        images=out.permute(0, 2, 3, 1).contiguous().numpy(),
        labels=np.repeat(np.array(present, np.int64), n),
        init_rows=init_rows,
        losses=losses,
    )
