"""DSA's differentiable siamese augmentation, the subset DM's faces need.

One random transform per call is applied to every image given (the real batch and the
synthetic set of a class get the same one: "siamese"), and every op is differentiable in the
pixels, so the matching loss reaches the synthetic images through it. Ops, each drawn with
DSA's default strength: `scale` (x0.8-1.2 per axis), `rotate` (+-15 degrees), `crop`
(translation by up to 1/8 of the side), `brightness` (+-0.5, images are standardised),
`contrast` (x0.5-1.5 around the image mean), `cutout` (one square of half the side set to 0).
DSA's `flip` and `saturation` are left out: flipping changes which mouth corner is raised
(contempt), and the faces are grey.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def siamese_augment(images: list[Tensor], ops: tuple[str, ...], generator: torch.Generator):
    """Apply one random draw of `ops` (a subset of AUGMENT_OPS, in that order) to each tensor
    of `images` ((B, C, H, W) each, same H and W) and return them in the same order."""
    u = lambda *shape: torch.rand(shape, generator=generator)  # noqa: E731
    size = images[0].shape[-1]
    theta = torch.eye(2, 3)
    if "scale" in ops:
        theta[:, :2] = torch.diag(0.8 + 0.4 * u(2)) @ theta[:, :2]
    if "rotate" in ops:
        angle = math.radians(float(u(1)) * 30 - 15)
        rot = torch.tensor(
            [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
        )
        theta[:, :2] = rot @ theta[:, :2]
    if "crop" in ops:
        theta[:, 2] = (u(2) - 0.5) * 0.25 * 2  # grid units span 2: up to 1/8 of the side
    brightness = float(u(1) - 0.5) if "brightness" in ops else 0.0
    contrast = float(u(1) + 0.5) if "contrast" in ops else 1.0
    half = size // 4
    cy, cx = (int(v) for v in (u(2) * size).long())
    out = []
    for x in images:
        if {"scale", "rotate", "crop"} & set(ops):
            grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, align_corners=False)
        x = x + brightness
        if contrast != 1.0:
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * contrast + mean
        if "cutout" in ops:
            mask = torch.ones(size, size)
            mask[max(cy - half, 0) : cy + half, max(cx - half, 0) : cx + half] = 0
            x = x * mask
        out.append(x)
    return out
