"""Evaluation inside `train`: main-task metrics on clean images, and the backbone's k-NN
accuracy when pre-training (no main task to score)."""

from __future__ import annotations

import contextlib
from functools import partial
from typing import Any

import torch
import torch.distributed as dist

from hmtl.trainables.augment import augment
from hmtl.trainables.config import TrainConfig
from hmtl.trainables.data.faces import FaceData
from hmtl.trainables.knn import knn_accuracy
from hmtl.trainables.network import FaceModel
from hmtl.trainables.session import Session
from hmtl.trainables.setup import Run


def evaluate_epoch(run: Run, epoch: int, last: dict[str, Any]) -> dict[str, Any]:
    """The epoch's evaluation metrics: validation, test at the last epoch, and (pre-training)
    k-NN accuracy. `last` is the previous epoch's report."""
    cfg, data, model = run.cfg, run.data, run.net.model
    final = epoch == cfg.schedule.epochs
    metrics = prefixed("val", evaluate(model, data.val, cfg, run.session, run.autocast))
    if final:
        metrics.update(prefixed("test", evaluate(model, data.test, cfg, run.session, run.autocast)))
    if not data.knn_on:
        return metrics
    knn = partial(
        knn_accuracy,
        model.backbone,
        labelled(data.train),
        num_classes=len(data.splits.info.classes),
        image_size=cfg.data.image_size,
        batch_size=cfg.data.eval_batch_size,
        autocast=run.autocast,
    )
    # Tune's strict metric check wants a sweep's metric in every result: between
    # evaluations the last value is carried, with the epoch it was measured at.
    if epoch % cfg.runtime.eval_every == 0 or final or "val/knn_accuracy" not in last:
        metrics["val/knn_accuracy"] = knn(labelled(data.val))
        metrics["val/knn_epoch"] = epoch
    else:
        metrics["val/knn_accuracy"] = last["val/knn_accuracy"]
        metrics["val/knn_epoch"] = last["val/knn_epoch"]
    if final:
        metrics["test/knn_accuracy"] = knn(labelled(data.test))
    return {k: v for k, v in metrics.items() if v is not None}


def labelled(data: FaceData) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and expression labels: what a k-NN evaluation takes."""
    return data.images, data.labels["expression"]


def evaluate(
    model: FaceModel,
    data: FaceData,
    cfg: TrainConfig,
    session: Session,
    autocast: contextlib.AbstractContextManager,
) -> dict[str, Any]:
    """Main-task metrics on clean (`eval`-level) images; statistics summed over ranks."""
    if len(data) == 0 or not model.main_tasks():
        return {}
    model.eval()
    totals: dict[str, torch.Tensor] = {}
    rows = torch.arange(session.rank, len(data), session.world_size, device=data.images.device)
    for chunk in rows.split(cfg.data.eval_batch_size):
        batch = data.batch(chunk)
        images = augment(batch["image"], "eval", out_size=cfg.data.image_size)
        with autocast:
            stats = model.eval_stats(images, batch)
        for name, value in stats.items():
            totals[name] = totals[name] + value if name in totals else value
    if session.world_size > 1 and dist.is_available() and dist.is_initialized():
        for value in totals.values():
            dist.all_reduce(value)
    out: dict[str, Any] = {}
    for name, value in totals.items():
        summary = model.tasks[name].summarize(value)
        # The headline task (expression) reports unprefixed: val/accuracy, val/macro_f1, ...
        out.update(
            summary if name == "expression" else {f"{name}/{k}": v for k, v in summary.items()}
        )
    return out


def prefixed(prefix: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """`metrics` with each name under `prefix/`."""
    return {f"{prefix}/{k}": v for k, v in metrics.items()}
