"""The set-up steps of `train`: data, model (backbone and task heads), optimiser, resume.

Each step builds its part once, before the first epoch, and returns it as a small dataclass;
`train` bundles them into a `Run` that every step of the loop reads. The order `train` calls
them in is part of determinism: torch is seeded just before `set_up_model`, and the
backbone's parameters are created before the task heads'.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from hmtl.trainables.accounting import IMAGES_SEEN, WALL_SECONDS, InputCounter, counts_before
from hmtl.trainables.checkpoint import CheckpointError, load_checkpoint, set_rng_state
from hmtl.trainables.config import TrainConfig
from hmtl.trainables.data.dataset import DatasetInfo, Splits, load_splits, refuse_unlabelled
from hmtl.trainables.data.faces import FaceData
from hmtl.trainables.finetune import start_backbone
from hmtl.trainables.models import build_backbone
from hmtl.trainables.network import FaceModel
from hmtl.trainables.optim import make_optimizer, make_scheduler
from hmtl.trainables.runtime.compile import Compiled
from hmtl.trainables.runtime.precision import use_channels_last
from hmtl.trainables.session import Session
from hmtl.trainables.tasks import build_tasks, task_weights


@dataclass(frozen=True)
class Data:
    """The splits (on the training device; the training rows in host memory with
    `runtime.data_placement: host`), and the rows training steps draw from."""

    splits: Splits
    train: FaceData
    val: FaceData
    test: FaceData
    stream: FaceData
    """The rows an epoch passes over: the training rows, or (pre-training) the whole pool."""
    pool: FaceData | None
    """Training plus label-withheld rows, images only; None when no rows are withheld."""
    separate_aux: bool
    """Whether the auxiliaries draw their own batch from `pool` (semi-supervised HMTL)."""
    knn_on: bool
    """Whether epochs report the backbone's k-NN accuracy (pre-training, on rank 0)."""


@dataclass(frozen=True)
class Net:
    """The model, the session's wrapper around it, and the loss weights of its tasks."""

    model: FaceModel
    """The bare model: what checkpoints hold and evaluation runs."""
    wrapped: nn.Module
    """`model` as the session prepared it (DDP across workers): what training steps call."""
    seen: InputCounter
    """Counts every image entering the backbone (trainables/accounting.py)."""
    weights: dict[str, float]


@dataclass(frozen=True)
class Optimisation:
    """The optimiser, its schedule, and the step geometry the schedule was built for."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    batch_size: int
    """Rows per step on each rank: `data.batch_size`, capped at the rows a rank has."""
    steps_per_epoch: int


@dataclass(frozen=True)
class Run:
    """Everything set-up built, handed to each step of the loop."""

    cfg: TrainConfig
    session: Session
    device: torch.device
    autocast: contextlib.AbstractContextManager
    data: Data
    net: Net
    opt: Optimisation
    began: float
    """`time.perf_counter()` when `train` was called: this process's wall time starts there."""


@dataclass
class Progress:
    """What the loop carries from epoch to epoch, and what a checkpoint restores."""

    start_epoch: int = 1
    history: list[dict[str, Any]] = field(default_factory=list)
    last: dict[str, Any] = field(default_factory=dict)
    """The latest epoch's report."""
    images_seen: int = 0
    wall_before: float = 0.0
    """Wall seconds earlier processes spent in `train` on this run (trainables/accounting.py)."""
    counts_before: dict[str, float] = field(default_factory=dict)
    """The checkpoint's wall time and costs, which keep the price they were counted at."""


def set_up_data(
    cfg: TrainConfig, session: Session, device: torch.device, splits: Splits | None
) -> Data:
    """The dataset `cfg.data` names (or the `splits` given), decoded once onto `device`
    (the training rows onto the host with `runtime.data_placement: host`)."""
    pretrain = not cfg.tasks.main.enabled()
    splits = splits if splits is not None else load_splits(cfg.data)
    refuse_unlabelled(cfg.data, cfg.tasks.main.enabled(), splits.info.labelled)
    # The training rows live where `runtime.data_placement` says; val and test on the device.
    rows_at = device if cfg.runtime.data_placement == "device" else torch.device("cpu")
    train, val, test = splits.train.to(rows_at), splits.val.to(device), splits.test.to(device)
    pool = aux_pool(splits, rows_at) if any(w > 0 for _, w in cfg.tasks.loss_weights) else None
    if pool is not None and splits.aux_images is not None:  # the training rows lead the pool:
        train = FaceData(pool.images[: len(train)], train.labels)  # one copy
    return Data(
        splits=splits,
        train=train,
        val=val,
        test=test,
        stream=pool if pretrain and pool is not None else train,
        pool=pool,
        separate_aux=pool is not None and not pretrain,
        knn_on=pretrain and knn_possible(train, session.rank),
    )


def set_up_model(
    cfg: TrainConfig,
    session: Session,
    info: DatasetInfo,
    device: torch.device,
    pretrained: str | None,
    resuming: bool,
) -> Net:
    """A shared backbone plus one head per enabled task, on `device`, as the session wants
    it. `pretrained`: a local copy of the backbone's starting weights, when fetched."""
    channels_last = use_channels_last(cfg.runtime, device)
    backbone = build_backbone(
        cfg.model.backbone, cfg.data.channels, cfg.model.width, cfg.model.stem
    )
    start_backbone(backbone, cfg.model, pretrained, resuming=resuming)
    seen = InputCounter(backbone)  # every backbone input, auxiliary ones included
    # The heads' parameters are drawn after the backbone's, in registry order.
    tasks = build_tasks(cfg, info, backbone.feature_dim)
    model = FaceModel(
        backbone, tasks, channels_last=channels_last, aux_budget=cfg.tasks.aux_budget
    ).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.runtime.compile:
        model.train_features = Compiled(model.backbone.forward_features, "the backbone")
    weights = task_weights(cfg)
    return Net(model=model, wrapped=session.prepare_model(model), seen=seen, weights=weights)


def set_up_optimiser(
    cfg: TrainConfig, session: Session, model: nn.Module, rows: int
) -> Optimisation:
    """The optimiser and its per-step schedule, for epochs over `rows` rows split across
    the session's workers."""
    per_rank = rows // session.world_size
    if per_rank == 0:
        raise ValueError(
            f"{cfg.data.source}: {rows} training rows cannot feed {session.world_size} workers"
        )
    batch_size = min(cfg.data.batch_size, per_rank)
    steps_per_epoch = per_rank // batch_size
    optimizer = make_optimizer(cfg.optim, model)
    scheduler = make_scheduler(cfg.schedule, optimizer, steps_per_epoch)
    return Optimisation(optimizer, scheduler, batch_size, steps_per_epoch)


def resume_from(checkpoint: str | None, model: nn.Module, opt: Optimisation) -> Progress:
    """Restore the model, optimiser, schedule and RNGs from `checkpoint` and return the
    progress it recorded; a fresh start without one."""
    if not checkpoint:
        return Progress()
    state = load_checkpoint(checkpoint)
    try:
        model.load_state_dict(state["model"])
        opt.optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0]
        raise CheckpointError(f"{checkpoint}: does not fit this config's model ({first})") from None
    opt.scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    last = state.get("metrics", {})
    # Compute accounting continues from the checkpoint's counts.
    return Progress(
        start_epoch=state["epoch"] + 1,
        history=list(state.get("history", [])),
        last=last,
        images_seen=last.get(IMAGES_SEEN, 0),
        wall_before=last.get(WALL_SECONDS, 0.0),
        counts_before=counts_before(last),
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
