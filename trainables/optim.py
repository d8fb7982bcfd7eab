"""Optimizer and learning-rate schedule from config.

The schedule is per step: linear warm-up, then cosine decay, step decay per
`step_size` epochs, or constant. Norms and biases get no weight decay; a pre-trained
backbone may learn at a share of the rate (`optim.backbone_lr_scale`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hmtl.trainables.config import OptimConfig, ScheduleConfig


def make_optimizer(cfg: OptimConfig, model: nn.Module) -> torch.optim.Optimizer:
    """AdamW or SGD over the trainable parameters (a frozen backbone's are left out).

    Below `backbone_lr_scale` 1, the model's `backbone` gets its own groups at that share of
    the learning rate (the schedule scales every group alike); the heads' groups come first,
    so `param_groups[0]["lr"]` stays the base rate that runs report.
    """
    backbone = getattr(model, "backbone", None)
    split = backbone is not None and cfg.backbone_lr_scale != 1.0
    slow = {id(p) for p in backbone.parameters()} if split else set()
    parts = [([p for p in model.parameters() if id(p) not in slow], 1.0)]
    if split:
        parts.append((list(backbone.parameters()), cfg.backbone_lr_scale))
    groups = []
    for params, scale in parts:
        decay, no_decay = [], []
        for param in params:
            if param.requires_grad:
                (no_decay if param.ndim <= 1 else decay).append(param)
        for chosen, weight_decay in ((decay, cfg.weight_decay), (no_decay, 0.0)):
            if chosen:
                groups.append(
                    {"params": chosen, "weight_decay": weight_decay, "lr": cfg.lr * scale}
                )
    if cfg.name == "sgd":
        return torch.optim.SGD(
            groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0
        )
    return torch.optim.AdamW(groups, lr=cfg.lr)


def lr_factor(cfg: ScheduleConfig, step: int, steps_per_epoch: int) -> float:
    """Multiplier of the base learning rate at optimizer step `step` (0-based)."""
    total = cfg.epochs * steps_per_epoch
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return (step + 1) / warmup
    if cfg.kind == "constant":
        return 1.0
    if cfg.kind == "step":
        return cfg.gamma ** ((step // steps_per_epoch) // cfg.step_size)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_scheduler(
    cfg: ScheduleConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(cfg, step, steps_per_epoch)
    )
