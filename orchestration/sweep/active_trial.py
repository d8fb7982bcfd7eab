"""A Tune trial that runs an active-learning loop (`run_active`) instead of one training run.

The loop's settings are the space's `loop` plus the trial's own (strategy and seed); every
cycle trains the trial's TrainConfig. The loop reports one result per cycle (`al/*`, with the
cycle as `epoch`, so MLflow logs the cycle as the step) and a checkpoint of its state;
`TuneSession.latest_checkpoint` hands a restored trial the last completed cycle's, from
which `run_active` continues.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hmtl.trainables.active.config import ActiveConfig
from hmtl.trainables.active.loop import REPORTED, run_active
from hmtl.trainables.config import TrainConfig

if TYPE_CHECKING:
    from hmtl.orchestration.sweep.space import SearchSpace
    from hmtl.orchestration.sweep.tune_session import TuneSession


class ActiveTuneSession:
    """The trial's session, with each cycle's `al/{val,test}_<metric>` also reported as
    `val/<metric>` and `test/<metric>`: the names a study's metric and Tune's bookkeeping
    (best trial, checkpoint order) judge every trial by."""

    rank = 0
    world_size = 1
    device = None

    def __init__(self, inner: TuneSession) -> None:
        self.inner = inner

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        self.inner.report({**metrics, **aliases(metrics)}, checkpoint_dir=checkpoint_dir)

    def latest_checkpoint(self) -> str | None:
        return self.inner.latest_checkpoint()

    def prepare_model(self, model):
        return model


def aliases(metrics: dict[str, Any]) -> dict[str, Any]:
    """`al/test_accuracy` -> `test/accuracy`, and so on for val and every reported metric."""
    out = {}
    for split in ("val", "test"):
        for name in REPORTED:
            if f"al/{split}_{name}" in metrics:
                out[f"{split}/{name}"] = metrics[f"al/{split}_{name}"]
    return out


def active_config(space: SearchSpace, params: dict[str, Any], cfg: TrainConfig) -> ActiveConfig:
    """The trial's ActiveConfig: the space's and the trial's loop keys around `cfg`."""
    return ActiveConfig.model_validate({**space.trial_loop(params), "train": cfg})


def run_active_trial(
    space: SearchSpace,
    params: dict[str, Any],
    cfg: TrainConfig,
    session: TuneSession,
    weights: str | None,
) -> None:
    """Run (or continue, after a restore) the trial's loop to its last cycle."""
    run_active(active_config(space, params, cfg), ActiveTuneSession(session), None, weights)
