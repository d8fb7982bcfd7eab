"""In-painting: hide parts of the face and reconstruct them from the backbone's feature map.

Masks are random rectangles, the eyes band or the mouth box of a roughly centred face (the
regions that carry most of an expression), or per sample one of the two. Masked pixels are set
to a constant grey, `FILL`: after `normalize` that is about zero, like the dataset-mean fill of
context encoders, so the hole carries no information. Noise would look like texture and need
more random draws. A light decoder reads the last feature map and the loss is L1 on the masked
pixels only (the visible ones are given, so errors there are ignored).

The optional perceptual term compares a frozen, fixed random conv stack's features of the
reconstruction (pasted into the hole) and of the original. No pretrained network can be
downloaded here, and random conv features are a known workable perceptual prior (He et al.
2016, texture synthesis with random shallow CNNs; Liu et al. 2021, "Generic Perceptual Loss").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmtl.trainables.augment import normalize
from hmtl.trainables.config import InpaintingConfig, TrainConfig
from hmtl.trainables.data.dataset import DatasetInfo
from hmtl.trainables.runtime.transfer import upload
from hmtl.trainables.tasks.base import AuxBatch, TaskSpec

FILL = 0.5
# (top, bottom, left, right) as shares of the side, for a roughly centred, aligned face.
REGIONS = {"eyes": (0.28, 0.48, 0.18, 0.82), "mouth": (0.62, 0.82, 0.30, 0.70)}
_REGION_JITTER = 0.04  # each region box shifts by up to this share of the side
_MIN_SIDE = 1 / 8  # shortest rectangle side, as a share of the image side
_UNIFORMS = 13  # draws per sample in every mode, so a generator state gives the same draws


def draw_boxes(
    n: int, size: int, mode: str, mask_fraction: float, generator: torch.Generator | None = None
) -> Tensor:
    """Per sample two boxes (n, 2, 4) int64 of pixel bounds [top, bottom) x [left, right).

    An empty box has top == bottom. Drawn on the CPU from `generator`.
    """
    u = torch.rand(n, _UNIFORMS, generator=generator)
    rects, regions = _rectangles(u[:, :9], size, mask_fraction), _regions(u[:, 9:12], size)
    if mode == "rectangles":
        return rects
    if mode == "regions":
        return regions
    if mode == "both":
        return torch.where((u[:, 12] < 0.5).view(n, 1, 1), rects, regions)
    raise ValueError(f"unknown in-painting mask mode {mode!r}")


def _rectangles(u: Tensor, size: int, fraction: float) -> Tensor:
    """One or two (half the time) boxes of sides in [size/8, fraction * size], inside the image."""
    n = len(u)
    hi = fraction * size
    lo = min(size * _MIN_SIDE, hi)
    sides = (lo + (hi - lo) * u[:, :4]).round().clamp(min=1).view(n, 2, 2)  # (height, width)
    start = (u[:, 4:8].view(n, 2, 2) * (size - sides + 1)).floor()
    end = start + sides
    end[:, 1] = torch.where(u[:, 8:9] < 0.5, end[:, 1], start[:, 1])  # drop the second box
    return torch.stack([start[..., 0], end[..., 0], start[..., 1], end[..., 1]], dim=-1).long()


def _regions(u: Tensor, size: int) -> Tensor:
    """The eyes band or the mouth box (even odds), shifted a little; the second box is empty."""
    table = torch.tensor([REGIONS["eyes"], REGIONS["mouth"]])
    box = table[(u[:, 0] >= 0.5).long()]
    shift = (2 * u[:, 1:3] - 1) * _REGION_JITTER  # (down, right)
    box = box + shift.repeat_interleave(2, dim=1)
    box = (box * size).round().clamp(0, size).long()
    return torch.stack([box, torch.zeros_like(box)], dim=1)


def box_mask(boxes: Tensor, size: int) -> Tensor:
    """Union of each sample's boxes as a bool mask (n, 1, size, size), on the boxes' device."""
    pos = torch.arange(size, device=boxes.device)
    rows = (pos >= boxes[..., 0:1]) & (pos < boxes[..., 1:2])  # (n, boxes, size)
    cols = (pos >= boxes[..., 2:3]) & (pos < boxes[..., 3:4])
    return (rows[..., :, None] & cols[..., None, :]).any(dim=1, keepdim=True)


def masked_l1(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean absolute error over the masked pixels and all channels; 0 when nothing is masked."""
    m = mask.to(pred.dtype)
    count = m.sum() * pred.shape[1]
    return ((pred - target).abs() * m).sum() / count.clamp(min=1)


