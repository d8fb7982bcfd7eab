"""Batch augmentation levels (DATASETS.md, "Augmentation levels"), run on the training device.

Each level is one geometric resampling -- crop, rotation and flip folded into one affine map per
sample and applied by a single ``grid_sample`` straight to the output size -- followed by
photometric ops vectorised over the batch. Per-sample parameters are drawn on the CPU from an
explicit ``torch.Generator``: the same generator state gives the same parameters on any device and
whatever the global RNG did, so saving the generator state is enough to resume exactly.

Choices:
- ``padding_mode="border"``: a rotated crop reaches past the image corners; repeating the edge
  pixels adds no hard black wedges, which are an artificial feature (and a rotation cue).
- Cutout fills with each image's per-channel mean, not 0: after ``normalize`` that sits near
  zero, like the original cutout (zero after dataset normalisation), instead of a black square.
- The noise field is drawn on the images' device by a generator seeded from the CPU generator, so
  it is deterministic and resumable, but equal across CPU and CUDA only in distribution. Drawing
  full-size noise on the CPU costs ~150 ms for 256x3x224x224 and would stall the training loop.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from hmtl.trainables.runtime.transfer import upload

LEVELS = ("none", "weak", "strong", "eval")

_NONE_CROP = 0.69
_EVAL_CROP = 0.8
_CROP_MAX, _CROP_SPAN = 0.99, 0.30  # random crops take U[0.99 - span, 0.99] of the side
_CONTRAST = 0.4  # contrast factor U[1 - 0.4, 1 + 0.4]
_ROTATION_DEG = {"weak": 15.0, "strong": 20.0}
_BRIGHTNESS = 0.05
_NOISE_MAX = 0.05
_BLUR_SIGMA = 1.5
_CUTOUT = 1.0 / 6.0
_EPS = 1e-3  # below this a blur sigma is treated as zero

# ImageNet-pretrained backbones were trained on inputs standardised with these statistics;
# greyscale images get a generic centring to roughly unit scale.
_MEAN = {3: (0.485, 0.456, 0.406), 1: (0.5,)}
_STD = {3: (0.229, 0.224, 0.225), 1: (0.25,)}


def normalize(x: Tensor) -> Tensor:
    """Map [0, 1] images (..., C, H, W) to model input: ImageNet statistics for 3 channels,
    mean 0.5 / std 0.25 for 1 channel (pretrained weights expect standardised input)."""
    c = x.shape[-3]
    if c not in _MEAN:
        raise ValueError(f"normalize expects 1 or 3 channels, got {c}")
    mean, std = _statistics(c, x.dtype, x.device)
    return (x - mean) / std


@functools.cache
def _statistics(c: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """`normalize`'s (C, 1, 1) mean and std, made once per device: building them from Python
    numbers on a GPU is a blocking copy, which every training step would wait on. Made as
    ordinary tensors even under inference mode, so a cached pair can be saved for backward."""
    with torch.inference_mode(False):
        mean = torch.tensor(_MEAN[c], dtype=dtype).view(c, 1, 1)
        std = torch.tensor(_STD[c], dtype=dtype).view(c, 1, 1)
        return mean.to(device), std.to(device)


def _affine(scale: Tensor, angle_deg: Tensor, shift: Tensor, flip: Tensor) -> Tensor:
    """(N, 2, 3) maps from output to input coordinates: input = shift + scale * R(angle) * F * out.

    Coordinates are affine_grid's normalised [-1, 1] with align_corners=False, so ``scale`` is
    exactly the crop's fraction of the side and ``shift`` its centre; ``flip`` is -1 to mirror.
    """
    a = torch.deg2rad(angle_deg)
    cos, sin = torch.cos(a) * scale, torch.sin(a) * scale
    row0 = torch.stack([cos * flip, -sin, shift[:, 0]], dim=1)
    row1 = torch.stack([sin * flip, cos, shift[:, 1]], dim=1)
    return torch.stack([row0, row1], dim=1)


def _blur3x3(x: Tensor, sigma: float) -> Tensor:
    """3x3 Gaussian blur with edge replication, the same fixed kernel for every image.

    The kernel is separable, so it runs as two passes of three shifted multiply-adds. This equals
    a depthwise conv2d to float rounding, but on CPU the 1-channel depthwise conv2d (mkldnn) takes
    ~20 ms for a 256x1x64x64 batch against ~1 ms for these slices; on CUDA both are negligible.
    """
    w = [math.exp(-(t**2) / (2 * sigma**2)) for t in (-1, 0, 1)]
    w = [v / sum(w) for v in w]
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    h = w[0] * p[..., :-2] + w[1] * p[..., 1:-1] + w[2] * p[..., 2:]
    return w[0] * h[..., :-2, :] + w[1] * h[..., 1:-1, :] + w[2] * h[..., 2:, :]


def _check(images: Tensor, level: str, magnitude: float, generator: torch.Generator | None):
    if level not in LEVELS:
        raise ValueError(f"unknown augmentation level {level!r}; valid levels: {LEVELS}")
    if not 0.0 <= magnitude <= 1.0:
        raise ValueError(f"augmentation magnitude must be in [0, 1], got {magnitude}")
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"expected a uint8 (N, C, H, W) batch, got {images.dtype} {images.shape}")
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(f"expected square images, got {tuple(images.shape[-2:])}")
    if generator is not None and generator.device.type != "cpu":
        raise ValueError("generator must be a CPU torch.Generator")


def augment(
    images: Tensor,
    level: str,
    *,
    magnitude: float = 1.0,
    out_size: int | None = None,
    generator: torch.Generator | None = None,
    return_geometry: bool = False,
) -> Tensor | tuple[Tensor, Geometry]:
    """Augment a uint8 (N, C, H, W) batch at ``level``; float32 (N, C, out, out) in [0, 1].

    ``magnitude`` scales the strong level's ranges (1 = the DATASETS.md table, 0 = only a 0.99
    crop). ``generator`` (CPU) supplies all randomness; None means the global RNG. ``eval`` draws
    nothing. Every random level draws a fixed number of values per sample, so a given generator
    state yields the same draws whatever ``magnitude`` is (stronger is the same draw, scaled).
    With ``return_geometry`` it also returns the flips and rotations it applied, so that
    geometric labels (head pose) can follow the image.
    """
    _check(images, level, magnitude, generator)
    n, c, size = images.shape[0], images.shape[1], images.shape[-1]
    out = size if out_size is None else int(out_size)
    device = images.device
    ones, zeros = torch.ones(n), torch.zeros(n)
    flip, angle = ones, zeros
    m = float(magnitude)
    contrast = brightness = noise_sigma = cutout_xy = None
    noise_seed = 0

    if level == "eval":
        theta = _affine(ones * _EVAL_CROP, zeros, torch.zeros(n, 2), ones)
    elif level == "none":
        flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
        theta = _affine(ones * _NONE_CROP, zeros, torch.zeros(n, 2), flip)
    elif level == "weak":
        u = torch.rand(n, 3, generator=generator) * 2 - 1  # U[-1, 1]
        contrast = 1 + _CONTRAST * u[:, 0]
        scale = _CROP_MAX - _CROP_SPAN * (u[:, 2] + 1) / 2
        angle = _ROTATION_DEG["weak"] * u[:, 1]
        theta = _affine(scale, angle, torch.zeros(n, 2), ones)
    else:  # strong
        u = torch.rand(n, 9, generator=generator)
        noise_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        s = 2 * u[:, :4] - 1  # signed draws in U[-1, 1]
        contrast = 1 + _CONTRAST * m * s[:, 0]
        brightness = _BRIGHTNESS * m * s[:, 1]
        noise_sigma = _NOISE_MAX * m * u[:, 2]
        scale = _CROP_MAX - _CROP_SPAN * m * u[:, 4]
        shift = (1 - scale)[:, None] * (2 * u[:, 5:7] - 1)  # crop box stays inside the image
        angle = _ROTATION_DEG["strong"] * m * s[:, 3]
        theta = _affine(scale, angle, shift, ones)
        cutout_xy = u[:, 7:9]

    # The only resampling: crop, rotation and flip in one bilinear pass straight to out x out.
    x = images.to(torch.float32).div_(255.0)
    grid = F.affine_grid(upload(theta, device), [n, c, out, out], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    if contrast is not None:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * upload(contrast, device).view(n, 1, 1, 1) + mean
    if brightness is not None:
        x = x + upload(brightness, device).view(n, 1, 1, 1)
    if level == "strong" and _BLUR_SIGMA * m > _EPS:
        x = _blur3x3(x, _BLUR_SIGMA * m)
    if noise_sigma is not None and m > 0:
        noise_gen = torch.Generator(device=device).manual_seed(noise_seed)
        noise = torch.randn(x.shape, generator=noise_gen, device=device, dtype=x.dtype)
        x = x + noise * upload(noise_sigma, device).view(n, 1, 1, 1)
    side = round(out * _CUTOUT * m)
    if cutout_xy is not None and side > 0:
        corner = upload((cutout_xy * (out - side + 1)).floor().long(), device)  # box fully inside
        pos = torch.arange(out, device=device)
        rows = (pos >= corner[:, 1:2]) & (pos < corner[:, 1:2] + side)  # (N, out)
        cols = (pos >= corner[:, 0:1]) & (pos < corner[:, 0:1] + side)
        mask = (rows[:, :, None] & cols[:, None, :])[:, None]  # (N, 1, out, out)
        x = torch.where(mask, x.mean(dim=(2, 3), keepdim=True), x)
    x = x.clamp_(0.0, 1.0)
    if return_geometry:
        return x, Geometry(flipped=upload(flip < 0, device), rotation_deg=upload(angle, device))
    return x


@dataclass(frozen=True)
class Geometry:
    """What `augment` did to each image's geometry.

    The content is turned by `rotation_deg` counter-clockwise as displayed (row 0 at the top),
    then mirrored left-right where `flipped`.
    """

    flipped: Tensor
    rotation_deg: Tensor
