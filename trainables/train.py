"""`train(cfg, session)`: the plain PyTorch training loop, read top to bottom.

Data, model, loss, optimizer step, evaluation, checkpoint -- in that order. The loop
knows nothing about Ray or MLflow: it reports each epoch through the `Session` and
resumes from whatever checkpoint the session hands it.

Pre-training runs (no main task) train on the auxiliary losses alone, over every training
row (labels ignored), and report the weighted k-NN accuracy of the backbone
(`val/knn_accuracy`, see knn.py) instead of main-task metrics.

Semi-supervised HMTL: with `data.label_fraction` < 1 (and `data.unlabelled_to_aux`), the rows
whose labels are withheld feed the auxiliary tasks. An epoch is still one pass over the
labelled training rows for the main loss; each step the auxiliaries get a batch of the same
size drawn, without replacement within the epoch, from labelled + unlabelled rows, so their
compute per step is unchanged and each epoch they see a fresh share of the pool.

Determinism: every epoch draws its shuffling and augmentation from generators seeded
by (seed, epoch, rank), and the global RNGs are reseeded the same way, so a run
resumed after epoch k replays epochs k+1.. exactly as an uninterrupted run does.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from hmtl.trainables.accounting import IMAGES_SEEN, WALL_SECONDS, InputCounter
from hmtl.trainables.augment import augment
from hmtl.trainables.checkpoint import (
    CheckpointError,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from hmtl.trainables.config import TrainConfig
from hmtl.trainables.data.dataset import Splits, load_splits, refuse_unlabelled
from hmtl.trainables.data.faces import FaceData
from hmtl.trainables.finetune import start_backbone, train_mode
from hmtl.trainables.knn import knn_accuracy
from hmtl.trainables.models import build_backbone
from hmtl.trainables.network import FaceModel
from hmtl.trainables.optim import make_optimizer, make_scheduler
from hmtl.trainables.sampling import epoch_rows
from hmtl.trainables.session import Session
from hmtl.trainables.tasks import AuxBatch, build_tasks, combine, task_weights


@dataclass
class TrainResult:
    epochs: int
    metrics: dict[str, Any]
    """The last epoch's report (train, val and test metrics)."""
    checkpoint: str | None
    history: list[dict[str, Any]] = field(default_factory=list)


