"""Host-to-device copies that do not make the host wait for the GPU.

A plain `tensor.to("cuda")` from ordinary (pageable) host memory synchronises the stream, so
the host stops queuing kernels until the GPU has caught up; done a few times per training
step (augmentation parameters, permutations, rows drawn on a CPU generator), it leaves the
GPU idle while the host launches the next step. Staged through pinned memory the copy is
asynchronous, and torch's pinned-memory cache keeps the staging buffer alive until the copy
has run. On the CPU nothing is copied: the tensor itself comes back, so CPU results are
unchanged. The bottom of `runtime/`: it imports nothing of hmtl.
"""

from __future__ import annotations

import torch


def upload(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """`tensor` on `device`: asynchronously (pinned, non-blocking) from the CPU to CUDA,
    as `tensor.to(device)` otherwise (the tensor itself when it is there already)."""
    device = torch.device(device)
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
