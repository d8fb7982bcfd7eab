"""`train(cfg, session)`: the plain PyTorch training loop, read top to bottom.

`train` is a short recipe of named steps. Set-up (setup.py): the data, the model (a shared
backbone and one head per task), the optimiser and its schedule, and whatever a checkpoint
restores. Then each epoch: reseed and draw its rows (`plan_epoch`), train (`train_epoch`, one
`train_step` per batch), evaluate (`epoch_report`, evaluation.py), checkpoint and report
(`checkpoint_and_report`). The loop knows nothing about Ray or MLflow: it reports each epoch
through the `Session` and resumes from whatever checkpoint the session hands it.

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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hmtl.trainables.accounting import IMAGES_SEEN, WALL_SECONDS, costs
from hmtl.trainables.augment import augment
from hmtl.trainables.checkpoint import rng_state, save_checkpoint
from hmtl.trainables.config import TrainConfig
from hmtl.trainables.data.dataset import Splits
from hmtl.trainables.evaluation import evaluate, evaluate_epoch, prefixed
from hmtl.trainables.finetune import train_mode
from hmtl.trainables.runtime.device import pick_device
from hmtl.trainables.runtime.precision import autocast
from hmtl.trainables.runtime.transfer import upload
from hmtl.trainables.sampling import EpochRows, epoch_rows
from hmtl.trainables.session import Session
from hmtl.trainables.setup import (
    Progress,
    Run,
    resume_from,
    set_up_data,
    set_up_model,
    set_up_optimiser,
)
from hmtl.trainables.tasks import AuxBatch, combine


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
    device, autocast = set_up_runtime(cfg, session)
    data = set_up_data(cfg, session, device, splits)
    torch.manual_seed(cfg.runtime.seed)  # the model's initial weights come from the run's seed
    resume = session.latest_checkpoint()
    net = set_up_model(
        cfg, session, data.splits.info, device, pretrained, resuming=resume is not None
    )
    opt = set_up_optimiser(cfg, session, net.model, len(data.stream))
    progress = resume_from(resume, net.model, opt)
    run = Run(cfg, session, device, autocast, data, net, opt, began)

    for epoch in range(progress.start_epoch, cfg.schedule.epochs + 1):
        rows, jitter = plan_epoch(run, epoch)
        sums, elapsed, images = train_epoch(run, rows, jitter)
        progress.images_seen += images
        metrics = epoch_report(run, epoch, sums, elapsed, progress)
        progress.history.append({k: v for k, v in metrics.items() if isinstance(v, int | float)})
        checkpoint_and_report(run, epoch, metrics, progress.history)
        progress.last = metrics

    last = progress.last
    # Resumed with no epoch left to train: the test metrics the last report may lack.
    if "test/accuracy" not in last and progress.start_epoch > cfg.schedule.epochs:
        last = {**last, **prefixed("test", evaluate(net.model, data.test, cfg, session, autocast))}
    return TrainResult(
        epochs=cfg.schedule.epochs,
        metrics=last,
        checkpoint=session.latest_checkpoint(),
        history=progress.history,
    )


def set_up_runtime(
    cfg: TrainConfig, session: Session
) -> tuple[torch.device, contextlib.AbstractContextManager]:
    """The training device (the session's, or `runtime.device`) and the autocast context
    every forward pass runs in (bf16 when asked, or by default on CUDA)."""
    if cfg.runtime.num_threads:
        torch.set_num_threads(cfg.runtime.num_threads)
    device = session.device or pick_device(cfg.runtime.device)
    if device.type == "cuda":  # a run's shapes are fixed: let cuDNN time its algorithms once
        torch.backends.cudnn.benchmark = True
    return device, autocast(cfg.runtime, device)


def plan_epoch(run: Run, epoch: int) -> tuple[EpochRows, torch.Generator]:
    """Reseed for `epoch` and draw its rows; returns them with the generator the epoch's
    augmentations draw from (seeded by seed, epoch and rank, so a resumed run replays it)."""
    seed, rank, data = run.cfg.runtime.seed, run.session.rank, run.data
    seed_epoch(seed, epoch, rank)
    order = torch.Generator().manual_seed(derive_seed(seed, epoch))
    jitter = torch.Generator().manual_seed(derive_seed(seed, epoch, rank))
    rows = epoch_rows(
        len(data.stream),
        run.opt.batch_size,
        order,
        rank,
        run.session.world_size,
        pool_size=len(data.pool) if data.separate_aux else None,
    )
    return rows.to(data.stream.images.device), jitter


def train_epoch(
    run: Run, rows: EpochRows, jitter: torch.Generator
) -> tuple[dict[str, torch.Tensor], float, int]:
    """One pass over the epoch's rows. Returns each step figure summed over the steps, the
    seconds the steps took, and the images the backbone took in on all ranks."""
    train_mode(run.net.wrapped, run.cfg.model)
    sums: dict[str, torch.Tensor] = {}
    start, counted = time.perf_counter(), run.net.seen.count
    for step in range(run.opt.steps_per_epoch):
        for name, value in train_step(run, rows, step, jitter).items():
            sums[name] = sums.get(name, 0.0) + value.detach().float()
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
    elapsed = time.perf_counter() - start
    images = (run.net.seen.count - counted) * run.session.world_size  # ranks take equal batches
    return sums, elapsed, images


def train_step(
    run: Run, rows: EpochRows, step: int, jitter: torch.Generator
) -> dict[str, torch.Tensor]:
    """One optimiser step on the step's augmented batch. Returns the loss, its weighted parts
    and the auxiliary tasks' own step metrics."""
    cfg, net, opt = run.cfg, run.net, run.opt
    # Resident rows: an index lookup on the device; host rows: this batch copied over.
    batch = {k: upload(v, run.device) for k, v in run.data.stream.batch(rows.main[step]).items()}
    images, geometry = augment(
        batch["image"],
        cfg.augmentation.level,
        magnitude=cfg.augmentation.magnitude,
        out_size=cfg.data.image_size,
        generator=jitter,
        return_geometry=True,
    )
    batch.update(flipped=geometry.flipped, rotation_deg=geometry.rotation_deg)
    aux = aux_batch(run, rows, step, batch["image"], images, jitter)
    with run.autocast:
        losses = net.wrapped(images, batch, aux)
    loss, parts = combine(losses, net.weights)
    opt.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.optim.grad_clip:
        torch.nn.utils.clip_grad_norm_(net.model.parameters(), cfg.optim.grad_clip)
    opt.optimizer.step()
    opt.scheduler.step()
    figures = {"loss": loss, **{f"loss/{k}": v for k, v in parts.items()}}
    for task_name, task in net.model.aux_tasks().items():
        step_metrics = getattr(task, "step_metrics", {})
        figures.update({f"{task_name}/{k}": v for k, v in step_metrics.items()})
    return figures


def aux_batch(
    run: Run,
    rows: EpochRows,
    step: int,
    raw: torch.Tensor,
    clean: torch.Tensor,
    jitter: torch.Generator,
) -> AuxBatch:
    """The auxiliary tasks' inputs: the main batch's images (`raw` and augmented `clean`),
    or, semi-supervised, their own rows of the pool, augmented after the main batch."""
    cfg = run.cfg
    if rows.aux is not None:
        raw = upload(run.data.pool.images[rows.aux[step]], run.device)
        clean = augment(
            raw,
            cfg.augmentation.level,
            magnitude=cfg.augmentation.magnitude,
            out_size=cfg.data.image_size,
            generator=jitter,
        )
    return AuxBatch(raw, clean, jitter, cfg.augmentation.magnitude, cfg.data.image_size)


def epoch_report(
    run: Run, epoch: int, sums: dict[str, torch.Tensor], elapsed: float, progress: Progress
) -> dict[str, Any]:
    """The epoch's metrics: training figures averaged over its steps, evaluation, and the
    compute the run has used so far."""
    steps, world_size = run.opt.steps_per_epoch, run.session.world_size
    metrics: dict[str, Any] = {"epoch": epoch, "lr": run.opt.optimizer.param_groups[0]["lr"]}
    metrics.update({f"train/{k}": float(v) / steps for k, v in sums.items()})
    metrics["train/images_per_sec"] = steps * run.opt.batch_size * world_size / elapsed
    metrics.update(evaluate_epoch(run, epoch, progress.last))
    metrics["time/train_s"] = time.perf_counter() - run.began  # in this process, so far
    metrics[IMAGES_SEEN] = progress.images_seen
    metrics[WALL_SECONDS] = progress.wall_before + time.perf_counter() - run.began
    # What the run has cost: this process's part at its session's rate (trainables/accounting.py).
    rate = getattr(run.session, "cost_rate", None)
    metrics.update(costs(metrics, rate, progress.counts_before))
    metrics["data/fingerprint"] = run.data.splits.info.fingerprint
    return metrics


def checkpoint_and_report(
    run: Run, epoch: int, metrics: dict[str, Any], history: list[dict[str, Any]]
) -> None:
    """Report the epoch through the session, with a checkpoint when one is due (rank 0)."""
    cfg, session = run.cfg, run.session
    due = epoch % cfg.runtime.checkpoint_every == 0 or epoch == cfg.schedule.epochs
    folder = tempfile.mkdtemp(prefix="hmtl-ckpt-") if due and session.rank == 0 else None
    if folder:
        write_checkpoint(run, folder, epoch, metrics, history)
    try:
        session.report(metrics, checkpoint_dir=folder)
    finally:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


def write_checkpoint(
    run: Run, folder: str, epoch: int, metrics: dict[str, Any], history: list[dict[str, Any]]
) -> None:
    """Everything a resume needs into `folder`, with the dataset card beside it."""
    data = run.data
    save_checkpoint(
        folder,
        {
            "model": run.net.model.state_dict(),
            "optimizer": run.opt.optimizer.state_dict(),
            "scheduler": run.opt.scheduler.state_dict(),
            "epoch": epoch,
            "rng": rng_state(),
            "config": run.cfg.model_dump(),
            "metrics": metrics,
            "history": history,
            "dataset": data.splits.info.fingerprint,
        },
    )
    # The dataset card travels with the checkpoint (trackers log it beside the model).
    # With the rows this run drew for each split (trackers profile the dataset with them).
    used = {"train": len(data.train), "val": len(data.val), "test": len(data.test)}
    card = {**data.splits.info.card, "split_rows": used}
    Path(folder, "card.json").write_text(json.dumps(card, indent=2))


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
