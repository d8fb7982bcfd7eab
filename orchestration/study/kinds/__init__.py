"""Study stage kinds, one file each, and their registry.

`KINDS` is the one place a kind is named: the study file's `kind:` key looks it up, and the
engine, the smoke trimmer and the report call the object it gives (the protocol is in
`base.py`). Adding a kind is one file here and one line below; nothing else branches on a
kind's name.
"""

from __future__ import annotations

from hmtl.orchestration.study.kinds.active import ActiveStage
from hmtl.orchestration.study.kinds.base import StageKind
from hmtl.orchestration.study.kinds.confirm import ConfirmStage
from hmtl.orchestration.study.kinds.distill import DistillStage
from hmtl.orchestration.study.kinds.grid import GridStage
from hmtl.orchestration.study.kinds.mine import MineStage
from hmtl.orchestration.study.kinds.sweep import SweepStage
from hmtl.orchestration.study.kinds.train import TrainStage

KINDS: dict[str, StageKind] = {
    "train": TrainStage(),
    "sweep": SweepStage(),
    "confirm": ConfirmStage(),
    "grid": GridStage(),
    "active": ActiveStage(),
    "mine": MineStage(),
    "distill": DistillStage(),
}
