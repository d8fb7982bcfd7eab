"""`ActiveConfig`: the settings of one active-learning run, with its `TrainConfig` inside.

A YAML file holds the loop's keys at the top level and the training config under `train:`;
`--set` reaches both (`strategy=margin`, `train.optim.lr=3e-4`). Budgets are fractions of
the training pool so a protocol carries over between datasets (PROTOCOLS.md section 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from hmtl.trainables.active.registry import strategies
from hmtl.trainables.config import (
    Fraction,
    Section,
    TrainConfig,
    read_mapping,
    validate_tree,
)


class BaldSettings(Section):
    passes: int = Field(10, ge=1, le=1000)
    """Stochastic forward passes T (DISTIL's default, which ActiveFER kept)."""
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    """Dropout before the classifier while scoring, used when `model.dropout` is 0."""


class GlisterSettings(Section):
    lam: float = Field(10.0, ge=0.0)
    """Weight of the diversity penalty (ActiveFER's `lam=10`)."""
    lr: float = Field(0.01, gt=0.0)
    """Rate of the classifier's Taylor step after each pick."""


class DeepFoolSettings(Section):
    max_iter: int = Field(50, ge=1, le=1000)
    overshoot: float = Field(0.02, ge=0.0, le=1.0)


class StrategySettings(Section):
    bald: BaldSettings = BaldSettings()
    glister: GlisterSettings = GlisterSettings()
    deepfool: DeepFoolSettings = DeepFoolSettings()
    chunk_size: int = Field(4096, ge=16)
    """Rows per block in set-based strategies' distance computations (bounds memory)."""


class ActiveConfig(Section):
    strategy: str = "random"
    seed: int = Field(0, ge=0)
    """Seeds the initial draw, every strategy's random choices and (with
    `train.runtime.seed`) each cycle's training: repeats of a study differ in it alone."""
    initial_fraction: Fraction = 0.10
    initial_draw: Literal["stratified", "uniform"] = "stratified"
    budget_fraction: Fraction = 0.05
    """Rows moved to the labelled set after each cycle but the last, as a share of the pool."""
    cycles: int = Field(7, ge=1, le=1000)
    reset: Literal["pretrained", "random", "warm"] = "pretrained"
    """Weights each cycle starts from: the first cycle's starting weights (with
    `train.model.pretrained` loaded), a fresh random init (what ActiveFER's released config
    does; it ignores `model.pretrained`), or the previous cycle's trained weights."""
    epochs: Literal["fixed", "activefer"] = "fixed"
    """fixed: `train.schedule.epochs` per cycle; activefer: at most that many, stopping at
    `stop_train_accuracy` or when the last `plateau_window` epochs improve by < `plateau_delta`."""
    stop_train_accuracy: float = Field(0.999, gt=0.0, le=1.0)
    plateau_window: int = Field(10, ge=2)
    plateau_delta: float = Field(0.001, ge=0.0)
    max_pool: int | None = Field(None, ge=1)
    """Score a seeded subsample of this many pool rows (a deviation from the protocol, logged)."""
    strategies: StrategySettings = StrategySettings()
    train: TrainConfig = TrainConfig()

    @field_validator("strategy")
    @classmethod
    def _known(cls, name: str) -> str:

        known = strategies()
        if name not in known:
            raise ValueError(f"unknown strategy '{name}' (known: {', '.join(sorted(known))})")
        return name

    @model_validator(mode="after")
    def _budget_fits(self) -> ActiveConfig:
        if self.train.tasks.main.expression is None:
            raise ValueError(
                "active learning queries expression labels: enable train.tasks.main.expression"
            )
        final = self.initial_fraction + self.budget_fraction * (self.cycles - 1)
        if final > 1.0 + 1e-9:
            raise ValueError(
                f"initial_fraction + budget_fraction x (cycles - 1) = {final:.3g} labels more "
                "than the whole pool"
            )
        return self


def build_active_config(
    tree: dict[str, Any] | None = None, overrides: Sequence[str] = (), source: str = "config"
) -> ActiveConfig:
    """Validate a nested dict plus `key=value` overrides into an ActiveConfig or raise."""
    return validate_tree(ActiveConfig, tree, overrides, source)


def load_active_config(path: str | Path, overrides: Sequence[str] = ()) -> ActiveConfig:
    """Read an active-learning YAML file and apply `--set` overrides (one-line errors)."""
    return build_active_config(read_mapping(path, "settings"), overrides, str(path))