def train(
    cfg: TrainConfig,
    session: Session,
    pretrained: str | None = None,
    splits: Splits | None = None,
) -> TrainResult:
    """Train `cfg` to its last epoch, reporting through `session`. `pretrained` is the local
    copy of `model.pretrained` when orchestration fetched it (a URI or `runs:/` source);
    `splits` given (the active-learning loop's labelled rows) replace the dataset `cfg.data`
    names."""
    began = time.perf_counter()
    if cfg.runtime.num_threads:
        torch.set_num_threads(cfg.runtime.num_threads)
    device = session.device or pick_device(cfg.runtime.device)
    use_bf16 = cfg.runtime.precision == "bf16" or (
        cfg.runtime.precision == "auto" and device.type == "cuda"
    )
    channels_last = device.type == "cuda"

    # Data: decoded once, resident on the training device.
    pretrain = not cfg.tasks.main.enabled()
    splits = splits if splits is not None else load_splits(cfg.data)
    refuse_unlabelled(cfg.data, cfg.tasks.main.enabled(), splits.info.labelled)
    train_data, val_data, test_data = (
        d.to(device) for d in (splits.train, splits.val, splits.test)
    )
    # The rows an epoch passes over, and (semi-supervised) the pool the auxiliaries draw from.
    pool = aux_pool(splits, device) if any(w > 0 for _, w in cfg.tasks.loss_weights) else None
    if pool is not None and splits.aux_images is not None:  # the training rows lead the pool:
        train_data = FaceData(pool.images[: len(train_data)], train_data.labels)  # one copy
    stream = pool if pretrain and pool is not None else train_data
    separate_aux = pool is not None and not pretrain
    knn_on = pretrain and knn_possible(train_data, session.rank)

    # Model: a shared backbone plus one module per enabled task.
    torch.manual_seed(cfg.runtime.seed)
    resume = session.latest_checkpoint()
    backbone = build_backbone(
        cfg.model.backbone, cfg.data.channels, cfg.model.width, cfg.model.stem
    )
    start_backbone(backbone, cfg.model, pretrained, resuming=resume is not None)
    seen = InputCounter(backbone)  # every backbone input, auxiliary ones included
    tasks = build_tasks(cfg, splits.info, backbone.feature_dim)
    model = FaceModel(
        backbone, tasks, channels_last=channels_last, aux_budget=cfg.tasks.aux_budget
    ).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    weights = task_weights(cfg)
    wrapped = session.prepare_model(model)

    # Optimizer and schedule.
    per_rank = len(stream) // session.world_size
    if per_rank == 0:
        raise ValueError(
            f"{cfg.data.source}: {len(stream)} training rows cannot feed "
            f"{session.world_size} workers"
        )
    batch_size = min(cfg.data.batch_size, per_rank)
    steps_per_epoch = per_rank // batch_size
    optimizer = make_optimizer(cfg.optim, model)
    scheduler = make_scheduler(cfg.schedule, optimizer, steps_per_epoch)

    # Resume.
    start_epoch, history, last = 1, [], {}
    if resume:
        state = load_checkpoint(resume)
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError) as err:
            first = str(err).strip().splitlines()[0]
            raise CheckpointError(f"{resume}: does not fit this config's model ({first})") from None
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        start_epoch = state["epoch"] + 1
        history = list(state.get("history", []))
        last = state.get("metrics", {})

    # Compute accounting continues from the checkpoint's counts (trainables/accounting.py).
    images_seen, wall_before = last.get(IMAGES_SEEN, 0), last.get(WALL_SECONDS, 0.0)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)
    for epoch in range(start_epoch, cfg.schedule.epochs + 1):
        seed_epoch(cfg.runtime.seed, epoch, session.rank)
        order = torch.Generator().manual_seed(derive_seed(cfg.runtime.seed, epoch))
        jitter = torch.Generator().manual_seed(derive_seed(cfg.runtime.seed, epoch, session.rank))
        rows = epoch_rows(
            len(stream),
            batch_size,
            order,
            session.rank,
            session.world_size,
            pool_size=len(pool) if separate_aux else None,
        )

        # Train one epoch.
        train_mode(wrapped, cfg.model)
        sums: dict[str, torch.Tensor] = {}
        start, counted = time.perf_counter(), seen.count
        for step in range(steps_per_epoch):
            batch = stream.batch(rows.main[step].to(device))
            images, geometry = augment(
                batch["image"],
                cfg.augmentation.level,
                magnitude=cfg.augmentation.magnitude,
                out_size=cfg.data.image_size,
                generator=jitter,
                return_geometry=True,
            )
            batch.update(flipped=geometry.flipped, rotation_deg=geometry.rotation_deg)
            aux_raw, aux_clean = batch["image"], images
            if rows.aux is not None:
                aux_raw = pool.images[rows.aux[step].to(device)]
                aux_clean = augment(
                    aux_raw,
                    cfg.augmentation.level,
                    magnitude=cfg.augmentation.magnitude,
                    out_size=cfg.data.image_size,
                    generator=jitter,
                )
            aux = AuxBatch(
                aux_raw, aux_clean, jitter, cfg.augmentation.magnitude, cfg.data.image_size
            )
            with autocast:
                losses = wrapped(images, batch, aux)
            loss, parts = combine(losses, weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.optim.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            optimizer.step()
            scheduler.step()
            figures = {"loss": loss, **{f"loss/{k}": v for k, v in parts.items()}}
            for task_name, task in model.aux_tasks().items():
                step_metrics = getattr(task, "step_metrics", {})
                figures.update({f"{task_name}/{k}": v for k, v in step_metrics.items()})
            for name, value in figures.items():
                sums[name] = sums.get(name, 0.0) + value.detach().float()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
        images_seen += (seen.count - counted) * session.world_size  # ranks take equal batches

        # Evaluate on clean validation images.
        metrics: dict[str, Any] = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
        metrics.update({f"train/{k}": float(v) / steps_per_epoch for k, v in sums.items()})
        metrics["train/images_per_sec"] = (
            steps_per_epoch * batch_size * session.world_size / elapsed
        )
        final = epoch == cfg.schedule.epochs
        metrics.update(prefixed("val", evaluate(model, val_data, cfg, session, autocast)))
        if final:
            metrics.update(prefixed("test", evaluate(model, test_data, cfg, session, autocast)))
        if knn_on:
            knn = partial(
                knn_accuracy,
                model.backbone,
                _labelled(train_data),
                num_classes=len(splits.info.classes),
                image_size=cfg.data.image_size,
                batch_size=cfg.data.eval_batch_size,
                autocast=autocast,
            )
            # Tune's strict metric check wants a sweep's metric in every result: between
            # evaluations the last value is carried, with the epoch it was measured at.
            if epoch % cfg.runtime.eval_every == 0 or final or "val/knn_accuracy" not in last:
                metrics["val/knn_accuracy"] = knn(_labelled(val_data))
                metrics["val/knn_epoch"] = epoch
            else:
                metrics["val/knn_accuracy"] = last["val/knn_accuracy"]
                metrics["val/knn_epoch"] = last["val/knn_epoch"]
            if final:
                metrics["test/knn_accuracy"] = knn(_labelled(test_data))
            metrics = {k: v for k, v in metrics.items() if v is not None}
        metrics["time/train_s"] = time.perf_counter() - began  # in this process, so far
        metrics[IMAGES_SEEN] = images_seen
        metrics[WALL_SECONDS] = wall_before + time.perf_counter() - began
        metrics["data/fingerprint"] = splits.info.fingerprint
        history.append({k: v for k, v in metrics.items() if isinstance(v, int | float)})

        # Checkpoint and report.
        due = epoch % cfg.runtime.checkpoint_every == 0 or epoch == cfg.schedule.epochs
        folder = tempfile.mkdtemp(prefix="hmtl-ckpt-") if due and session.rank == 0 else None
        if folder:
            save_checkpoint(
                folder,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "epoch": epoch,
                    "rng": rng_state(),
                    "config": cfg.model_dump(),
                    "metrics": metrics,
                    "history": history,
                    "dataset": splits.info.fingerprint,
                },
            )
            # The dataset card travels with the checkpoint (trackers log it beside the model).
            # With the rows this run drew for each split (trackers profile the dataset with them).
            used = {"train": len(train_data), "val": len(val_data), "test": len(test_data)}
            card = {**splits.info.card, "split_rows": used}
            Path(folder, "card.json").write_text(json.dumps(card, indent=2))
        try:
            session.report(metrics, checkpoint_dir=folder)
        finally:
            if folder:
                shutil.rmtree(folder, ignore_errors=True)
        last = metrics

    if "test/accuracy" not in last and start_epoch > cfg.schedule.epochs:
        last = {**last, **prefixed("test", evaluate(model, test_data, cfg, session, autocast))}
    return TrainResult(
        epochs=cfg.schedule.epochs,
        metrics=last,
        checkpoint=session.latest_checkpoint(),
        history=history,
    )


