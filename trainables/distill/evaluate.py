"""Scoring a training set by the test accuracy of a small CNN trained on it alone.

DM's evaluation protocol, shrunk: a fresh network trained from scratch on the (few) given
images with augmentation, then its accuracy on held-out real faces. The network is the
project's small_cnn with a linear head; the augmentation is DSA's (a new draw per step).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hmtl.trainables.distill.augment import siamese_augment
from hmtl.trainables.distill.settings import AUGMENT_OPS
from hmtl.trainables.models import build_backbone


def train_and_test(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    seed: int = 0,
    steps: int = 300,
    width: int = 8,
    lr: float = 0.01,
    augment: tuple[str, ...] = AUGMENT_OPS,
) -> float:
    """Accuracy on (`test_images`, `test_labels`) of small_cnn (first-stage `width`) trained
    for `steps` full-batch SGD steps on (`train_images`, `train_labels`), uint8 NHWC both, with
    a new draw of the `augment` ops (siamese_augment's) per step."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(train_images).permute(0, 3, 1, 2).float().div(255)
    mean, std = x.mean(), x.std().clamp_min(1e-3)
    x = (x - mean) / std
    y = torch.from_numpy(train_labels).long()
    backbone = build_backbone("small_cnn", x.shape[1], width)
    model = nn.Sequential(backbone, nn.Linear(backbone.feature_dim, 8))
    optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    model.train()
    for _ in range(steps):
        (batch,) = siamese_augment([x], augment, generator)
        loss = F.cross_entropy(model(batch), y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
    model.eval()
    test = (torch.from_numpy(test_images).permute(0, 3, 1, 2).float().div(255) - mean) / std
    with torch.no_grad():
        predicted = torch.cat([model(chunk).argmax(1) for chunk in test.split(256)])
    return float((predicted.numpy() == test_labels).mean())
