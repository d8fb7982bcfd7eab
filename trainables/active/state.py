"""What survives a kill: one file per completed cycle, plus the labelled map as JSON.

`active.pt` holds the labelled map, the per-cycle metrics so far, the snapshot of the
starting weights (reset `pretrained`), the cycle's trained weights (reset `warm`), the
python/numpy/torch RNG states and the resolved config. `labelled_map.json` is the same map
for people and trackers (row index -> cycle, -1 for the pool).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hmtl.trainables.atomic import write_atomic
from hmtl.trainables.checkpoint import CheckpointError

STATE_FILE = "active.pt"
MAP_FILE = "labelled_map.json"


@dataclass
class ActiveState:
    labelled_map: np.ndarray
    cycle: int = -1
    """The last completed cycle (-1: none yet)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    snapshot: dict[str, torch.Tensor] | None = None
    model: dict[str, torch.Tensor] | None = None
    fingerprint: str = ""


def save_state(folder: str | os.PathLike, state: ActiveState, extra: dict[str, Any]) -> None:
    """Write `active.pt` (through a temporary name) and `labelled_map.json` into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "labelled_map": state.labelled_map.copy(),
        "cycle": state.cycle,
        "history": state.history,
        "snapshot": state.snapshot,
        "model": state.model,
        "fingerprint": state.fingerprint,
        **extra,
    }
    write_atomic(folder / STATE_FILE, lambda temp: torch.save(payload, temp))
    (folder / MAP_FILE).write_text(json.dumps(state.labelled_map.tolist()))


def load_state(folder: str | os.PathLike) -> tuple[ActiveState, dict[str, Any]]:
    """Read a cycle checkpoint back: (state, the rest of the payload: rng, config)."""
    path = Path(folder) / STATE_FILE
    if not path.exists():
        raise CheckpointError(f"{folder}: not an active-learning checkpoint (no {STATE_FILE})")
    try:
        # Holds numpy RNG state and arrays; the run's own file, not a downloaded one.
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for a damaged file
        raise CheckpointError(f"{path}: corrupt or unreadable ({type(err).__name__})") from None
    state = ActiveState(
        labelled_map=np.asarray(payload.pop("labelled_map")),
        cycle=payload.pop("cycle"),
        history=payload.pop("history"),
        snapshot=payload.pop("snapshot"),
        model=payload.pop("model"),
        fingerprint=payload.pop("fingerprint"),
    )
    return state, payload
