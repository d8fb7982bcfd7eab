"""Contrastive learning (SimCLR): two augmented views of every face should map close together.

Each sample is cropped twice by a random resized crop (`crop_scale`, SimCLR's RandomResizedCrop
with aspect ratio in [3/4, 4/3]) and augmented at `view_level` from the stored uint8 batch,
giving 2N views ordered [first view of all N, second view of all N]. A projection MLP maps the
pooled features to `projection_dim`, and NT-Xent makes each view pick out its partner among
the other 2N - 1.

EffSSL variant (`rotation_weight` > 0; Addepalli et al. 2022, PROTOCOLS §4, the official
SwAV+RotNet code transposed to SimCLR's shared encoder): both views are also turned, each by
its own k in {0, 1, 2, 3} (0 included), after augmentation; the 2N turned copies are extra
backbone inputs (NT-Xent still sees the unturned views) and a separate MLP head
`Linear(D, D) -> BN -> ReLU -> Linear(D, 4)` predicts k. Its loss is
`rotation_weight * (CE(view 1) + CE(view 2))`, the *sum* of the two means, reported as the
part `contrastive/rotation` (so `contrastive`'s own weight scales it too, as the paper's
total is `ssl_loss + 0.1 * (CE1 + CE2)`). For the auxiliary budget a sample still counts as
two inputs: the turned copies are the extra compute EffSSL pays per step.

Negatives come from this rank's batch only (no all-gather): with the usual per-rank batch of
hundreds that is close to SimCLR's setting, and it keeps the task free of collectives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmtl.trainables.augment import augment
from hmtl.trainables.config import ContrastiveConfig, TrainConfig
from hmtl.trainables.data.dataset import DatasetInfo
from hmtl.trainables.runtime.transfer import upload
from hmtl.trainables.tasks.base import AuxBatch, TaskSpec
from hmtl.trainables.tasks.tiles import rotate

TURNS = 4
_RATIO = (3 / 4, 4 / 3)  # SimCLR's (torchvision's) aspect-ratio range of the crop box


def random_resized_crop(
    raw: Tensor, scale: tuple[float, float], generator: torch.Generator
) -> Tensor:
    """A random box per image (area share in `scale`, aspect ratio in [3/4, 4/3], inside the
    image) resized back to the input size: uint8 (N, C, S, S) in, uint8 out.

    Four values per image are drawn from `generator` whatever `scale` is, so exact resume
    holds. Done on uint8 before the view level's own pass so `augment` stays one recipe."""
    n = len(raw)
    u = torch.rand(n, 4, generator=generator)
    area = scale[0] + (scale[1] - scale[0]) * u[:, 0]
    log_r = torch.log(torch.tensor(_RATIO))
    ratio = torch.exp(log_r[0] + (log_r[1] - log_r[0]) * u[:, 1])
    # Width and height as shares of the side; clamped so the box stays inside the image.
    w = torch.sqrt(area * ratio).clamp(max=1.0)
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (1 - w) * (2 * u[:, 2] - 1)  # affine_grid's [-1, 1] coordinates: centre offsets
    cy = (1 - h) * (2 * u[:, 3] - 1)
    zeros = torch.zeros(n)
    theta = upload(
        torch.stack([torch.stack([w, zeros, cx], 1), torch.stack([zeros, h, cy], 1)], 1),
        raw.device,
    )
    grid = F.affine_grid(theta, list(raw.shape), align_corners=False)
    out = F.grid_sample(raw.float(), grid, mode="bilinear", align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


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
        self.crop_scale = tuple(cfg.crop_scale)
        self.rotation_weight = cfg.rotation_weight
        self.step_metrics: dict[str, Tensor] = {}
        """Detached per-step figures the training loop averages (rotation accuracy)."""
        # SimCLR's projection head with BN (as in SimCLR v2 and solo-learn).
        self.projector = nn.Sequential(
            nn.Linear(feature_dim, feature_dim),
            nn.BatchNorm1d(feature_dim),
            nn.ReLU(inplace=True),
            nn.Linear(feature_dim, cfg.projection_dim),
        )
        # EffSSL's rotation head (hidden width = feature width, as its hidden_mlp = 2048).
        self.rotation_head = (
            nn.Sequential(
                nn.Linear(feature_dim, feature_dim),
                nn.BatchNorm1d(feature_dim),
                nn.ReLU(inplace=True),
                nn.Linear(feature_dim, TURNS),
            )
            if cfg.rotation_weight > 0
            else None
        )

    def forward(self, features: Tensor) -> Tensor:
        """Projections (2N, projection_dim), float32."""
        return self.projector(features).float()

    def make_input(self, aux: AuxBatch) -> tuple[Tensor, dict[str, Tensor]]:
        """Two views of each sample (2N, C, S, S) in [0, 1]; no targets (pairs are by position).

        One crop and one `augment` call on the batch stacked twice draw independent parameters
        per view. With the rotation auxiliary, the 2N views turned by k follow them (4N
        inputs) and the target is `k` (2N,)."""
        crops = random_resized_crop(torch.cat([aux.raw, aux.raw]), self.crop_scale, aux.generator)
        views = augment(
            crops,
            self.view_level,
            magnitude=aux.magnitude,
            out_size=aux.out_size,
            generator=aux.generator,
        )
        if self.rotation_head is None:
            return views, {}
        k = upload(torch.randint(TURNS, (len(views),), generator=aux.generator), views.device)
        return torch.cat([views, rotate(views, k)]), {"rotation": k}

    def loss(
        self, features: Tensor, feature_map: Tensor, targets: dict[str, Tensor], images: Tensor
    ) -> dict[str, Tensor]:
        if self.rotation_head is None:
            z1, z2 = self(features).chunk(2)
            return {self.name: nt_xent(z1, z2, self.temperature)}
        views, turned = features.chunk(2)
        z1, z2 = self(views).chunk(2)
        logits = self.rotation_head(turned).float()
        k = targets["rotation"]
        ce1, ce2 = (
            F.cross_entropy(lg, t) for lg, t in zip(logits.chunk(2), k.chunk(2), strict=True)
        )
        self.step_metrics = {"rotation_accuracy": (logits.argmax(1) == k).float().mean().detach()}
        return {
            self.name: nt_xent(z1, z2, self.temperature),
            f"{self.name}/rotation": self.rotation_weight * (ce1 + ce2),
        }

    @torch.no_grad()
    def metrics(
        self, features: Tensor, feature_map: Tensor, targets: dict[str, Tensor]
    ) -> dict[str, float]:
        """Top-1 accuracy of finding the positive among the 2N - 1 candidates."""
        if self.rotation_head is not None:
            features = features.chunk(2)[0]
        z1, z2 = self(features).chunk(2)
        logits, positives = similarity_logits(z1, z2, self.temperature)
        return {f"{self.name}/top1": float((logits.argmax(dim=1) == positives).float().mean())}


def build(cfg: TrainConfig, info: DatasetInfo, feature_dim: int) -> ContrastiveTask:
    return ContrastiveTask(feature_dim, cfg.tasks.aux.contrastive)


SPEC = TaskSpec("contrastive", "aux", build)