class Decoder(nn.Module):
    """A light decoder: 1x1 conv to `width`, then stages of (conv3x3-BN-ReLU, x2 bilinear
    upsampling) halving the width, a 3x3 conv to C channels, a bilinear resize to the output side
    and a sigmoid to [0, 1].

    Size-agnostic: any map (2x2 .. 14x14) to any side. Three stages predict at 8x the map side
    (24 px from small_cnn's 3x3 map at 48 px, 112 px from 14x14 at 224): enough for the content
    of a hole, which is what the backbone must infer, not its fine texture. Convolving before
    each upsampling costs a quarter of the reverse order, and no layer runs at the full side.
    """

    def __init__(self, in_dim: int, out_channels: int, width: int = 64, stages: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_dim, width, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        ch = width
        for i in range(stages):
            out = max(width >> i, 8)
            layers += [
                nn.Conv2d(ch, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            ]
            ch = out
        layers.append(nn.Conv2d(ch, out_channels, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, feature_map: Tensor, size: int) -> Tensor:
        x = self.body(feature_map)
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        return torch.sigmoid(x)


def decoder_width(feature_dim: int) -> int:
    """A quarter of the backbone's feature dim, within 16..64: the decoder scales with the
    backbone (a narrow test CNN gets a narrow decoder) and stays light next to a wide one."""
    return max(16, min(64, feature_dim // 4))


class RandomFeatures(nn.Module):
    """Frozen stack of stride-2 3x3 conv-ReLU layers with He-scaled Gaussian weights from its own
    seeded generator: the same weights in every run, and the global RNG is left alone. Stride 2
    from the first layer: the decoder predicts at most at half the side anyway."""

    def __init__(self, channels: int, widths: tuple[int, ...] = (8, 16, 32), seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.weights = nn.ParameterList()
        in_ch = channels
        for w in widths:
            std = math.sqrt(2.0 / (in_ch * 9))
            weight = torch.randn(w, in_ch, 3, 3, generator=gen) * std
            self.weights.append(nn.Parameter(weight, requires_grad=False))
            in_ch = w

    def forward(self, images: Tensor) -> list[Tensor]:
        """Feature maps of every layer for [0, 1] images."""
        x, feats = normalize(images), []
        for weight in self.weights:
            x = F.relu(F.conv2d(x, weight, stride=2, padding=1))
            feats.append(x)
        return feats


class InpaintingTask(nn.Module):
    name = "inpainting"
    kind = "aux"

    def __init__(self, feature_dim: int, channels: int, cfg: InpaintingConfig) -> None:
        super().__init__()
        self.masks = cfg.masks
        self.mask_fraction = cfg.mask_fraction
        self.perceptual_weight = cfg.perceptual_weight
        self.decoder = Decoder(feature_dim, channels, decoder_width(feature_dim))
        self.perceptual = RandomFeatures(channels) if cfg.perceptual_weight > 0 else None

    def make_input(self, aux: AuxBatch) -> tuple[Tensor, dict[str, Tensor]]:
        """Clean images with the masked pixels set to `FILL`; targets: the clean images and the
        bool mask (M, 1, S, S)."""
        clean = aux.clean
        n, size = clean.shape[0], clean.shape[-1]
        boxes = draw_boxes(n, size, self.masks, self.mask_fraction, aux.generator)
        mask = box_mask(upload(boxes, clean.device), size)
        return torch.where(mask, FILL, clean), {"target": clean, "mask": mask}

    def forward(self, feature_map: Tensor, size: int) -> Tensor:
        """Reconstructed images in [0, 1], float32 (M, C, size, size)."""
        return self.decoder(feature_map, size).float()

    def loss(
        self, features: Tensor, feature_map: Tensor, targets: dict[str, Tensor], images: Tensor
    ) -> dict[str, Tensor]:
        target, mask = targets["target"].float(), targets["mask"]
        recon = self(feature_map, target.shape[-1])
        losses = {self.name: masked_l1(recon, target, mask)}
        if self.perceptual is not None:
            term = self.perceptual_weight * self._perceptual(recon, target, mask)
            losses[f"{self.name}/perceptual"] = term
        return losses

    def _perceptual(self, recon: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """Mean L1 between random features of the hole-filled original and of the original."""
        assert self.perceptual is not None
        with torch.autocast(recon.device.type, enabled=False):
            filled = torch.where(mask, recon, target)
            with torch.no_grad():
                wanted = self.perceptual(target)
            got = self.perceptual(filled)
            dists = [F.l1_loss(g, w) for g, w in zip(got, wanted, strict=True)]
        return torch.stack(dists).mean()

    @torch.no_grad()
    def metrics(
        self, features: Tensor, feature_map: Tensor, targets: dict[str, Tensor]
    ) -> dict[str, float]:
        target = targets["target"].float()
        recon = self(feature_map, target.shape[-1])
        return {f"{self.name}/masked_l1": float(masked_l1(recon, target, targets["mask"]))}


def build(cfg: TrainConfig, info: DatasetInfo, feature_dim: int) -> InpaintingTask:
    return InpaintingTask(feature_dim, cfg.data.channels, cfg.tasks.aux.inpainting)


SPEC = TaskSpec("inpainting", "aux", build)
