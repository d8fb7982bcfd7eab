"""Contrastive learning (SimCLR): two augmented views of every face should map close together.

Each sample is augmented twice at `view_level` from the stored uint8 batch, giving 2N views
ordered [first view of all N, second view of all N]. A projection MLP maps the pooled features
to `projection_dim`, and NT-Xent makes each view pick out its partner among the other 2N - 1.

Negatives come from this rank's batch only (no all-gather): with the usual per-rank batch of
hundreds that is close to SimCLR's setting, and it keeps the task free of collectives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.augment import augment
from trainables.config import ContrastiveConfig, TrainConfig
from trainables.data.dataset import DatasetInfo
from trainables.tasks import AuxBatch, register


def similarity_logits(z1: Tensor, z2: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """Cosine similarities / temperature of all 2N embeddings (2N, 2N) with the diagonal at
    -inf, and the index of each row's positive (i + N mod 2N). Computed in float32."""
    with torch.autocast(z1.device.type, enabled=False):
        z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
        logits = z @ z.T / temperature
    n2 = logits.shape[0]
    self_mask = torch.eye(n2, dtype=torch.bool, device=logits.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    positives = (torch.arange(n2, device=logits.device) + n2 // 2) % n2
    return logits, positives


def nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """NT-Xent (SimCLR): cross-entropy of finding each view's partner, averaged over all 2N
    anchors. `z1[i]` and `z2[i]` (N, D) are the two views of sample i; need not be normalised."""
    logits, positives = similarity_logits(z1, z2, temperature)
    return F.cross_entropy(logits, positives)


class ContrastiveTask(nn.Module):
    name = "contrastive"
    kind = "aux"
    views = 2  # backbone inputs per sample, for the auxiliary budget

    def __init__(self, feature_dim: int, cfg: ContrastiveConfig) -> None:
        super().__init__()
        self.temperature = cfg.temperature
        self.view_level = cfg.view_level
        # SimCLR's projection head with BN (as in SimCLR v2 and solo-learn).
        self.projector = nn.Sequential(
            nn.Linear(feature_dim, feature_dim),
            nn.BatchNorm1d(feature_dim),
            nn.ReLU(inplace=True),
            nn.Linear(feature_dim, cfg.projection_dim),
        )

    def forward(self, features: Tensor) -> Tensor:
        """Projections (2N, projection_dim), float32."""
        return self.projector(features).float()

    def make_input(self, aux: AuxBatch) -> tuple[Tensor, dict[str, Tensor]]:
        """Two views of each sample (2N, C, S, S) in [0, 1]; no targets (pairs are by position).

        One `augment` call on the batch stacked twice draws independent parameters per view."""
        views = augment(
            torch.cat([aux.raw, aux.raw]),
            self.view_level,
            magnitude=aux.magnitude,
            out_size=aux.out_size,
            generator=aux.generator,
        )
        return views, {}

    def loss(
        self, features: Tensor, feature_map: Tensor, targets: dict[str, Tensor], images: Tensor
    ) -> dict[str, Tensor]:
        z1, z2 = self(features).chunk(2)
        return {self.name: nt_xent(z1, z2, self.temperature)}

    @torch.no_grad()
    def metrics(
        self, features: Tensor, feature_map: Tensor, targets: dict[str, Tensor]
    ) -> dict[str, float]:
        """Top-1 accuracy of finding the positive among the 2N - 1 candidates."""
        z1, z2 = self(features).chunk(2)
        logits, positives = similarity_logits(z1, z2, self.temperature)
        return {f"{self.name}/top1": float((logits.argmax(dim=1) == positives).float().mean())}


@register("contrastive", kind="aux")
def build(cfg: TrainConfig, info: DatasetInfo, feature_dim: int) -> ContrastiveTask:
    return ContrastiveTask(feature_dim, cfg.tasks.aux.contrastive)
