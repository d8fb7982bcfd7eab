"""`run_active(cfg, session)`: one active-learning run, its cycles in order.

Per cycle: train on the labelled rows with the ordinary `train()` (starting from the reset
policy's weights), evaluate on test and val, let the strategy pick `budget` pool rows (not
after the last cycle), record them in the labelled map, and report the cycle's metrics with a
checkpoint through the session (the cycle is the step). A run whose session offers a
checkpoint continues after that cycle; per-cycle seeds make it end exactly as an
uninterrupted run does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from hmtl.trainables.active.base import PoolContext, Strategy
from hmtl.trainables.active.config import ActiveConfig
from hmtl.trainables.active.cycle import CycleSession, StopCycle, digest
from hmtl.trainables.active.labels import initial_draw, labelled_rows, mark, pool_rows, sizes
from hmtl.trainables.active.registry import get_strategy
from hmtl.trainables.active.state import ActiveState, load_state, save_state
from hmtl.trainables.checkpoint import CheckpointError, rng_state, set_rng_state
from hmtl.trainables.config import TrainConfig
from hmtl.trainables.data.dataset import Splits, load_splits
from hmtl.trainables.data.faces import FaceData
from hmtl.trainables.runtime.device import pick_device
from hmtl.trainables.session import Session
from hmtl.trainables.train import derive_seed, evaluate, train

REPORTED = ("accuracy", "balanced_accuracy", "macro_f1")


@dataclass
class ActiveResult:
    labelled_map: np.ndarray
    history: list[dict[str, Any]]
    checkpoint: str | None


def run_active(
    cfg: ActiveConfig,
    session: Session,
    log: Callable[[str], None] | None = print,
    pretrained: str | None = None,
) -> ActiveResult:
    """Run (or continue) the loop; returns the final labelled map and per-cycle metrics.
    `pretrained` is the local copy of `train.model.pretrained` when orchestration fetched it
    (an `s3://` or `runs:/` source)."""
    if cfg.train.runtime.num_threads:
        torch.set_num_threads(cfg.train.runtime.num_threads)
    device = session.device or pick_device(cfg.train.runtime.device)
    splits = load_splits(cfg.train.data)
    pool_data, val, test = (d.to(device) for d in (splits.train, splits.val, splits.test))
    n = len(pool_data)
    initial, budget = sizes(n, cfg.initial_fraction, cfg.budget_fraction)
    strategy = get_strategy(cfg.strategy)
    labels = splits.train.labels["expression"].numpy()
    state = resume(cfg, session, splits.info.fingerprint, n)
    if state is None:
        labelled_map = np.full(n, -1, dtype=np.int64)
        first = np.random.default_rng([cfg.seed, 0, 1])
        mark(labelled_map, initial_draw(labels, initial, cfg.initial_draw, first), 0)
        state = ActiveState(labelled_map, fingerprint=splits.info.fingerprint)

    for cycle in range(state.cycle + 1, cfg.cycles):
        rows = labelled_rows(state.labelled_map)
        ccfg = cycle_config(cfg, cycle)
        start = {"pretrained": state.snapshot, "warm": state.model, "random": None}[cfg.reset]
        if start is not None:
            ccfg.model.pretrained = None  # overwritten by `start` anyway: don't fetch it again
        keep_start = cfg.reset == "pretrained" and state.snapshot is None
        began = time.perf_counter()
        inner = train_cycle(
            cfg, ccfg, subset(pool_data, rows), splits, device, start, keep_start, pretrained
        )
        model = inner.model
        trained = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if keep_start:
            state.snapshot = inner.start_weights  # the first cycle's start: every cycle's
        metrics: dict[str, Any] = {
            "epoch": cycle,  # the Session's step key: trackers plot these against the cycle
            "al/cycle": cycle,
            "al/labelled": len(rows),
            "al/labelled_fraction": len(rows) / n,
            "al/epochs": inner.epochs,
            "al/train_seconds": time.perf_counter() - began,
            "al/start_weights": inner.start_digest,
            "al/trained_weights": digest(trained),
        }
        for name, data in (("test", test), ("val", val)):
            found = clean_metrics(model, data, ccfg, inner)
            metrics.update({f"al/{name}_{k}": found[k] for k in REPORTED if k in found})

        if cycle < cfg.cycles - 1:
            chosen, scored, seconds = select(cfg, strategy, model, pool_data, state, cycle, budget)
            mark(state.labelled_map, chosen, cycle + 1)
            metrics.update({"al/selected": len(chosen), "al/pool_scored": scored})
            metrics["al/select_seconds"] = seconds
        state.cycle = cycle
        state.model = trained if cfg.reset == "warm" else None
        state.history.append(metrics)
        folder = tempfile.mkdtemp(prefix="hmtl-active-")
        try:
            save_state(folder, state, {"rng": rng_state(), "config": cfg.model_dump()})
            session.report(metrics, checkpoint_dir=folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if log is not None:
            log(progress(metrics))
    return ActiveResult(state.labelled_map, state.history, session.latest_checkpoint())


def train_cycle(
    cfg: ActiveConfig,
    ccfg: TrainConfig,
    labelled: FaceData,
    splits: Splits,
    device: torch.device,
    start: dict[str, torch.Tensor] | None,
    keep_start: bool,
    pretrained: str | None = None,
) -> CycleSession:
    """Train one cycle on the labelled rows; the returned session holds the trained model."""
    inner = CycleSession(device, start, keep_start=keep_start)
    if cfg.epochs == "activefer":
        measure = partial(labelled_accuracy, data=labelled, cfg=ccfg, session=inner)
        inner.stop_when(measure, cfg.stop_train_accuracy, cfg.plateau_window, cfg.plateau_delta)
    # Class weights (inverse frequency) follow the labelled rows, not the whole pool.
    counts = torch.bincount(labelled.labels["expression"].cpu(), minlength=ccfg.data.classes)
    info = dataclasses.replace(splits.info, class_counts=tuple(int(c) for c in counts))
    # No val/test rows: the loop evaluates once after the cycle, while per-epoch validation
    # would cost about as much as the epoch itself when the labelled set is small.
    none = subset(labelled, np.zeros(0, dtype=np.int64))
    with contextlib.suppress(StopCycle):
        data = Splits(train=labelled, val=none, test=none, info=info)
        train(ccfg, inner, pretrained=pretrained if ccfg.model.pretrained else None, splits=data)
    return inner


def labelled_accuracy(
    model: torch.nn.Module, data: FaceData, cfg: TrainConfig, session: CycleSession
) -> float:
    return clean_metrics(model, data, cfg, session)["accuracy"]


def select(
    cfg: ActiveConfig,
    strategy: Strategy,
    model: torch.nn.Module,
    pool_data: FaceData,
    state: ActiveState,
    cycle: int,
    budget: int,
) -> tuple[np.ndarray, int, float]:
    """(global rows the strategy picked, pool rows it scored, seconds it took)."""
    generator = np.random.default_rng([cfg.seed, cycle, 2])
    pool = pool_rows(state.labelled_map)
    if cfg.max_pool is not None and len(pool) > cfg.max_pool:
        pool = np.sort(generator.choice(pool, size=cfg.max_pool, replace=False))
    budget = min(budget, len(pool))
    ctx = PoolContext(
        model=model,
        data=pool_data,
        pool=torch.from_numpy(pool),
        labelled=torch.from_numpy(labelled_rows(state.labelled_map)),
        image_size=cfg.train.data.image_size,
        batch_size=cfg.train.data.eval_batch_size,
        settings=cfg.strategies,
        generator=generator,
        seed=derive_seed(cfg.seed, cycle, 3),
    )
    began = time.perf_counter()
    positions = strategy.select(ctx, budget).cpu().numpy()
    if pool_data.images.device.type == "cuda":
        torch.cuda.synchronize(pool_data.images.device)
    seconds = time.perf_counter() - began
    if len(positions) != budget:
        raise RuntimeError(f"strategy '{cfg.strategy}' chose {len(positions)} of {budget} rows")
    return pool[positions], len(pool), seconds


def cycle_config(cfg: ActiveConfig, cycle: int) -> TrainConfig:
    """The training config of one cycle: its own seed (init and shuffling) from the run's
    `seed`, the cycle and `train.runtime.seed`, so repeats differ in everything; one
    checkpoint at the end."""
    ccfg = cfg.train.model_copy(deep=True)
    ccfg.runtime.seed = derive_seed(cfg.train.runtime.seed, cfg.seed, cycle)
    if cfg.reset == "random":
        ccfg.model.pretrained = None  # ActiveFER's re-init discards any pre-trained weights
    ccfg.runtime.checkpoint_every = ccfg.schedule.epochs
    return ccfg


def subset(data: FaceData, rows: np.ndarray) -> FaceData:
    index = torch.from_numpy(rows).to(data.images.device)
    return FaceData(data.images[index], {k: v[index] for k, v in data.labels.items()})


def clean_metrics(
    model: torch.nn.Module, data: FaceData, cfg: TrainConfig, session: CycleSession
) -> dict[str, Any]:
    """Main-task metrics on eval-transformed images, in fp32."""
    return evaluate(model, data, cfg, session, contextlib.nullcontext())


def resume(cfg: ActiveConfig, session: Session, fingerprint: str, n: int) -> ActiveState | None:
    """The state after the session's last completed cycle, or None to start afresh."""
    folder = session.latest_checkpoint()
    if folder is None:
        return None
    state, rest = load_state(folder)
    if state.fingerprint != fingerprint or len(state.labelled_map) != n:
        raise CheckpointError(f"{folder}: made on another dataset than this config's")
    if rest.get("config") != cfg.model_dump():
        raise CheckpointError(f"{folder}: made with another config; resume with the same one")
    set_rng_state(rest["rng"])
    return state


def progress(metrics: dict[str, Any]) -> str:
    """One line per cycle: labelled share, epochs, test accuracy, selection time."""
    parts = [
        f"cycle {metrics['al/cycle']:>2}",
        f"labelled {metrics['al/labelled_fraction']:.1%} ({metrics['al/labelled']})",
        f"epochs {metrics['al/epochs']}",
    ]
    if "al/test_accuracy" in metrics:
        parts.append(f"test/accuracy {metrics['al/test_accuracy']:.4f}")
    if "al/select_seconds" in metrics:
        parts.append(f"select {metrics['al/select_seconds']:.2f}s")
    return "  ".join(parts)
