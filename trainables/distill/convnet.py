"""The randomly initialised embedding network of distribution matching.

DM samples a fresh ConvNet per iteration and never trains it: its embedding is the flattened
output of `depth` blocks of conv3x3 -> instance norm -> ReLU -> 2x2 average pool (the
"ConvNet" of Zhao et al.'s DC/DSA/DM code). Instance norm, not batch norm, so an image's
embedding does not depend on the batch it is in: a real batch and the synthetic set are
embedded by the same function.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class DMConvNet(nn.Module):
    """`depth` x (conv3x3, instance norm with affine, ReLU, avgpool 2); `forward` returns the
    flattened last map (at 48 px and depth 3: width x 6 x 6 features per image)."""

    def __init__(self, channels: int, width: int = 64, depth: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = channels
        for _ in range(depth):
            layers += [
                nn.Conv2d(in_ch, width, 3, padding=1),
                nn.GroupNorm(width, width, affine=True),  # = instance norm, as DM's "instancenorm"
                nn.ReLU(inplace=True),
                nn.AvgPool2d(2),
            ]
            in_ch = width
        self.features = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return torch.flatten(self.features(x), 1)


def random_net(channels: int, width: int, depth: int, generator: torch.Generator) -> DMConvNet:
    """A freshly initialised DMConvNet (PyTorch's default init, drawn from `generator` so a run
    is reproducible), frozen: only the synthetic images receive gradients."""
    net = DMConvNet(channels, width, depth)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                # kaiming_uniform(a=sqrt(5)) as nn.Conv2d.reset_parameters does, from our generator
                bound = 1.0 / (module.in_channels * 9) ** 0.5
                module.weight.uniform_(-bound, bound, generator=generator)
                module.bias.uniform_(-bound, bound, generator=generator)
    net.requires_grad_(False)
    return net.eval()