def aux_pool(splits: Splits, device: torch.device) -> FaceData | None:
    """Training rows plus the label-withheld rows, images only: what auxiliaries draw from
    when there are withheld rows (None otherwise)."""
    if splits.unlabelled is None or len(splits.unlabelled) == 0:
        return None
    images = splits.aux_images
    if images is None:  # Splits built by hand
        images = torch.cat([splits.train.images, splits.unlabelled.images])
    return FaceData(images, {}).to(device)


def knn_possible(train_data: FaceData, rank: int) -> bool:
    """Whether a k-NN evaluation can run: on rank 0 (only its report reaches the tracker),
    with labelled training rows to use as neighbours. Prints why not when there are none."""
    if rank != 0:
        return False
    if bool((train_data.labels["expression"] >= 0).any()):
        return True
    print("hmtl: note: the dataset has no labels: val/knn_accuracy is not reported")
    return False


def _labelled(data: FaceData) -> tuple[torch.Tensor, torch.Tensor]:
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
    return {f"{prefix}/{k}": v for k, v in metrics.items()}


def derive_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (so epoch seeds don't overlap across runs)."""
    return int(
        np.random.SeedSequence(list(parts)).generate_state(2, np.uint32).view(np.uint64)[0]
        >> np.uint64(1)
    )


def seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """Reseed the global RNGs (dropout, anything implicit) from (seed, epoch, rank)."""
    s = derive_seed(seed, epoch, rank, 1)
    torch.manual_seed(s)
    random.seed(s)
    np.random.seed(s % 2**32)


def pick_device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("runtime.device is 'cuda' but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")
