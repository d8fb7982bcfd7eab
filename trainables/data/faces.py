"""Faces in memory: images (N, C, H, W) uint8 and per-row labels as tensors on one device,
and the small operations on them every reader of a dataset shares (a rank's shard, channel
conversion). The bottom of `data/`: it imports nothing else of hmtl."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class FaceData:
    """Images (N, C, H, W) uint8 and per-row labels, all as tensors on one device."""

    images: torch.Tensor
    labels: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {name: values[index] for name, values in self.labels.items()}
        out["image"] = self.images[index]
        return out

    def to(self, device: torch.device) -> FaceData:
        return FaceData(self.images.to(device), {k: v.to(device) for k, v in self.labels.items()})


def shard(data: FaceData, rank: int, world_size: int) -> FaceData:
    """Rank `rank`'s rows `rank::world_size`, truncated so every rank holds the same count
    (collective ops need equal step counts)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
    per_rank = len(data) // world_size
    index = torch.arange(rank, per_rank * world_size, world_size, device=data.images.device)
    return FaceData(data.images[index], {k: v[index] for k, v in data.labels.items()})


def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey to RGB by repetition, RGB to grey by ITU-R 601 luma."""
    have = images.shape[1]
    if have == channels:
        return images
    if channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images.float() * luma).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
