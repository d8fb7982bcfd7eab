"""Starting from pre-trained weights: load the backbone, and freeze it for a linear probe.

`model.pretrained` names where the weights came from (a file, a checkpoint folder, an
`s3://` URI, `runs:/<id>`); orchestration fetches a remote or tracked source to a local
copy first and hands its path in, so this module only reads local files.

A frozen backbone (`model.freeze_backbone`) takes no gradient and stays in eval mode while
the heads train, so its BatchNorm running statistics are those it was pre-trained with:
the linear-probe protocol of the facial-representation studies (PROTOCOLS.md section 3).
"""

from __future__ import annotations

from torch import nn

from hmtl.trainables.config import ModelConfig
from hmtl.trainables.models import load_pretrained


def start_backbone(
    backbone: nn.Module, cfg: ModelConfig, weights: str | None = None, resuming: bool = False
) -> None:
    """Load `model.pretrained` into `backbone` (from `weights`, its local copy, when given)
    and freeze it if asked. A resumed run skips the load: its checkpoint holds the backbone,
    and the source may be out of reach by then."""
    if cfg.pretrained and not resuming:
        load_pretrained(backbone, weights or cfg.pretrained, name=cfg.pretrained)
    if cfg.freeze_backbone:
        backbone.requires_grad_(False)


def train_mode(model: nn.Module, cfg: ModelConfig) -> None:
    """Put `model` in training mode, except a frozen backbone, which stays in eval mode
    (BatchNorm uses and keeps its running statistics). `model` may be a DDP wrapper."""
    model.train()
    if cfg.freeze_backbone:
        inner = getattr(model, "module", model)
        inner.backbone.eval()
