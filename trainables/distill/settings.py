"""`DistillSettings` and the augmentation ops' names: what a distillation run can be asked
for, without torch (so `hmtl distill --help` and study validation stay light)."""

from __future__ import annotations

from dataclasses import asdict

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass as validated

AUGMENT_OPS = ("scale", "rotate", "crop", "brightness", "contrast", "cutout")
"""DSA's ops that distillation of faces uses, in the order they apply (augment.py)."""


@validated(frozen=True, config=ConfigDict(extra="forbid"))
class DistillSettings:
    """Every choice of a distillation run; all are recorded in the published card.
    Defaults are ours (DM's own are lr 1, momentum 0.5, 20,000 iterations, real batch 256,
    width 128), shrunk to what a CPU does in minutes at 48 px. The one place they and their
    bounds are declared: `hmtl distill` and the study's `distill` stage read them from here
    (orchestration/distill/options.py)."""

    images_per_class: int = Field(ge=1)
    iterations: int = Field(500, ge=1)
    lr: float = Field(1.0, gt=0)
    """SGD step on the standardised synthetic pixels (DM's)."""
    momentum: float = Field(0.5, ge=0, lt=1)
    real_batch: int = Field(64, ge=1)
    """Real images per class per iteration (ours; DM: 256)."""
    width: int = Field(64, ge=1)
    """Random ConvNet width (ours; DM: 128)."""
    depth: int = Field(3, ge=1, le=4)
    augment: tuple[str, ...] = AUGMENT_OPS
    """Siamese augmentation ops, in order."""
    seed: int = 0

    def record(self) -> dict:
        """The settings as card/MLflow parameters, with the embedding network named."""
        return {**asdict(self), "augment": list(self.augment), "network": self.network()}

    def network(self) -> str:
        return (
            f"DM ConvNet-{self.depth} width {self.width} (instance norm, avg pool), "
            "fresh random weights per iteration"
        )
