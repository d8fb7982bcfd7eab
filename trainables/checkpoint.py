"""Epoch checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint is a folder holding `checkpoint.pt`: model, optimizer and scheduler
state, the epoch, the python/numpy/torch RNG states, the resolved config and the
metrics reported with it. The folder form lets Ray Train and S3 move it as is.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hmtl.trainables.atomic import write_atomic

CHECKPOINT_FILE = "checkpoint.pt"
REQUIRED = ("model", "optimizer", "scheduler", "epoch", "rng", "config")


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from, as one line naming the path."""


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(folder: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write `state` into `folder/checkpoint.pt` (through a temporary name) and return it."""
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks {missing}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return write_atomic(folder / CHECKPOINT_FILE, lambda temp: torch.save(state, temp))


def load_checkpoint(folder: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint folder (or the file itself), refusing anything incomplete."""
    path = Path(folder)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.exists():
        raise CheckpointError(f"{folder}: no checkpoint there (expected {path.name})")
    try:
        # RNG states include numpy arrays and tuples, so the full unpickler is needed;
        # checkpoints are the run's own files, not downloaded ones.
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for a damaged file
        raise CheckpointError(
            f"{path}: corrupt or unreadable checkpoint ({type(err).__name__})"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a checkpoint (holds {type(state).__name__})")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint, missing {', '.join(missing)}")
    return state
